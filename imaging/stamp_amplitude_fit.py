"""Per-stamp PSF amplitude and background pedestal, fitted jointly (the 2026 normalization).

Each stamp is modelled as ``a · M(x, y) + Σ_k c_k T_k(u, v)``: ``M`` is the current model on
the stamp grid (a PSF model, later the stack itself), ``T_k`` the background polynomial terms
``u^p v^q`` (``p + q ≤ order``; `~imaging.stamp_stacking.polynomial_terms`, the same terms the
stacker subtracts; none with ``background_order=None``: the amplitude alone, for stamps whose
sky was subtracted already). ``a`` and the ``c_k`` are one linear least-squares solve with
the design matrix ``[M, 1, u, v, …]`` over the stamp's usable pixels (finite in stamp and
model, free of the bad mask planes, not in a *neighbour's* ``DETECTED`` footprint; the star's
own footprint, the ``DETECTED`` component at the centre, is where the amplitude is measured),
weighted by the inverse variance when the stamp has one.

Why the fit is not degenerate: ``M`` and the polynomial are separable only where they differ.
The star's footprint constrains ``a`` (the model is peaked there, the polynomial smooth); the
pedestal is constrained by the **outer pixels**: usable pixels at ``r ≥ pedestal_radius`` from
the centre (by default the annulus outer radius), where the model is faint. (The star's own
footprint is not left out there: a bright star's covers the whole stamp.) A stamp with fewer
than ``min_outer_pixels_per_term`` outer pixels per polynomial term, or without a positive,
finite amplitude, is not fitted (amplitude NaN: the stacker leaves it out). Masking the star's
own footprint too (the degenerate draft) left only the faint wing to tell ``a · M`` from a
smooth pedestal.

The zero level of the model itself is not determined by these fits (``M + Q`` with ``Q`` in
the polynomial space fits every stamp as well as ``M``, with pedestals ``c - a·Q``): it is
the zero level of the first model, which is why the iteration starts from a PSF model. On the
demo's faint stars (halo below the sky noise past r ≈ 20 px) an order-2 pedestal started from
the annulus stack took the halo with it (negative wings); there, stamps cut from a
sky-subtracted exposure are better fitted by the amplitude alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .stamp_stacking import StampCorrections, polynomial_terms
from .stamps import DEFAULT_BAD_MASK_PLANES, BrightStarStamp, BrightStarStamps

__all__ = ["AmplitudeFitConfig", "StampFit", "fit_stamp", "fit_stamps"]


@dataclass(frozen=True)
class AmplitudeFitConfig:
    """How each stamp's amplitude and pedestal are fitted.

    Raises
    ------
    ValueError
        On a negative order, a non-positive radius or pixel count.
    """

    background_order: int | None = 2
    pedestal_radius: float | None = None
    min_outer_pixels_per_term: int = 20
    bad_mask_planes: tuple[str, ...] = DEFAULT_BAD_MASK_PLANES
    detected_plane: str = "DETECTED"
    max_condition: float = 1e10

    def __post_init__(self) -> None:
        if self.background_order is not None and self.background_order < 0:
            raise ValueError(
                f"background_order must be >= 0 (or None: no pedestal), got "
                f"{self.background_order}"
            )
        radius = self.pedestal_radius
        if (radius is not None and radius <= 0) or self.min_outer_pixels_per_term < 1:
            raise ValueError(
                f"pedestal_radius must be > 0 and min_outer_pixels_per_term >= 1, got "
                f"{self.pedestal_radius}, {self.min_outer_pixels_per_term}"
            )
        object.__setattr__(self, "bad_mask_planes", tuple(self.bad_mask_planes))

    @property
    def n_terms(self) -> int:
        """Number of background polynomial terms (0 without a pedestal)."""
        order = self.background_order
        return 0 if order is None else (order + 1) * (order + 2) // 2


@dataclass(frozen=True)
class StampFit:
    """One stamp's fit: amplitude (NaN: not fitted), pedestal coefficients, outer pixels used."""

    amplitude: float
    background: np.ndarray
    n_outer: int
    problem: str | None = None


