"""One extended PSF model from many stamp collections, and the fit of its profile.

`measure_model` is the algorithm behind `MeasureExtendedPsfTask` for one focal-plane region.
``ANNULUS`` (LSST 2022): the stamps are stacked as stored, i.e. normalized by their annular
flux (`~imaging.stamp_stacking.stack_stamps`); stamps kept unnormalized (annular flux NaN: not
positive, e.g. a faint star whose annulus is below the sky noise) are left out. The model is
then scaled to a clipped mean of 1 in the stamps' annulus (the annular flux per pixel: the
units a subtraction scales by) and a Moffat core + power-law wing is fitted to its azimuthal
profile (`~imaging.extended_psf_profile.fit_profile`).

``PSF_AMPLITUDE`` (LSST 2026): each stamp's amplitude and polynomial background pedestal are
fitted jointly (`~imaging.stamp_amplitude_fit`), first against a PSF model (``psf_model``; if
none is given, the annulus-normalized stack stands in for it and sets the zero level), then
against the current stack, for ``fit_iterations``; every iteration restacks the stamps with
``(stamp - pedestal) / amplitude`` (`~imaging.stamp_stacking.stack_stamps`' corrections) and
rescales the stack to an annulus mean of 1. Stamps that cannot be fitted are left out.

Either way the stamps may be aligned radially first (``alignment="RADIAL"``,
`imaging.radial_alignment`) instead of by the detectors' quarter turns.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ._convolve import clipped_stats
from .extended_psf import RegionalExtendedPsf
from .extended_psf_profile import azimuthal_profile, fit_profile
from .radial_alignment import ALIGNMENTS, align_radially
from .stamp_amplitude_fit import AmplitudeFitConfig, StampFit, fit_stamps
from .stamp_stacking import (
    FileStampSource,
    NoStampsError,
    SourceInventory,
    StackingConfig,
    StampCorrections,
    StampSource,
    stack_stamps,
    stamp_shape,
    take_inventory,
)
from .stamps import annulus_mask
from .stamps_io import write_stamps_fits

__all__ = ["NORMALIZATIONS", "ModelReport", "measure_model"]

NORMALIZATIONS = ("ANNULUS", "PSF_AMPLITUDE")


@dataclass
class ModelReport:
    """How a model was made: stamps stacked, amplitudes fitted, the annulus scale applied."""

    n_stamps: int
    n_fitted: int
    annulus_scale: float
    peak_cube_bytes: int
    corrections: list[StampCorrections] | None = None
    fits: list[list[StampFit]] | None = None
    fit_start: str | None = None


def _annulus_scale(image: np.ndarray, radii: tuple[int, int]) -> float:
    ny, nx = image.shape
    ring = annulus_mask(image.shape, (nx // 2, ny // 2), *radii)
    return float(clipped_stats(image[ring], n_sigma=4.0, n_iter=3)[0])


def measure_model(
    sources: Sequence[StampSource],
    stacking: StackingConfig,
    *,
    normalization: str = "ANNULUS",
    annulus_radii: tuple[int, int] | None = None,
    detector_list: Sequence[int] = (),
    amplitude_fit: AmplitudeFitConfig | None = None,
    fit_iterations: int = 5,
    psf_model: np.ndarray | None = None,
    alignment: str = "QUARTER_TURNS",
) -> tuple[RegionalExtendedPsf, ModelReport]:
    """Stack ``sources`` into one model (see the module docstring).

    Parameters
    ----------
    sources : sequence of `~imaging.stamp_stacking.StampSource`
        The region's stamp collections.
    stacking : `~imaging.stamp_stacking.StackingConfig`
        Statistic, clipping, bad planes, magnitude cut, sub-boxes, memory budget.
    normalization : `str`
        ``ANNULUS`` or ``PSF_AMPLITUDE``.
    annulus_radii : `tuple` [`int`, `int`], optional
        Annulus for the final scaling (default: the stamps' own radii).
    detector_list : sequence of `int`
        Detectors of the region (stored with the model).
    amplitude_fit : `~imaging.stamp_amplitude_fit.AmplitudeFitConfig`, optional
        ``PSF_AMPLITUDE``: background order, outer radius (`None`: the annulus outer radius).
    fit_iterations : `int`
        ``PSF_AMPLITUDE``: fit-and-stack iterations (the first against ``psf_model``).
    psf_model : `numpy.ndarray`, optional
        ``PSF_AMPLITUDE``: the first iteration's model on the stamp grid.
    alignment : `str`
        ``QUARTER_TURNS`` (the stamps as stored) or ``RADIAL``: each source's stamps are
        rotated into their radial frames (`~imaging.radial_alignment.align_radially`) and
        spilled to a temporary FITS file that the stacking then reads in parts.

    Raises
    ------
    ValueError
        On an unknown normalization, fewer than one iteration, a PSF model of another shape.
    ~imaging.stamp_stacking.NoStampsError
        If no stamp passes the selection (or, ``PSF_AMPLITUDE``, none can be fitted).
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization {normalization!r} not in {NORMALIZATIONS}")
    if fit_iterations < 1:
        raise ValueError(f"fit_iterations must be >= 1, got {fit_iterations}")
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment {alignment!r} not in {ALIGNMENTS}")
    if alignment == "RADIAL":
        with tempfile.TemporaryDirectory(prefix="radial_stamps_") as folder:
            aligned = [
                _spill_aligned(source, os.path.join(folder, f"{k}.fits"), k)
                for k, source in enumerate(sources)
            ]
            return measure_model(
                aligned, stacking, normalization=normalization, annulus_radii=annulus_radii,
                detector_list=detector_list, amplitude_fit=amplitude_fit,
                fit_iterations=fit_iterations, psf_model=psf_model,
            )  # fmt: skip
    shape = stamp_shape(sources)
    inventory = take_inventory(sources, shape, stacking)
    radii = annulus_radii or next(
        (inv.annulus_radii for inv in inventory if inv.annulus_radii), None
    )
    report = ModelReport(0, 0, 1.0, 0)
    if normalization == "ANNULUS" or psf_model is None:
        normalized = _normalized_only(inventory)
        if not any(inv.selected for inv in normalized):
            raise NoStampsError("no stamp was normalized by its annular flux")
        result = stack_stamps(sources, stacking, shape=shape, inventory=normalized)
        report.peak_cube_bytes = result.peak_cube_bytes
        model = result.model.image
        report.fit_start = "ANNULUS_STACK"
    else:
        model = np.asarray(psf_model, dtype=np.float32)
        if model.shape != shape:
            raise ValueError(f"psf_model shape {model.shape} differs from the stamps' {shape}")
        report.fit_start = "PSF_MODEL"
    if normalization == "PSF_AMPLITUDE":
        fit_config = amplitude_fit or AmplitudeFitConfig()
        if fit_config.pedestal_radius is None and radii:
            fit_config = replace(fit_config, pedestal_radius=float(radii[1]))
        for _ in range(fit_iterations):
            model = _normalized(model, radii)
            corrections, fits = _fit_sources(sources, inventory, model, fit_config)
            n_fitted = sum(1 for per in fits for f in per if math.isfinite(f.amplitude))
            if n_fitted == 0:
                raise NoStampsError(
                    f"none of the {sum(len(f) for f in fits)} stamps could be fitted: "
                    + next((f.problem for per in fits for f in per if f.problem), "")
                )
            result = stack_stamps(
                sources, stacking, corrections=corrections, shape=shape, inventory=inventory
            )
            report.peak_cube_bytes = max(report.peak_cube_bytes, result.peak_cube_bytes)
            model = result.model.image
        report.n_fitted, report.corrections, report.fits = n_fitted, corrections, fits
    report.n_stamps = report.n_fitted if normalization == "PSF_AMPLITUDE" else result.n_stamps
    scale = _annulus_scale(model, radii) if radii else 1.0
    if math.isfinite(scale) and scale > 0:
        model /= np.float32(scale)
    report.annulus_scale = scale
    profile = fit_profile(azimuthal_profile(model))
    regional = RegionalExtendedPsf(result.model, list(detector_list), report.n_stamps, profile)
    return regional, report


def _spill_aligned(source: StampSource, path: str, index: int) -> FileStampSource:
    """Write ``source``'s stamps, radially aligned, to ``path``; return a source reading it."""
    stamps = source.read()
    write_stamps_fits(align_radially(stamps, source=f"stamp source {index}"), path)
    return FileStampSource(path)


def _normalized_only(inventory: Sequence[SourceInventory]) -> list[SourceInventory]:
    """Return the inventory without the stamps kept unnormalized (annular flux NaN)."""
    return [
        replace(inv, selected=[i for i in inv.selected if math.isfinite(inv.annular_fluxes[i])])
        for inv in inventory
    ]


def _normalized(model: np.ndarray, radii: tuple[int, int] | None) -> np.ndarray:
    """``model`` scaled to an annulus mean of 1 (unchanged without radii or a usable mean)."""
    scale = _annulus_scale(model, radii) if radii else 1.0
    return model / np.float32(scale) if math.isfinite(scale) and scale > 0 else model


def _fit_sources(
    sources: Sequence[StampSource],
    inventory: Sequence[SourceInventory],
    model: np.ndarray,
    config: AmplitudeFitConfig,
) -> tuple[list[StampCorrections], list[list[StampFit]]]:
    """Fit every selected stamp of every source against ``model`` (one source read at a time)."""
    corrections, fits = [], []
    for source, inv in zip(sources, inventory, strict=True):
        stamps = source.read(indices=inv.selected) if inv.selected else []
        fixed, per = fit_stamps(stamps, inv.selected, model, config, n_stamps=inv.n_stamps)
        corrections.append(fixed)
        fits.append(per)
    return corrections, fits
