"""PSF determination from star stamps: a PSFEx-like pixel-basis polynomial model.

Design:

* `PsfDeterminer` is the plug-in base (one abstract method, `PsfDeterminer.determine`);
  `PixelPsfDeterminer` is the default implementation and `PixelPsf` the model it
  returns.
* Candidates (selected stars) get a stamp of ``kernel_size`` px (odd) around their
  centroid; the stamp is shifted by the sub-pixel offset with separable Lanczos-3 so that
  the star sits on the central pixel, and divided by its flux.  Masked pixels
  (``bad_planes``) and their Lanczos footprint get zero weight.
* The model is linear in its coefficients; every coefficient image is a polynomial of total
  degree ``spatial_order`` in the scaled position (u, v) ∈ [-1, 1]².
* Core (radius ``core_radius`` × the stars' FWHM): the mean PSF is free pixels (one
  weighted least-squares solve per pixel; weights flux² / variance).  With
  ``variation="derivatives"`` (default) the polynomial terms beyond the constant are
  combinations of derivative images of the mean (``variation_basis="affine"``: a shift,
  a flux-conserving stretch along x and y, a shear), fitted jointly for the whole stamp;
  only within ``free_radius`` × FWHM (default 0: nowhere) is every term free per pixel.
  With ``"pixels"`` every pixel of every term is free, which overfits the noise of few
  stars (8.9% mean unweighted-FWHM error on the 5x5 grid with 30 noisy stars).
* The mean and the variation are fitted in turn with the polynomial terms centred on the
  stars' S/N²-weighted position (the constant term is the PSF there; the coefficients go
  back to the plain basis afterwards).  About the detector's centre the two shared a
  direction whenever the few bright stars that weigh most sat off-centre, and two rounds
  were far from converged: noise-free stars drawn from the simulator's PSF gave 1-4% at
  the grid's edges with 30 stars, 0.2-0.4% with the centring.  The stretch images used to
  lack the flux term (d/da of I(x/(1+a))/(1+a) is -(x ∂x I + I)): the star amplitudes
  absorbed it and a third of a 7% size change over the field was captured.
* Wings (outside the core): a regular basis instead of free pixels, power laws ``r^-p``
  (``wing_powers``) times (1, cos 2φ, sin 2φ), fitted jointly to all wing pixels of all
  stars.  Free wing pixels fit each star's noise: with 50 stars they summed to −5% of the
  flux and the FWHM from unweighted moments was off by up to 30% at the corners; the
  smooth wings are positive.
* Over the field (``wing_variation="stretch"``, default) the outer core and the wings vary
  together as derivatives of the one mean image (shift, stretch and shear with
  ``variation_basis="affine"``): a change of seeing or focus stretches the whole PSF, and
  a power-law tail ``r^-p`` brightens by (p − 2) × the stretch.  The bright outer core
  fixes the stretch, so the wings follow it instead of being fitted from their own noise
  (the older ``"scale"``: one free polynomial amplitude of the mean wings, from
  ``wing_scale_min_stars`` on; ``"none"``: constant wings).
* The spatial order drops while there are fewer than ``min_stars_per_term`` stars per
  polynomial term (PSFEx and LSST lower it when stars are few): order 2 needs 4 × 6 = 24
  stars, order 1 needs 12.  On the one-detector camera, whose PSF changes more over the
  field, 28-29 stars at order 0 leave the adaptive FWHM off by 2.8-3.1% (order 2:
  0.5-0.6%), so the count rule stays low.  Stellar fluxes are then refitted as PSF
  amplitudes and the fit is repeated.
* The basis stays regular instead (``quadratic_variation="radial"``, default): the degree-2
  terms are one coefficient, the isotropic stretch times x² + y², so that with the free
  linear terms the size varies as a paraboloid about any point (defocus from field
  curvature or a tilted focal plane; the simulator's FWHM grows as r² over the focal
  plane) while shift, stretch and shear vary linearly.  With every derivative image on
  u², uv and v² (``"full"``: 15 coefficients instead of 1) the saddle-shaped size terms
  extrapolated faint stars' noise to the corners.  ``python -m bench psf_wings`` (2048²
  detectors at 0° and 90°, max |error| of the unweighted FWHM over the 5x5 grid, worst
  draw / mean of draws / draws ≤ 1% of 16; seeds 0-7, then 8-15; "prior": the
  ``variation_sigma`` (0.01, 0.007) below):

  =============  ======================  ======================  ======================
  order          30 stars                50 stars                200 stars
  =============  ======================  ======================  ======================
  0              5.41 / 3.49% 0/16       4.63 / 3.38% 0/16       4.10 / 3.08% 0/16
  1              1.49 / 0.84% 14/16      1.08 / 0.71% 15/16      0.73 / 0.59% 16/16
  2 full         2.43 / 1.00% 10/16      2.16 / 0.82% 11/16      0.61 / 0.40% 16/16
  2 radial       1.57 / 0.65% 15/16      0.97 / 0.48% 16/16      0.39 / 0.32% 16/16
  2 full, prior  1.14 / 0.79% 14/16      1.51 / 0.72% 12/16      0.59 / 0.40% 16/16
  1 (8-15)       1.25 / 0.74% 14/16      1.09 / 0.76% 15/16      0.63 / 0.57% 16/16
  2 full (8-15)  2.09 / 1.02% 10/16      1.94 / 0.70% 14/16      0.50 / 0.38% 16/16
  2 radial 8-15  1.02 / 0.58% 15/16      0.90 / 0.48% 16/16      0.50 / 0.33% 16/16
  =============  ======================  ======================  ======================

  Order 0 (one PSF; without the outer profile, which comes with the varying terms) misses
  the 7.5% change of size.  Order 1 leaves the curvature out: noise-free stars drawn from
  the truth give 0.79% at the corners (order 2: 0.18%), and the centre comes out 0.5% wide
  with 200 stars.  Only the isotropic stretch at degree 2, on all three of u², uv, v², is
  no better than full (2.44 / 1.09% with 30 stars): the noise is in the saddle terms.  On
  the one-detector 1024² cameras (28-36 stars) the adaptive FWHM over the 5x5 grid is off
  by at most 0.62, 0.54 and 0.56% (full: 0.86, 0.77, 0.90%).  Choosing among order 1,
  radial and full per draw by 5-fold cross-validation (χ² of held-out stars, 15 fits more)
  picked full in 2-7 of 16 draws and gave 1.00 / 0.72%, 0.97 / 0.52% and 0.67 / 0.41%: the
  held-out χ² at the stars does not see the extrapolation to the corners.  Where a
  camera's size pattern is no paraboloid and stars are many, ``"full"`` is the choice: the
  simulator's truth has exactly the radial form, so part of the gain here is that match.
  The numbers in the bullets below were measured with ``"full"``.
* ``variation_sigma`` (default off) puts a zero-mean Gaussian prior on the coefficients
  of the varying terms (σ per degree; a ridge added to the normal equations, which are a
  χ², so the data outweigh it as the stars get more or brighter).  Same bench, order 2,
  max error over the grid (worst draw / draws ≤ 1%), seeds 0-7 | 8-15: with σ (0.01,
  0.007) 30 stars 2.34% 8/16 | 2.61% 7/16 → 1.74% 10/16 | 1.85% 10/16, 50 stars 2.19%
  10/16 | 2.35% 12/16 → 1.54% 10/16 | 1.90% 13/16, 200 stars 0.68% unchanged; with
  (0.01, 0.002) 1.75% | 1.47% and 1.33% | 1.77%.  But the prior shrinks true variation
  too: where the PSF changes more over the detector (the one-detector 1024² cameras of
  ``tests/imaging/test_characterize_algorithms_sim.py``, seeds 3 and 4, and of
  ``tests/tasks/test_characterize_image.py``, 28 stars) the worst adaptive-FWHM error
  went from 0.62% and 0.66% to 1.29% and 0.74% with (0.01, 0.007); (0.01, 0.002) gave
  1.25% on the latter; (0.01, 0.02) keeps the former at 0.74% but gains little on the
  bench.  How much the PSF may vary over a detector is the instrument's: hence off by
  default.  A prior variance estimated from the coefficients themselves (positive-part
  James-Stein per degree and derivative image) shrank real variation to nothing (30
  stars: 5.4% worst), and a per-star pedestal fitted with the amplitude was unstable
  (200 stars: 5.0%).
  What was left with few stars was mostly no corner effect: in the failing draws the
  whole grid was off by about 1%, from the far wings (r > 10 px hold 1e-3 of the flux,
  which weighs r² in unweighted moments), fitted from the few brightest stars' noise.
* Outer profile (``profile_radius``, default 1.5 × FWHM): beyond it the mean image is an
  elliptical, pixel-integrated Moffat (β free) fitted to the mean outside
  ``profile_fit_radius`` (0.5 × FWHM), where the bright inner pixels weigh most
  (`imaging._psf_profile`); the varying terms are the derivatives of that mean, so they
  follow it.  The faint outer pixels then continue the profile the core defines (DAOPHOT's
  analytic function plus look-up table, the other way round) instead of the noise of the
  few brightest stars.  On the bench above (order 2, worst draw / mean of draws / draws
  ≤ 1%, seeds 0-7 | 8-15): 30 stars 2.34 / 1.11% 8/16 | 2.61 / 1.12% 7/16 → 2.43 /
  1.00% 10/16 | 2.09 / 1.02% 10/16; 50 stars 2.19 / 0.94% 10/16 | 2.35 / 0.83% 12/16 →
  2.16 / 0.82% 11/16 | 1.94 / 0.70% 14/16; 200 stars 0.68 / 0.37% | 0.56 / 0.33% →
  0.61 / 0.40% | 0.50 / 0.38%.  The flux beyond 10 px (4.4-4.8e-3 of it in the truth)
  is off by 2-7e-4 at the worst grid point with 30 stars (was 2-14e-4); with 200 stars
  by 2-3e-4 (was 1-6e-4): what the Moffat does not describe of the stacked, resampled
  stars.  Radius 1.0 or 2.0 FWHM gives the same to 0.1%; fitting from 1 FWHM out loses
  the inner pixels' weight (30 stars 2.56 / 1.02%).  The worst draws are now the
  corners: the varying terms extrapolated from faint stars' noise (with 50 stars, a
  corner whose nearest stars are faint and measure 1-1.7% narrower than the truth),
  which no prior on the variation tried fixes (in a prototype of this, with the best of
  four σ chosen per draw against the truth: 30 stars 1.13%, 50 stars 1.48% worst).
* Light of neighbours in the stamps: pixels outside ``pixel_clip_radius`` × FWHM lying
  more than ``pixel_clip`` σ above the model (and their 8 neighbours) leave the fit for
  the following rounds.  Rejecting whole stars by χ² alone kept the stars with faint
  neighbours and dropped bright stars whose χ² is model mismatch; the model came out
  0.5–1% narrower or wider than the truth.
* ``max_snr`` (Piff's maxSNR, default off) caps each star's weight at that S/N.  Measured
  on the simulator it made things worse (200 stars: 0.46% -> 0.96% at S/N 300, with the
  variance-plane weights below, under which the faint stars' wings came out low).
* Weights (``weights="model"``): per star the sky variance (median of the stamp's
  variance) plus the model's Poisson variance (amplitude × model × the variance per
  count, the slope of variance against signal in the bright pixels).  The variance plane
  holds each pixel's own noise (it is computed from the noisy image), so weighting by it
  pulls every pixel down by about 1/gain counts: the faint stars' wings came out low and
  the model 0.3-0.5% narrower than the truth on isolated stars (0.0-0.3% with all
  candidates, whose blends widened it back); with the model's variance +0.1%.
* A pedestal common to all stamps, fitted in turn with the star amplitudes, did not
  converge (noise-free stars over a sky 0.3 counts low: the pedestal came out +0.8 to
  +3.4 counts and the model 0.56% narrower): it would have to be one linear fit with
  the wings.
* Stars whose reduced χ² is an outlier (> median + ``spatial_reject`` × 1.4826·MAD and
  > ``reduced_chi2_for_psf_candidates``) are rejected, for ``n_iter_reject`` rounds.
* Reserved stars never enter the fit; their χ² against the model is reported.

`PixelPsf.kernel_image` evaluates the polynomial at a position, sets pixels that come out
negative (below the noise) to zero, and normalises to unit sum;
``to_dict``/``from_dict`` round-trip exactly.  FWHM is the
`imaging.psf.Psf` definition: 2.3548 × determinant radius of the adaptive moments.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from astropy.table import Table

from ._convolve import LANCZOS_ORDER, bitmask, cutout_indices, shift_stack
from ._errors import NoPsfCandidatesError
from ._psf_profile import fit_moffat
from .psf import Psf

__all__ = [
    "PixelPsf",
    "PixelPsfDeterminer",
    "PixelPsfDeterminerConfig",
    "PsfDeterminationResult",
    "PsfDeterminer",
    "reserve_sources",
]

_log = logging.getLogger(__name__)


def _terms(order: int) -> list[tuple[int, int]]:
    return [(i, j) for d in range(order + 1) for j in range(d + 1) for i in [d - j]]


def _design(u: np.ndarray, v: np.ndarray, order: int) -> np.ndarray:
    return np.stack([u**i * v**j for i, j in _terms(order)], axis=-1)


class PixelPsf(Psf, kind="pixel_polynomial"):
    """Spatially varying PSF: each kernel pixel a polynomial in the scaled position.

    Parameters
    ----------
    coefficients : array_like
        (n_terms, K, K) polynomial coefficient images, terms ordered by total degree
        (1, u, v, u², uv, v², …).
    spatial_order : int
        Polynomial total degree.
    x_range, y_range : tuple of float
        Parent-pixel ranges mapped onto u, v ∈ [-1, 1].
    average_position : tuple of float
        Mean (x, y) of the stars used, pixels.
    core_radius : float, optional
        Pixels farther than this from the centre are wings.  When it is set, negative
        pixels (noise of the extrapolated terms, 1e-4 of the flux at most on the
        simulator's detectors) are set to zero when the kernel is evaluated.  `None`:
        nothing is clipped.
    """

    def __init__(
        self,
        coefficients,
        *,
        spatial_order: int,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
        average_position: tuple[float, float],
        core_radius: float | None = None,
    ) -> None:
        self._coeffs = np.ascontiguousarray(coefficients, dtype=np.float64)
        self._order = int(spatial_order)
        if self._coeffs.ndim != 3 or self._coeffs.shape[0] != len(_terms(self._order)):
            raise ValueError(f"PixelPsf: bad coefficient shape {self._coeffs.shape}")
        if self._coeffs.shape[1] % 2 == 0 or self._coeffs.shape[1] != self._coeffs.shape[2]:
            raise ValueError("PixelPsf: kernel must be square and odd")
        self._x_range = (float(x_range[0]), float(x_range[1]))
        self._y_range = (float(y_range[0]), float(y_range[1]))
        self._avg = (float(average_position[0]), float(average_position[1]))
        self._core_radius = None if core_radius is None else float(core_radius)
        half = self.size // 2
        d = np.arange(-half, half + 1, dtype=np.float64)
        radius = np.hypot(d[None, :], d[:, None])
        self._wing = (radius > self._core_radius) if self._core_radius is not None else None

    @property
    def average_position(self) -> tuple[float, float]:
        """Mean position of the stars that built the model, parent pixels."""
        return self._avg

    @property
    def size(self) -> int:
        """Kernel width and height, pixels."""
        return int(self._coeffs.shape[1])

    def _uv(self, x, y):
        (x0, x1), (y0, y1) = self._x_range, self._y_range
        u = 2.0 * (np.asarray(x, dtype=np.float64) - x0) / max(x1 - x0, 1.0) - 1.0
        v = 2.0 * (np.asarray(y, dtype=np.float64) - y0) / max(y1 - y0, 1.0) - 1.0
        return u, v

    def kernel_image(self, position) -> np.ndarray:
        """Unit-sum centred kernel at ``position`` = (x, y) parent pixels."""
        u, v = self._uv(position[0], position[1])
        k = np.tensordot(_design(u, v, self._order), self._coeffs, axes=(0, 0))
        if self._wing is not None:
            k[k < 0] = 0.0
        return k / k.sum()

    def image(self, position, *, offset=(0.0, 0.0)) -> np.ndarray:
        """Kernel at ``position`` shifted by ``offset`` (dx, dy) pixels with Lanczos-3."""
        k = self.kernel_image(position)
        dx, dy = float(offset[0]), float(offset[1])
        if dx == 0.0 and dy == 0.0:
            return k
        out = shift_stack(k[None], np.array([dx]), np.array([dy]))[0]
        return out / out.sum()

    def image_stack(self, x, y, dx, dy) -> np.ndarray:
        """Kernels at many positions, shifted by (dx, dy) px: an (N, K, K) unit-sum stack.

        Vectorised equivalent of calling `image` for each source (used by measurement).
        """
        u, v = self._uv(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        k = _design(np.atleast_1d(u), np.atleast_1d(v), self._order) @ self._coeffs.reshape(
            self._coeffs.shape[0], -1)
        k = k.reshape(-1, self.size, self.size)
        if self._wing is not None:
            np.maximum(k, 0.0, out=k)
        k = shift_stack(k, np.atleast_1d(dx), np.atleast_1d(dy))
        return k / k.sum(axis=(1, 2), keepdims=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain-python representation (exact round trip through `Psf.from_dict`)."""
        return {
            "kind": self.kind,
            "coefficients": self._coeffs.tolist(),
            "spatial_order": self._order,
            "x_range": list(self._x_range),
            "y_range": list(self._y_range),
            "average_position": list(self._avg),
            "core_radius": self._core_radius,
        }

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> PixelPsf:
        return cls(
            data["coefficients"], spatial_order=data["spatial_order"],
            x_range=tuple(data["x_range"]), y_range=tuple(data["y_range"]),
            average_position=tuple(data["average_position"]),
            core_radius=data.get("core_radius"),
        )

    def __repr__(self) -> str:
        return f"PixelPsf(size={self.size}, spatial_order={self._order})"


class PsfDeterminationResult(NamedTuple):
    """What a determiner returns: the model, the stars used, and metadata."""

    psf: Psf
    used: np.ndarray
    metadata: dict[str, float | int]


class PsfDeterminer(ABC):
    """Plug-in base: build a PSF model from a table of selected stars."""

    @abstractmethod
    def determine(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        variance: np.ndarray,
        stars: Table,
        *,
        reserved: np.ndarray | None = None,
        planes: Mapping[str, int] | None = None,
        xy0: tuple[int, int] = (0, 0),
    ) -> PsfDeterminationResult:
        """Fit a PSF model.

        Parameters
        ----------
        image, mask, variance : ndarray
            Background-subtracted image (counts), uint32 mask, variance (counts²).
        stars : astropy.table.Table
            PSF candidates with centroid and flux columns.
        reserved : ndarray, optional
            Boolean per row: stars kept out of the fit (validation only).
        planes : mapping, optional
            ``{plane name: bit number}``.
        xy0 : tuple of int
            Parent coordinates of pixel (0, 0).

        Returns
        -------
        PsfDeterminationResult
            ``(psf, used, metadata)``; ``used`` is a boolean per row of ``stars``.
        """


@dataclass(slots=True)
class PixelPsfDeterminerConfig:
    """Options of `PixelPsfDeterminer` (PSFEx-like defaults).

    Attributes
    ----------
    kernel_size : float
        Stamp and model size: ≥ 15 means an absolute size in pixels (made odd); smaller
        values scale the stars' median rms size, clipped to [min, max] (LSST rule).
    kernel_size_min, kernel_size_max : int
        Clipping of the scaled size, pixels.
    spatial_order : int
        Largest polynomial degree of the spatial variation (``spatialOrder``).
    min_stars_per_term : float
        The degree drops until the stars used number at least this many per polynomial
        term (1, 3, 6 terms for degrees 0, 1, 2).
    core_radius : float
        Radius of the free-pixel core in units of the stars' median FWHM (from their
        adaptive moments); ≤ 0 makes every pixel free (no wing basis).
    wing_powers : tuple of float
        Radial power laws ``r^-p`` of the wing basis (each times 1, cos 2φ, sin 2φ).
    variation : str
        ``"derivatives"``: the spatially varying terms are combinations of the first and
        second derivatives of the mean PSF (a shift, a change of size and of shape: five
        images), fitted jointly; ``"pixels"``: every pixel of every term is free.
    sampling : float
        Model pixel size in image pixels; only 1.0 is implemented.
    bad_planes : tuple of str
        Planes whose pixels get zero weight (``badMaskBits`` plus CR, BAD, NO_DATA).
    free_radius : float
        Radius (in FWHM) of the inner core where every term is free pixels (0: none).
    variation_basis : str
        Derivative images of the varying terms: ``"affine"`` (shift, flux-conserving
        stretch, shear), ``"blur"`` (shift and second derivatives) or ``"affine+blur"``.
    quadratic_variation : str
        ``"radial"``: the terms of degree 2 are one coefficient, the isotropic stretch
        times x² + y² (pixels; with the free linear terms, a size that varies as a
        paraboloid about any point, as defocus from field curvature does); ``"full"``:
        every derivative image on each of u², uv, v² (15 coefficients instead of 1).
        ``"radial"`` needs the stretch images (``variation_basis`` with ``"affine"``);
        terms of degree 3 and more are always full.
    wing_variation : str
        ``"stretch"``, ``"scale"``, ``"radial"`` or ``"none"`` (see the module docstring).
    wing_scale_min_stars : int
        With ``"scale"``: fewer stars than this keep the wings constant.
    profile_radius : float
        Beyond this radius (in FWHM) the mean image is an elliptical Moffat fitted to it
        (`imaging._psf_profile.fit_moffat`) instead of free pixels and the wing basis; 0:
        never.  With ``variation="derivatives"``, ``wing_variation="stretch"`` and a
        spatial order ≥ 1 only (the varying terms are the derivatives of that mean).
    profile_fit_radius : float
        The Moffat is fitted to the mean image's pixels beyond this radius (in FWHM).
    variation_sigma : tuple of float
        σ of a zero-mean Gaussian prior on the coefficients of the varying terms of
        degree 1, 2, … (shift in pixels, stretch and shear as fractions, per unit of the
        scaled position); 0 or a missing degree: no prior (the default: see the module
        docstring).  With ``"derivatives"`` only.
    n_iter_reject : int
        Rounds of χ² rejection (and of per-pixel clipping).
    spatial_reject : float
        Outlier threshold in robust sigmas of the χ² distribution.
    reduced_chi2_for_psf_candidates : float
        Stars below this reduced χ² are never rejected.
    pixel_clip : float
        Stamp pixels this many σ above the model leave the fit (0: never).
    pixel_clip_radius : float
        Only pixels farther than this (in FWHM) from the centre are clipped.
    max_snr : float
        Stars' weights are scaled down so that no star's S/N exceeds this (0: no cap).
    weights : str
        ``"model"``: inverse of the sky variance plus the model's Poisson variance (see
        `_sky_variance_and_inverse_gain`); ``"pixels"``: inverse of the variance plane.
    centroid_x, centroid_y, flux_field, flux_flag : str
        Column names.
    """

    kernel_size: float = 25.0
    kernel_size_min: int = 25
    kernel_size_max: int = 45
    spatial_order: int = 2
    min_stars_per_term: float = 4.0
    core_radius: float = 2.0
    wing_powers: tuple[float, ...] = (3.0, 5.0, 7.0)
    variation: str = "derivatives"
    free_radius: float = 0.0
    variation_basis: str = "affine"
    quadratic_variation: str = "radial"
    wing_variation: str = "stretch"
    wing_scale_min_stars: int = 100
    profile_radius: float = 1.5
    profile_fit_radius: float = 0.5
    variation_sigma: tuple[float, ...] = ()
    sampling: float = 1.0
    bad_planes: tuple[str, ...] = ("INTRP", "SAT", "CR", "BAD", "NO_DATA")
    n_iter_reject: int = 3
    spatial_reject: float = 3.0
    reduced_chi2_for_psf_candidates: float = 2.0
    pixel_clip: float = 4.0
    pixel_clip_radius: float = 1.0
    max_snr: float = 0.0
    weights: str = "model"
    centroid_x: str = "base_SdssCentroid_x"
    centroid_y: str = "base_SdssCentroid_y"
    flux_field: str = "base_CircularApertureFlux_9_0_instFlux"
    flux_flag: str = "base_CircularApertureFlux_9_0_flag"


def reserve_sources(n: int, *, fraction: float, seed: int = 1, exp_id: int = 0) -> np.ndarray:
    """Pick ``round(n·fraction)`` random rows to reserve (LSST ``ReserveSourcesTask``).

    The generator is ``RandomState((seed + exp_id) & 0xFFFFFFFF)``.
    """
    reserved = np.zeros(n, bool)
    k = int(round(n * fraction))
    if k > 0:
        rng = np.random.RandomState((seed + exp_id) & 0xFFFFFFFF)
        reserved[rng.choice(n, size=k, replace=False)] = True
    return reserved


class PixelPsfDeterminer(PsfDeterminer):
    """PSFEx-like determiner producing a `PixelPsf` (see module docstring).

    Parameters
    ----------
    config : PixelPsfDeterminerConfig, optional
        Options; defaults when None.
    """

    def __init__(self, config: PixelPsfDeterminerConfig | None = None) -> None:
        self.config = config or PixelPsfDeterminerConfig()
        if self.config.sampling != 1.0:
            raise NotImplementedError("PixelPsfDeterminer: only sampling 1.0 is implemented")

    def _kernel_size(self, stars: Table) -> int:
        cfg = self.config
        if cfg.kernel_size >= 15:
            size = int(cfg.kernel_size)
        else:
            xx = np.asarray(stars["base_SdssShape_xx"], dtype=np.float64)
            yy = np.asarray(stars["base_SdssShape_yy"], dtype=np.float64)
            rms = np.nanmedian(np.sqrt(0.5 * (xx + yy)))
            size = 2 * int(cfg.kernel_size * np.sqrt(rms) + 0.5) + 1
            size = int(np.clip(size, cfg.kernel_size_min, cfg.kernel_size_max))
        return size if size % 2 else size + 1

    def determine(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        variance: np.ndarray,
        stars: Table,
        *,
        reserved: np.ndarray | None = None,
        planes: Mapping[str, int] | None = None,
        xy0: tuple[int, int] = (0, 0),
    ) -> PsfDeterminationResult:
        """Fit a `PixelPsf` (see `PsfDeterminer.determine`).

        Raises
        ------
        NoPsfCandidatesError
            "No PSF candidates supplied." or "No good PSF candidates to pass to PSFEx".
        """
        cfg = self.config
        n = len(stars)
        if n == 0:
            raise NoPsfCandidatesError("No PSF candidates supplied.")
        h, w = image.shape
        size = self._kernel_size(stars)
        half = size // 2
        x = np.asarray(stars[cfg.centroid_x], dtype=np.float64) - xy0[0]
        y = np.asarray(stars[cfg.centroid_y], dtype=np.float64) - xy0[1]
        flux = np.asarray(stars[cfg.flux_field], dtype=np.float64)
        ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(flux) & (flux > 0)
        if cfg.flux_flag in stars.colnames:
            ok &= ~np.asarray(stars[cfg.flux_flag], dtype=bool)
        ix = np.round(np.where(ok, x, 0)).astype(np.int64)
        iy = np.round(np.where(ok, y, 0)).astype(np.int64)
        pad = half + LANCZOS_ORDER
        ok &= (ix - pad >= 0) & (iy - pad >= 0) & (ix + pad < w) & (iy + pad < h)
        reserved = np.zeros(n, bool) if reserved is None else np.asarray(reserved, bool)
        fit = ok & ~reserved
        if not fit.any():
            raise NoPsfCandidatesError("No good PSF candidates to pass to PSFEx")

        idx = np.nonzero(ok)[0]
        cy, cx, _ = cutout_indices((h, w), ix[idx], iy[idx], pad)
        raw = np.asarray(image[cy, cx], dtype=np.float64)
        var = np.asarray(variance[cy, cx], dtype=np.float64)
        bad_bits = bitmask(planes, cfg.bad_planes)
        bad = ~np.isfinite(raw) | ~np.isfinite(var) | (var <= 0)
        if bad_bits:
            bad |= (mask[cy, cx] & np.uint32(bad_bits)) != 0
        raw = np.where(bad, 0.0, raw)
        fx, fy = x[idx] - ix[idx], y[idx] - iy[idx]
        crop = (slice(None), slice(LANCZOS_ORDER, -LANCZOS_ORDER),
                slice(LANCZOS_ORDER, -LANCZOS_ORDER))
        data = shift_stack(raw, -fx, -fy)[crop]
        badw = _shifted_mask(bad, -fx, -fy)[crop]
        var = var[crop]
        weight_ok = (np.abs(badw) < 1e-3) & ~bad[crop]
        ns, k2 = idx.size, size * size
        data = data.reshape(ns, k2)
        var = var.reshape(ns, k2)
        keep = weight_ok.reshape(ns, k2)
        inv_var = np.where(keep, 1.0 / np.where(var > 0, var, 1.0), 0.0)
        sky_var = inv_gain = None
        if cfg.weights == "model":
            sky_var, inv_gain = _sky_variance_and_inverse_gain(data, var, keep)
            inv_var = np.where(keep, 1.0 / sky_var[:, None], 0.0)
        elif cfg.weights != "pixels":
            raise ValueError(f"PixelPsfDeterminer: weights must be 'model' or 'pixels', "
                             f"not {cfg.weights!r}")
        if cfg.max_snr > 0:
            snr = np.sqrt(np.maximum((data * data * inv_var).sum(axis=1), 0.0))
            inv_var *= np.minimum(1.0, (cfg.max_snr / np.maximum(snr, 1e-300)) ** 2)[:, None]

        x_range = (float(xy0[0]), float(xy0[0] + w - 1))
        y_range = (float(xy0[1]), float(xy0[1] + h - 1))
        u = 2.0 * (x[idx] + xy0[0] - x_range[0]) / max(w - 1, 1) - 1.0
        v = 2.0 * (y[idx] + xy0[1] - y_range[0]) / max(h - 1, 1) - 1.0
        order = cfg.spatial_order
        nterm = len(_terms(order))
        use = fit[idx].copy()
        while use.sum() < max(cfg.min_stars_per_term, 1.0) * nterm and order > 0:
            order -= 1
            nterm = len(_terms(order))
        design = _design(u, v, order)
        if cfg.quadratic_variation not in ("radial", "full"):
            raise ValueError(f"PixelPsfDeterminer: quadratic_variation must be 'radial' or "
                             f"'full', not {cfg.quadratic_variation!r}")
        radial = None  # weights of u² and v² in x² + y² (pixels, scaled to the longer side)
        if cfg.quadratic_variation == "radial" and order >= 2:
            hx, hy = max(w - 1, 1) / 2.0, max(h - 1, 1) / 2.0
            radial = ((hx / max(hx, hy)) ** 2, (hy / max(hx, hy)) ** 2)
        core_radius = None
        wing_basis = None
        if cfg.core_radius > 0 and cfg.wing_powers:
            core_radius = cfg.core_radius * _median_fwhm(stars, data[use], cfg)
            wing_basis = _wing_basis(size, core_radius, cfg.wing_powers)
            if wing_basis is None:
                core_radius = None
        profile = None
        if cfg.profile_radius > 0 and core_radius is not None:
            fwhm = _median_fwhm(stars, data[use], cfg)
            # the last fit's parameters start the next one (10 evaluations from cold, 3-4 warm)
            profile = (cfg.profile_radius * fwhm, cfg.profile_fit_radius * fwhm, {})
        wing_variation = cfg.wing_variation
        if wing_variation == "scale" and use.sum() < cfg.wing_scale_min_stars:
            wing_variation = "none"  # too few stars: the scale of each term is noise
        inner = None
        if cfg.free_radius > 0:
            r_free = cfg.free_radius * _median_fwhm(stars, data[use], cfg)
            half = size // 2
            dd = np.arange(-half, half + 1, dtype=np.float64)
            inner = (np.hypot(dd[None, :], dd[:, None]) <= r_free).ravel()
        amp = flux[idx].copy()
        chi2 = np.full(ns, np.nan)
        dd = np.arange(-(size // 2), size // 2 + 1, dtype=np.float64)
        clip_zone = (np.hypot(dd[None, :], dd[:, None]) > cfg.pixel_clip_radius
                     * _median_fwhm(stars, data[use], cfg)).ravel()
        coeffs = None
        for it in range(cfg.n_iter_reject + 1):
            for _ in range(2):
                if cfg.variation == "derivatives" and nterm > 1:
                    norm = data[use] / amp[use, None]
                    coeffs = _solve_derivatives(design[use], norm,
                                                inv_var[use] * amp[use, None] ** 2, size,
                                                wing_basis, cfg.variation_basis,
                                                wing_variation, inner,
                                                prior=_variation_prior(order, cfg),
                                                profile=profile, radial=radial)
                else:
                    norm = data[use] / amp[use, None]
                    coeffs = _solve(design[use], norm, inv_var[use] * amp[use, None] ** 2,
                                    nterm, wing_basis)
                model = design @ coeffs  # (ns, k2), per-star model before normalisation
                model /= model.sum(axis=1, keepdims=True)
                num = (model * data * inv_var).sum(axis=1)
                den = (model * model * inv_var).sum(axis=1)
                amp = np.where(den > 0, num / np.where(den > 0, den, 1.0), amp)
                if sky_var is not None:  # Poisson noise of the model, not of the data
                    expected = sky_var[:, None] + inv_gain * np.maximum(amp[:, None] * model, 0)
                    inv_var = np.where(inv_var > 0, 1.0 / expected, 0.0)
            clipped = False
            if cfg.pixel_clip > 0 and it < cfg.n_iter_reject:
                before = inv_var
                inv_var = _clip_contaminated(data, amp[:, None] * model, inv_var, size,
                                             cfg.pixel_clip, clip_zone)
                clipped = inv_var is not before
            resid = (data - amp[:, None] * model) ** 2 * inv_var
            npix = (inv_var > 0).sum(axis=1)
            chi2 = resid.sum(axis=1) / np.maximum(npix - 1, 1)
            if it == cfg.n_iter_reject:
                break
            cur = chi2[use]
            med = np.median(cur)
            mad = 1.4826 * np.median(np.abs(cur - med))
            reject = use & (chi2 > med + cfg.spatial_reject * mad) & (
                chi2 > cfg.reduced_chi2_for_psf_candidates)
            if use.sum() - reject.sum() < nterm or not (reject.any() or clipped):
                break
            use &= ~reject
        used = np.zeros(n, bool)
        used[idx[use]] = True
        avg = (float(np.mean(x[used]) + xy0[0]), float(np.mean(y[used]) + xy0[1]))
        coeff_img = coeffs.reshape(nterm, size, size)
        psf = PixelPsf(coeff_img, spatial_order=order, x_range=x_range, y_range=y_range,
                       average_position=avg, core_radius=core_radius)
        res_sel = reserved[idx] & np.isfinite(chi2)
        metadata: dict[str, float | int] = {
            "numAvailStars": int(n),
            "numGoodStars": int(use.sum()),
            "avgX": avg[0],
            "avgY": avg[1],
            "spatialFitChi2": float(np.sum(chi2[use])),
            "kernelSize": int(size),
            "spatialOrder": int(order),
            "coreRadius": float(core_radius) if core_radius is not None else 0.0,
        }
        if res_sel.any():
            metadata["numReservedStars"] = int(res_sel.sum())
            metadata["reservedChi2"] = float(np.mean(chi2[res_sel]))
        _log.info("PSF determination using %d/%d stars.", use.sum(), n)
        return PsfDeterminationResult(psf=psf, used=used, metadata=metadata)


def _shifted_mask(bad: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """`shift_stack` of a boolean stack as 0/1, shifting only the images with a True pixel.

    The others shift to exactly 0 (most stamps have no bad pixel).
    """
    out = np.zeros(bad.shape)
    some = bad.any(axis=(1, 2))
    if some.any():
        out[some] = shift_stack(bad[some].astype(np.float64), dx[some], dy[some])
    return out


def _variation_prior(order: int, cfg: PixelPsfDeterminerConfig) -> np.ndarray | None:
    """Precision 1/σ² of the prior on each varying polynomial term (by its degree)."""
    sigmas = tuple(cfg.variation_sigma)
    if not sigmas:
        return None
    prec = []
    for i, j in _terms(order)[1:]:
        deg = i + j
        sigma = sigmas[deg - 1] if deg - 1 < len(sigmas) else 0.0
        prec.append(1.0 / sigma**2 if sigma > 0 else 0.0)
    return np.asarray(prec)


def _sky_variance_and_inverse_gain(data: np.ndarray, var: np.ndarray,
                                   keep: np.ndarray) -> tuple[np.ndarray, float]:
    """Per star the sky variance (median of its stamp's variance); the variance per count.

    The variance plane holds each pixel's own noise (it is computed from the noisy image):
    weighting a pixel by it pulls a fit down by about 1/gain counts per pixel, enough to
    make faint stars' wings 20% too low.  The sky variance and the slope of variance
    against signal in the bright pixels (1/gain) give the variance expected from a model.
    """
    sky = _row_medians(var, keep)
    sky = np.where(np.isfinite(sky) & (sky > 0), sky, np.nanmedian(sky))
    bright = keep & (data > 20.0 * np.sqrt(sky)[:, None])
    if bright.sum() < 10:
        return sky, 0.0
    excess = (var - sky[:, None])[bright]
    signal = data[bright]
    return sky, max(float((excess * signal).sum() / (signal * signal).sum()), 0.0)


def _row_medians(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Median of each row's ``keep`` values (finite; NaN for none), as ``np.nanmedian``.

    One sort of all rows; ``np.nanmedian`` goes row by row in Python past 600 columns.
    """
    ordered = np.sort(np.where(keep, values, np.inf), axis=1)
    count = keep.sum(axis=1)
    rows = np.arange(values.shape[0])
    low = ordered[rows, np.maximum(count - 1, 0) // 2]
    high = ordered[rows, count // 2 - (count == 0)]
    return np.where(count > 0, (low + high) / 2.0, np.nan)


def _clip_contaminated(data: np.ndarray, model: np.ndarray, inv_var: np.ndarray, size: int,
                       n_sigma: float, zone: np.ndarray) -> np.ndarray:
    """Zero the weight of stamp pixels (in ``zone``) that lie ``n_sigma`` above the model.

    Light of a neighbour (or an unflagged defect) in a star's wings is positive: such
    pixels and their 8 neighbours leave the fit, rather than the whole star.
    """
    from scipy import ndimage

    excess = (data - model) * np.sqrt(inv_var) > n_sigma
    excess &= zone[None, :]
    if not excess.any():
        return inv_var
    grown = ndimage.binary_dilation(excess.reshape(-1, size, size),
                                    structure=np.ones((1, 3, 3), bool)).reshape(excess.shape)
    return np.where(grown & zone[None, :], 0.0, inv_var)


def _median_fwhm(stars: Table, data: np.ndarray, cfg: PixelPsfDeterminerConfig) -> float:
    """Median FWHM (pixels) of the stars: from their adaptive moments, else the mean stamp."""
    from .psf import FWHM_PER_SIGMA, adaptive_moments

    names = ("base_SdssShape_xx", "base_SdssShape_yy", "base_SdssShape_xy")
    if all(name in stars.colnames for name in names):
        xx, yy, xy = (np.asarray(stars[name], dtype=np.float64) for name in names)
        det = xx * yy - xy * xy
        det = det[np.isfinite(det) & (det > 0)]
        if det.size:
            return float(FWHM_PER_SIGMA * np.median(det**0.25))
    size = int(round(np.sqrt(data.shape[1])))
    mean = data.sum(axis=0).reshape(size, size)
    try:
        ixx, iyy, ixy = adaptive_moments(mean)
    except Exception:  # noqa: BLE001 - a degenerate stack: no wing basis then
        return float("nan")
    return float(FWHM_PER_SIGMA * (ixx * iyy - ixy * ixy) ** 0.25)


def _wing_basis(size: int, core_radius: float, powers: tuple[float, ...]) -> np.ndarray | None:
    """(n_wing, K²) images: r^-p × (1, cos 2φ, sin 2φ) outside ``core_radius``, 0 inside."""
    half = size // 2
    if not np.isfinite(core_radius) or core_radius >= half - 1:
        return None
    d = np.arange(-half, half + 1, dtype=np.float64)
    x, y = np.meshgrid(d, d)
    r = np.hypot(x, y)
    wing = r > core_radius
    rr = np.where(wing, r / core_radius, 1.0)
    cos2, sin2 = (x * x - y * y) / np.maximum(r * r, 1.0), 2 * x * y / np.maximum(r * r, 1.0)
    images = []
    for p in powers:
        radial = np.where(wing, rr ** (-float(p)), 0.0)
        images.extend([radial, radial * cos2, radial * sin2])
    return np.stack(images).reshape(len(images), size * size)


def _derivative_images(mean: np.ndarray, size: int, kind: str = "affine") -> np.ndarray:
    """(n, K²) images spanning small changes of the mean PSF image (central differences).

    ``affine``: a shift (∂x, ∂y) and a linear stretch of the coordinates (x∂x, y∂y,
    x∂y + y∂x), which scales the wings with the core as a change of seeing or focus does;
    ``affine+blur`` adds the second derivatives (a Gaussian blur of the core).
    """
    img = mean.reshape(size, size)
    half = size // 2
    d = np.arange(-half, half + 1, dtype=np.float64)
    x, y = np.meshgrid(d, d)
    gy, gx = np.gradient(img)
    images = [gx, gy]
    if "affine" in kind:
        # a stretch conserves flux: d/da of I(x/(1+a))/(1+a) is -(x ∂x I + I); without the
        # I term each stretch image carries -1 of flux, the per-star amplitudes absorb it
        # and the fit captured a third of a 7% FWHM change over the field
        images += [x * gx + img, y * gy + img, x * gy + y * gx]
    if "blur" in kind:
        # three-point second differences: np.gradient twice has a 5-point stencil that
        # smooths the curvature of a ~2 px core by ~10% and under-fits the PSF variation
        gxx = np.zeros_like(img)
        gyy = np.zeros_like(img)
        gxx[:, 1:-1] = img[:, 2:] - 2.0 * img[:, 1:-1] + img[:, :-2]
        gyy[1:-1, :] = img[2:, :] - 2.0 * img[1:-1, :] + img[:-2, :]
        gxy = np.gradient(gx, axis=0)
        images += [gxx, gyy, gxy]
    return np.stack(images).reshape(len(images), size * size)


def _normal_matrix(design: np.ndarray, weight: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Return the normal matrix of `_joint_fit`'s least squares (it does not see the data)."""
    nterm, nb = design.shape[1], basis.shape[0]
    ns = design.shape[0]
    # matrix products (einsum of three operands would loop in C without BLAS); a[s, j, k] =
    # sum_p weight[s, p] basis[j, p] basis[k, p] as one product with the (j k, p) pairs
    # (a stack of per-star products, (s, j, p) @ (p, k), took 2-3x longer)
    pairs = (basis[:, None, :] * basis[None, :, :]).reshape(nb * nb, -1)
    a = weight @ pairs.T  # (s, j k)
    dd = (design[:, :, None] * design[:, None, :]).reshape(ns, nterm * nterm)
    gram = (dd.T @ a).reshape(nterm, nterm, nb, nb)
    return gram.transpose(0, 2, 1, 3).reshape(nterm * nb, nterm * nb)


def _normal_rhs(design: np.ndarray, data: np.ndarray, weight: np.ndarray,
                basis: np.ndarray) -> np.ndarray:
    """Return the right-hand side of `_joint_fit`'s least squares."""
    b = (weight * data) @ basis.T
    return (design.T @ b).reshape(design.shape[1] * basis.shape[0])


def _solve_normal(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    ridge = 1e-10 * np.trace(gram) / max(gram.shape[0], 1) * np.eye(gram.shape[0])
    try:
        return np.linalg.solve(gram + ridge, rhs)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(gram, rhs, rcond=None)[0]


def _joint_fit(design: np.ndarray, data: np.ndarray, weight: np.ndarray,
               basis: np.ndarray, free: np.ndarray | None = None,
               prior: np.ndarray | None = None, gram: np.ndarray | None = None) -> np.ndarray:
    """Least squares of ``data[s, p] ≈ Σ_t design[s, t] Σ_j W[t, j] basis[j, p]``: W.

    ``free`` (boolean ``(nterm, nb)``) says which ``W[t, j]`` are fitted; the rest are 0.
    ``prior`` (``(nterm,)``, ≥ 0) is the precision 1/σ² of a zero-mean Gaussian prior on
    every ``W[t, j]`` of term ``t`` (a ridge; the weights make the data term a χ²).
    ``gram``: `_normal_matrix` of the same design, weight and basis, if already computed.
    """
    nterm, nb = design.shape[1], basis.shape[0]
    if gram is None:
        gram = _normal_matrix(design, weight, basis)
    rhs = _normal_rhs(design, data, weight, basis)
    if prior is not None:
        gram = gram + np.diag(np.repeat(np.asarray(prior, dtype=np.float64), nb))
    sel = np.ones(nterm * nb, bool) if free is None else np.asarray(free, bool).ravel()
    out = np.zeros(nterm * nb)
    out[sel] = _solve_normal(gram[np.ix_(sel, sel)], rhs[sel])
    return out.reshape(nterm, nb)


def _solve_derivatives(design: np.ndarray, data: np.ndarray, weight: np.ndarray,
                       *args, **kwargs) -> np.ndarray:
    """`_solve_derivatives_about` with the polynomial terms centred on the stars' weight.

    The constant term is fitted as the PSF where the stars' weights are centred (each star
    weighs by its S/N²), so the mean image and the variation hardly share a direction and
    their alternating fits converge; the coefficients go back to the plain polynomial basis.
    """
    if design.shape[1] == 1:
        return _solve_derivatives_about(design, data, weight, *args, **kwargs)
    w = (weight * data * data).sum(axis=1)
    centre = (w @ design[:, 1:]) / max(w.sum(), 1e-300)
    coeffs = _solve_derivatives_about(design - np.r_[0.0, centre][None, :], data, weight,
                                      *args, **kwargs)
    coeffs[0] -= centre @ coeffs[1:]
    return coeffs


def _solve_derivatives_about(
    design: np.ndarray,
    data: np.ndarray,
    weight: np.ndarray,
    size: int,
    wing_basis: np.ndarray | None,
    kind: str = "blur",
    wing_varies: str = "none",
    inner: np.ndarray | None = None,
    n_alternate: int = 2,
    prior: np.ndarray | None = None,
    profile: tuple[float, float, dict] | None = None,
    radial: tuple[float, float] | None = None,
) -> np.ndarray:
    """Core: mean pixels plus varying terms in the mean's derivatives; wings: the basis.

    The wing pixels are one joint fit of the wing basis with every polynomial term (the
    wings scale with the seeing). In the core, fits alternate: the mean image against the
    data minus the variation, then the variation coefficients (the polynomial terms beyond
    the constant, times the derivative images of the current mean) against the rest.
    """
    nterm, k2 = design.shape[1], data.shape[1]
    coeffs = np.zeros((nterm, k2))
    core = np.ones(k2, bool)
    # the outer-stretch fit writes every term of every wing pixel: no wing fit first
    stretch = wing_varies == "stretch" and wing_basis is not None and nterm > 1
    if wing_basis is not None:
        wing = wing_basis.any(axis=0)
        core = ~wing
    if wing_basis is not None and not stretch:
        free = np.ones((nterm, wing_basis.shape[0]), bool)
        if wing_varies == "radial":  # varying terms: round wings only (every third image)
            free[1:] = False
            free[1:, ::3] = True
        elif wing_varies in ("none", "scale", "stretch"):
            free[1:] = False
        basis = wing_basis[:, wing]
        coeffs[:, wing] = _joint_fit(design, data[:, wing], weight[:, wing], basis,
                                     free) @ basis
        if wing_varies == "scale" and nterm > 1:
            # one amplitude per polynomial term times the mean wings: a power-law tail
            # brightens with the seeing (a Moffat's by (FWHM ratio)^(2 beta - 2))
            mean_wing = coeffs[0, wing][None, :]
            scale = _joint_fit(design[:, 1:], data[:, wing] - mean_wing, weight[:, wing],
                               mean_wing)
            coeffs[1:, wing] = scale @ mean_wing
    if inner is not None:  # the bright inner core: every pixel of every term is free
        inner = inner & core
        coeffs[:, inner] = _solve_pixels(design, data[:, inner], weight[:, inner], nterm)
        core = core & ~inner
    if stretch:
        return _solve_outer_stretch(design, data, weight, size, coeffs, core, wing,
                                    wing_basis[:, wing], kind, n_alternate, prior, profile,
                                    radial)
    d, wt = data[:, core], weight[:, core]
    varying = np.zeros_like(d)
    for _ in range(n_alternate):
        coeffs[0, core] = _solve_pixels(design[:, :1], d - varying, wt, 1)[0]
        basis = _derivative_images(coeffs[0], size, kind)[:, core]
        beta = _fit_variation(design, d - coeffs[0, core][None, :], wt, basis, prior,
                              radial)
        coeffs[1:, core] = beta @ basis
        varying = design[:, 1:] @ coeffs[1:, core]
    return coeffs


def _solve_outer_stretch(
    design: np.ndarray,
    data: np.ndarray,
    weight: np.ndarray,
    size: int,
    coeffs: np.ndarray,
    core: np.ndarray,
    wing: np.ndarray,
    basis: np.ndarray,
    kind: str,
    n_alternate: int,
    prior: np.ndarray | None = None,
    profile: tuple[float, float, dict] | None = None,
    radial: tuple[float, float] | None = None,
) -> np.ndarray:
    """Outer core and wings vary together, as derivatives of the one mean image.

    Outside the free inner core (already in ``coeffs``) the mean is free pixels in the
    outer ``core`` and the wing ``basis`` beyond; the polynomial terms are combinations
    of the derivative images of that whole mean (shift, stretch, shear, blur), fitted to
    the outer core and the wings jointly.  A change of seeing stretches the PSF: the
    bright outer core fixes the stretch, and the wings follow it (a power-law tail
    ``r^-p`` brightens by ``(p - 2)`` times the stretch) instead of being fitted from
    their own noise.

    ``profile`` = (radius, fit radius, memo): beyond ``radius`` (pixels) the mean is an
    elliptical Moffat fitted to the mean outside ``fit radius`` (`fit_moffat`), so that the
    faint outer pixels continue the profile of the bright inner ones instead of the noise
    of the few brightest stars; a failed fit keeps the pixels and the wing basis.  The
    fitted parameters go to ``memo["start"]`` and start the next fit (the caller's dict,
    one per determination).
    """
    outer = core | wing
    varying = np.zeros((data.shape[0], int(outer.sum())))
    in_core = core[outer]
    in_wing = wing[outer]
    far = None
    if profile is not None:
        half = size // 2
        dd = np.arange(-half, half + 1, dtype=np.float64)
        far = (np.hypot(dd[None, :], dd[:, None]) > profile[0]).ravel()
        precision = weight.sum(axis=0)  # of the mean image's pixels
    # the column subsets and the wings' normal matrix are the same every round
    data_outer, weight_outer, core_weight = data[:, outer], weight[:, outer], weight[:, core]
    wing_weight = weight[:, wing]
    wing_gram = _normal_matrix(design[:, :1], wing_weight, basis)
    for _ in range(n_alternate + 1):
        rest = data_outer - varying
        coeffs[0, core] = _solve_pixels(design[:, :1], rest[:, in_core], core_weight, 1)[0]
        coeffs[0, wing] = _joint_fit(design[:, :1], rest[:, in_wing], wing_weight, basis,
                                     gram=wing_gram)[0] @ basis
        if far is not None:
            fitted = fit_moffat(coeffs[0], precision, size, profile[1],
                                start=profile[2].get("start"))
            if fitted is not None:
                coeffs[0, far] = fitted[0][far]
                profile[2]["start"] = fitted[1]
        deriv = _derivative_images(coeffs[0], size, kind)[:, outer]
        beta = _fit_variation(design, data_outer - coeffs[0, outer][None, :], weight_outer,
                              deriv, prior, radial)
        coeffs[1:, outer] = beta @ deriv
        varying = design[:, 1:] @ coeffs[1:, outer]
    return coeffs


def _fit_variation(design: np.ndarray, data: np.ndarray, weight: np.ndarray,
                   deriv: np.ndarray, prior: np.ndarray | None,
                   radial: tuple[float, float] | None) -> np.ndarray:
    """(nterm - 1, n_images) coefficients of the derivative images on the varying terms.

    ``radial`` = (a, b): the degree-2 terms are one coefficient, the isotropic stretch
    (the sum of the x and y stretch images) times ``a u² + b v²`` (x² + y² in pixels);
    it is returned on the u² and v² terms.  `None`, or no stretch images: every image on
    every term (`_joint_fit`).
    """
    terms = _terms(next(o for o in range(8) if len(_terms(o)) == design.shape[1]))[1:]
    if radial is None or len(terms) < 5 or deriv.shape[0] < 5:
        return _joint_fit(design[:, 1:], data, weight, deriv, prior=prior)
    nb = deriv.shape[0]
    quad = [k for k, (i, j) in enumerate(terms) if i + j == 2]  # u², uv, v²
    keep = [k for k, (i, j) in enumerate(terms) if i + j != 2]
    varying = design[:, 1:]
    columns = np.c_[varying[:, keep], radial[0] * varying[:, quad[0]]
                    + radial[1] * varying[:, quad[2]]]
    basis = np.vstack([deriv, deriv[2] + deriv[3]])  # stretch x + stretch y: isotropic
    free = np.zeros((len(keep) + 1, nb + 1), bool)
    free[:-1, :nb] = True
    free[-1, nb] = True
    if prior is not None:
        prior = np.r_[np.asarray(prior)[keep], np.asarray(prior)[quad[0]]]
    fitted = _joint_fit(columns, data, weight, basis, free, prior=prior)
    beta = np.zeros((len(terms), nb))
    beta[keep] = fitted[:-1, :nb]
    for k, weight_k in ((quad[0], radial[0]), (quad[2], radial[1])):
        beta[k, 2:4] = weight_k * fitted[-1, nb]
    return beta


def _solve(
    design: np.ndarray,
    data: np.ndarray,
    weight: np.ndarray,
    nterm: int,
    wing_basis: np.ndarray | None = None,
) -> np.ndarray:
    """Weighted least squares of the model: (nterm, k2) coefficient images.

    Without ``wing_basis`` every pixel is fitted on its own; with it, only the core pixels
    (where the basis is zero) are, and the wing pixels are one joint fit of the basis.
    """
    if wing_basis is None:
        return _solve_pixels(design, data, weight, nterm)
    wing = wing_basis.any(axis=0)
    coeffs = np.zeros((nterm, data.shape[1]))
    coeffs[:, ~wing] = _solve_pixels(design, data[:, ~wing], weight[:, ~wing], nterm)
    f = wing_basis[:, wing]  # (nw, p)
    wcoef = _joint_fit(design, data[:, wing], weight[:, wing], f)
    coeffs[:, wing] = wcoef @ f
    return coeffs


def _solve_pixels(
    design: np.ndarray, data: np.ndarray, weight: np.ndarray, nterm: int
) -> np.ndarray:
    """Per-pixel weighted least squares: (nterm, k2) coefficients."""
    gram = np.einsum("ip,it,is->pts", weight, design, design)
    rhs = np.einsum("ip,it,ip->pt", weight, design, data)
    ridge = 1e-12 * np.trace(gram, axis1=1, axis2=2)[:, None, None] * np.eye(nterm)
    coeffs = np.linalg.solve(gram + ridge + np.eye(nterm) * 1e-300, rhs[..., None])[..., 0]
    return coeffs.T
