"""One extended PSF model from many stamp collections, and the fit of its profile.

`measure_model` is the algorithm behind `MeasureExtendedPsfTask` for one focal-plane region.
``ANNULUS`` (LSST 2022): the stamps are stacked as stored, i.e. normalized by their annular
flux (`~imaging.stamp_stacking.stack_stamps`). The model is then scaled to a clipped mean of 1
in the stamps' annulus (the annular flux per pixel: the units a subtraction scales by) and a
Moffat core + power-law wing is fitted to its azimuthal profile
(`~imaging.extended_psf_profile.fit_profile`).

The 2026 normalization (fitted amplitude and pedestal) is not here yet: a pedestal fitted with
``a · model`` is degenerate with a constant offset of the model, and the zero level then has
to come from a halo-free sky or a parametric wing; see the report of issue 13.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._convolve import clipped_stats
from .extended_psf import RegionalExtendedPsf
from .extended_psf_profile import azimuthal_profile, fit_profile
from .stamp_stacking import (
    StackingConfig,
    StampSource,
    stack_stamps,
    stamp_shape,
    take_inventory,
)
from .stamps import annulus_mask

__all__ = ["NORMALIZATIONS", "ModelReport", "measure_model"]

NORMALIZATIONS = ("ANNULUS",)


@dataclass
class ModelReport:
    """How a model was made: stamps stacked, amplitudes fitted, the annulus scale applied."""

    n_stamps: int
    n_fitted: int
    annulus_scale: float
    peak_cube_bytes: int


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
) -> tuple[RegionalExtendedPsf, ModelReport]:
    """Stack ``sources`` into one model (see the module docstring).

    Parameters
    ----------
    sources : sequence of `~imaging.stamp_stacking.StampSource`
        The region's stamp collections.
    stacking : `~imaging.stamp_stacking.StackingConfig`
        Statistic, clipping, bad planes, magnitude cut, sub-boxes, memory budget.
    normalization : `str`
        ``ANNULUS``.
    annulus_radii : `tuple` [`int`, `int`], optional
        Annulus for the final scaling (default: the stamps' own radii).
    detector_list : sequence of `int`
        Detectors of the region (stored with the model).

    Raises
    ------
    ValueError
        On an unknown normalization.
    ~imaging.stamp_stacking.NoStampsError
        If no stamp passes the selection.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization {normalization!r} not in {NORMALIZATIONS}")
    shape = stamp_shape(sources)
    inventory = take_inventory(sources, shape, stacking)
    result = stack_stamps(sources, stacking, shape=shape, inventory=inventory)
    peak = result.peak_cube_bytes
    n_fitted = 0
    radii = annulus_radii or next(
        (inv.annulus_radii for inv in inventory if inv.annulus_radii), None
    )
    scale = _annulus_scale(result.model.image, radii) if radii else 1.0
    if math.isfinite(scale) and scale > 0:
        result.model.image /= np.float32(scale)
    profile = fit_profile(azimuthal_profile(result.model.image))
    regional = RegionalExtendedPsf(result.model, list(detector_list), result.n_stamps, profile)
    return regional, ModelReport(result.n_stamps, n_fitted, scale, peak)

