"""Azimuthal profile of a stacked model, and its fit: a Moffat core plus a power-law wing.

`azimuthal_profile` averages the finite pixels of an image in one-pixel-wide rings around a
centre (ring ``k`` holds ``k - 0.5 <= r < k + 0.5``; ring 0 is the centre pixel).

`fit_profile` fits ``I(r) = A_c (1 + (r/α)²)^(-β) + A_w (1 + (r/r_w)²)^(-γ/2)`` to such a
profile by least squares on the logarithm (every radius weighs alike, from the core to the
faint wing): the first term is the core, the second a wing falling as ``r^(-γ)`` far out. The
fit starts from a Moffat fitted to the inner rings and a power law fitted to the outer ones.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["AzimuthalProfile", "ProfileFit", "azimuthal_profile", "fit_profile"]


@dataclass(frozen=True)
class AzimuthalProfile:
    """Ring means of an image (``radius`` in pixels, ``value`` NaN for empty rings)."""

    radius: np.ndarray
    value: np.ndarray
    count: np.ndarray


def azimuthal_profile(
    image: np.ndarray, center: tuple[float, float] | None = None, *, max_radius: int | None = None
) -> AzimuthalProfile:
    """Mean of the finite pixels in one-pixel rings around ``center`` (``(x, y)``).

    Parameters
    ----------
    image : `numpy.ndarray`
        Pixels ``[y, x]``; NaN pixels are left out.
    center : `tuple` [`float`, `float`], optional
        Ring centre (default: the centre pixel).
    max_radius : `int`, optional
        Last ring (default: the largest ring that fits inside the image).

    Returns
    -------
    profile : `AzimuthalProfile`
        Rings ``0 .. max_radius``; ``radius`` is the mean radius of each ring's pixels.
    """
    ny, nx = image.shape
    cx, cy = center if center is not None else ((nx - 1) / 2.0, (ny - 1) / 2.0)
    if max_radius is None:
        max_radius = int(min(cx, cy, nx - 1 - cx, ny - 1 - cy))
    ys, xs = np.mgrid[0:ny, 0:nx]
    r = np.hypot(xs - cx, ys - cy)
    ring = np.floor(r + 0.5).astype(np.intp)
    good = np.isfinite(image) & (ring <= max_radius)
    n_rings = max_radius + 1
    count = np.bincount(ring[good], minlength=n_rings)[:n_rings]
    total = np.bincount(ring[good], weights=image[good].astype(float), minlength=n_rings)
    radii = np.bincount(ring[good], weights=r[good], minlength=n_rings)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = total[:n_rings] / count
        mean_r = radii[:n_rings] / count
    empty = count == 0
    mean_r[empty] = np.arange(n_rings)[empty]
    return AzimuthalProfile(mean_r, value, count)


@dataclass(frozen=True)
class ProfileFit:
    """Fitted ``A_c (1 + (r/α)²)^(-β) + A_w (1 + (r/r_w)²)^(-γ/2)`` (pixels, model units).

    ``rms_log`` is the root mean square of the natural-log residuals over the fitted rings
    ``r_min .. r_max``.
    """

    core_amplitude: float
    core_alpha: float
    core_beta: float
    wing_amplitude: float
    wing_radius: float
    wing_index: float
    r_min: float
    r_max: float
    rms_log: float

    def __call__(self, r: Any) -> np.ndarray:
        """Evaluate the profile at radii ``r`` (pixels)."""
        r = np.asarray(r, dtype=float)
        core = self.core_amplitude * (1.0 + (r / self.core_alpha) ** 2) ** (-self.core_beta)
        wing = self.wing_amplitude * (1.0 + (r / self.wing_radius) ** 2) ** (
            -self.wing_index / 2.0
        )
        return core + wing

    def core(self, r: Any) -> np.ndarray:
        """Evaluate the Moffat core alone."""
        r = np.asarray(r, dtype=float)
        return self.core_amplitude * (1.0 + (r / self.core_alpha) ** 2) ** (-self.core_beta)

    def to_dict(self) -> dict[str, float]:
        """Plain floats by name (exact)."""
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProfileFit:
        """Inverse of `to_dict`.

        Raises
        ------
        KeyError
            If a parameter is missing.
        """
        return cls(**{name: float(data[name]) for name in cls.__dataclass_fields__})


def fit_profile(
    profile: AzimuthalProfile, *, r_min: float = 0.0, r_max: float | None = None
) -> ProfileFit | None:
    """Fit a Moffat core plus a power-law wing to the positive rings of ``profile``.

    Parameters
    ----------
    profile : `AzimuthalProfile`
        Ring means.
    r_min, r_max : `float`
        Radii (pixels) of the rings to fit (default: all).

    Returns
    -------
    fit : `ProfileFit` or `None`
        `None` when fewer than 8 rings are positive and finite (nothing to fit).
    """
    from scipy.optimize import least_squares

    r, v = profile.radius, profile.value
    upper = float(r.max()) if r_max is None else float(r_max)
    use = np.isfinite(v) & (v > 0) & (r >= r_min) & (r <= upper)
    if np.count_nonzero(use) < 8:
        return None
    r, v = r[use], v[use]
    log_v = np.log(v)
    peak = float(v.max())
    # Start: core from the half-maximum radius, wing from a power law over the outer third.
    half = r[v >= peak / 2.0]
    hwhm = max(float(half.max()) if half.size else 1.0, 0.5)
    beta0 = 3.0
    alpha0 = hwhm / math.sqrt(2 ** (1 / beta0) - 1)
    outer = r >= r[0] + 2.0 * (r[-1] - r[0]) / 3.0
    if np.count_nonzero(outer) >= 2 and r[outer].min() > 0:
        slope, intercept = np.polyfit(np.log(r[outer]), log_v[outer], 1)
        gamma0 = float(np.clip(-slope, 0.5, 8.0))
    else:
        gamma0, intercept = 3.0, math.log(max(v[-1], 1e-30))
    rw0 = max(2.0 * hwhm, 1.0)
    aw0 = math.exp(intercept) * rw0 ** (-gamma0)
    aw0 = float(np.clip(aw0, 1e-12 * peak, 0.5 * peak))
    # parameters in logs keep everything positive
    x0 = np.log([peak, alpha0, beta0, aw0, rw0, gamma0])

    def model(p: np.ndarray) -> np.ndarray:
        ac, alpha, beta, aw, rw, gamma = np.exp(p)
        return ac * (1 + (r / alpha) ** 2) ** (-beta) + aw * (1 + (r / rw) ** 2) ** (-gamma / 2)

    def residual(p: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(model(p), 1e-300)) - log_v

    bounds = (
        np.log([1e-6 * peak, 0.05, 0.3, 1e-14 * peak, 0.1, 0.2]),
        np.log([1e3 * peak, 1e3, 50.0, 10 * peak, 1e4, 12.0]),
    )
    x0 = np.clip(x0, bounds[0] + 1e-9, bounds[1] - 1e-9)
    result = least_squares(residual, x0, bounds=bounds, x_scale="jac", max_nfev=2000)
    ac, alpha, beta, aw, rw, gamma = (float(v) for v in np.exp(result.x))
    rms = float(np.sqrt(np.mean(residual(result.x) ** 2)))
    return ProfileFit(ac, alpha, beta, aw, rw, gamma, float(r.min()), float(r.max()), rms)