def _neighbour_detections(detected: np.ndarray, center: tuple[int, int]) -> np.ndarray:
    """Return the ``DETECTED`` pixels outside the footprint at ``center`` (``(x, y)``)."""
    labels, n = ndimage.label(detected, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return detected
    cx, cy = center
    own = labels[cy, cx]
    if own == 0:  # centre not detected (a saturated core may be): nearest footprint within 3 px
        near = labels[max(cy - 3, 0) : cy + 4, max(cx - 3, 0) : cx + 4]
        own = int(near.max())
    return detected & (labels != own) if own else detected


def fit_stamp(
    stamp: BrightStarStamp, model: np.ndarray, terms: np.ndarray, config: AmplitudeFitConfig
) -> StampFit:
    """Fit ``a · model + pedestal`` to one stamp (see the module docstring).

    Parameters
    ----------
    stamp : `~imaging.stamps.BrightStarStamp`
        The whole stamp (image, mask, variance).
    model : `numpy.ndarray`
        The current model on the stamp grid (NaN where unknown).
    terms : `numpy.ndarray`
        ``(n_terms, ny, nx)`` background terms (`~imaging.stamp_stacking.polynomial_terms`).
    config : `AmplitudeFitConfig`
        Order, outer radius (`None`: a quarter of the stamp's smaller side), planes.

    Returns
    -------
    fit : `StampFit`
        ``problem`` says why a stamp was not fitted.
    """
    n_terms = terms.shape[0]
    nan_fit = np.full(n_terms, np.nan)
    image = stamp.stamp_im.image
    mask = stamp.stamp_im.mask
    if image.shape != model.shape:
        raise ValueError(f"stamp shape {image.shape} differs from the model's {model.shape}")
    ny, nx = image.shape
    usable = np.isfinite(image) & np.isfinite(model)
    planes = [p for p in config.bad_mask_planes if p in mask.planes]
    if planes:
        usable &= ~mask.is_set(planes)
    if config.detected_plane in mask.planes:
        detected = mask.is_set(config.detected_plane)
        usable &= ~_neighbour_detections(detected, (nx // 2, ny // 2))
    ys, xs = np.ogrid[:ny, :nx]
    radius = config.pedestal_radius or min(nx, ny) / 4.0
    outer_region = np.hypot(xs - nx // 2, ys - ny // 2) >= radius
    n_outer = int(np.count_nonzero(usable & outer_region))
    if n_outer < config.min_outer_pixels_per_term * n_terms:
        return StampFit(
            math.nan, nan_fit, n_outer,
            f"{n_outer} outer pixels for {n_terms} pedestal terms "
            f"(< {config.min_outer_pixels_per_term} per term)",
        )  # fmt: skip
    variance = stamp.stamp_im.variance[usable].astype(np.float64)
    if np.all(np.isfinite(variance)) and np.all(variance > 0):
        weight = 1.0 / np.sqrt(variance)
    else:
        weight = np.ones(variance.shape)
    design = np.empty((weight.size, 1 + n_terms))
    design[:, 0] = model[usable]
    design[:, 1:] = terms[:, usable].T
    design *= weight[:, None]
    target = image[usable].astype(np.float64) * weight
    # normal equations on unit-norm columns (a (1 + n_terms)² solve, not an SVD of the pixels);
    # their condition number says whether the model and the pedestal can be told apart
    norms = np.sqrt(np.einsum("ij,ij->j", design, design))
    if not np.all(norms > 0):
        return StampFit(math.nan, nan_fit, n_outer, "a design column is zero on usable pixels")
    design /= norms
    normal = design.T @ design
    if np.linalg.cond(normal) > config.max_condition:
        return StampFit(
            math.nan, nan_fit, n_outer,
            f"model and pedestal are not separable (condition {np.linalg.cond(normal):.3g})",
        )  # fmt: skip
    coef = np.linalg.solve(normal, design.T @ target) / norms
    amplitude = float(coef[0])
    if not (math.isfinite(amplitude) and amplitude > 0):
        return StampFit(math.nan, nan_fit, n_outer, f"amplitude {amplitude:.3g} is not positive")
    return StampFit(amplitude, coef[1:], n_outer)


def fit_stamps(
    stamps: BrightStarStamps,
    selected: Sequence[int],
    model: np.ndarray,
    config: AmplitudeFitConfig,
    *,
    n_stamps: int,
) -> tuple[StampCorrections, list[StampFit]]:
    """Fit the ``selected`` stamps of one source (read as ``stamps``, in that order).

    Returns
    -------
    corrections : `~imaging.stamp_stacking.StampCorrections`
        Indexed like the source's ``n_stamps`` stamps (NaN amplitude: left out of the stack).
    fits : `list` [`StampFit`]
        One per selected stamp.
    """
    shape = model.shape
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    if config.background_order is None:
        terms = np.empty((0, *shape))
    else:
        terms = polynomial_terms(
            config.background_order, xs.ravel(), ys.ravel(), shape
        ).reshape(-1, *shape)
    amplitude = np.full(n_stamps, np.nan)
    background = np.full((n_stamps, terms.shape[0]), np.nan)
    fits = []
    for index, stamp in zip(selected, stamps, strict=True):
        fit = fit_stamp(stamp, model, terms, config)
        fits.append(fit)
        amplitude[index] = fit.amplitude
        background[index] = fit.background
    if config.background_order is None:
        return StampCorrections(amplitude, None, 0), fits
    return StampCorrections(amplitude, background, config.background_order), fits
