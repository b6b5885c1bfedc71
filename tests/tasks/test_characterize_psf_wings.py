"""PSF model wings out to the corners, against the simulator's field-varying truth PSF.

Two 2048² detectors of a 3×3 camera (a corner one at 0°, an edge one at 90°) see the optical
pattern of the focal plane: the FWHM changes 7.5% from one corner of the corner detector to the
other and the PSF grows elliptical towards the field's edge. After CharacterizeImageTask, the PSF
determiner is refitted on 30, 50 and 200 of its candidates, three draws of stars each (seeds
0, 1, 2, fixed before the model was tuned); the model is compared with the truth on a 5×5 grid
including the corners, by the FWHM of *unweighted* second moments (negative pixels clipped) of
the 25×25 kernel image, which is what a user taking the model image as it is sees. The truth is
the simulator's PSF drawn at the same position, cut to the same 25×25 box and normalised the
same way (the model is fitted to 25×25 stamps normalised by their PSF amplitude in that box).
Bright-star halos are off: the truth PSF is the core that faint stars show (halos are issue
12's).

Measured (issue 14, ``python -m bench psf_wings``; 8 draws × 2 detectors, max |error| over the
grid, worst draw / mean of draws): before the derivative basis conserved flux and the mean and
the variation were fitted about the stars' weighted centre, 2.85 / 1.70% with 30 stars, 2.44 /
1.26% with 50 and 1.09 / 0.70% with 200 (6 draws); with that, 3.31 / 1.37%, 1.49 / 0.87% and
0.88 / 0.46%; with weights from the model's variance instead of the variance plane and stars
with a neighbour within 15 px left out, 2.34 / 1.11%, 2.19 / 0.93% and 0.69 / 0.37%. In
the worst draws the whole grid was then off by about 1%: the model's far wings (r > 10 px)
held 1e-3 of the flux too much or too little, fitted from the few brightest stars' noise,
which unweighted moments weigh by r². With the mean image beyond 1.5 FWHM an elliptical
Moffat fitted to its bright inner pixels (``profile_radius``, see `imaging.psf_determiner`)
the far flux is within 2-7e-4 of the truth's 4.4-4.8e-3 (was up to 1.4e-3), and the bench
gives 2.43 / 1.00% (10 of 16 draws within 1%), 2.16 / 0.82% (11/16) and 0.61 / 0.40%;
seeds 8-15, 2.61 / 1.12% (7/16) -> 2.09 / 1.02% (10/16), 2.35 / 0.83% (12/16) -> 1.94 /
0.70% (14/16), 0.56 / 0.33% -> 0.50 / 0.38%. In this module's draws the worst grid point
was then off by 1.11% with 30 stars and 1.55% with 50: the corners, the varying terms
extrapolated 300-900 px from the nearest star from faint stars' noise. A prior on the
variation (``variation_sigma``) did not reach 1%, even with σ chosen per draw against the
truth (in a prototype, 1.13% and 1.48% worst).

Order and regularity of the spatial model (``python -m bench psf_wings``, max |error| over
the grid, worst draw / mean of draws / draws ≤ 1% of 16, seeds 0-7; in this module's
draws, seeds 0-2 on both detectors, worst draw; corners and centre: worst / mean)::

    order           30 stars             50 stars             200 stars       this module
    0               5.41 / 3.49%  0/16   4.63 / 3.38%  0/16   4.10 / 3.08%    4.00 4.54 4.06
    1               1.49 / 0.84% 14/16   1.08 / 0.71% 15/16   0.73 / 0.59%    1.49 1.08 0.73
    2 full          2.43 / 1.00% 10/16   2.16 / 0.82% 11/16   0.61 / 0.40%    1.11 1.55 0.61
    2 full, prior   1.14 / 0.79% 14/16   1.51 / 0.72% 12/16   0.59 / 0.40%
    2 radial        1.57 / 0.65% 15/16   0.97 / 0.48% 16/16   0.39 / 0.32%    0.89 0.97 0.37
      corners       1.57 / 0.61%         0.97 / 0.46%         0.33 / 0.18%
      centre        1.02 / 0.28%         0.84 / 0.28%         0.39 / 0.32%

(seeds 8-15: order 1 1.25 / 0.74%, 1.09 / 0.76%, 0.63 / 0.57%; full 2.09 / 1.02%, 1.94 /
0.70%, 0.50 / 0.38%; radial 1.02 / 0.58% 15/16, 0.90 / 0.48% 16/16, 0.50 / 0.33%). Order 1
misses the curvature of the size (0.79% at corners with noise-free stars, the centre 0.5%
wide with 200 stars); full order 2 extrapolates the noise of its saddle-shaped size terms
to the corners. The default keeps degree 2 for the size only, as one radial term (the
isotropic stretch times x² + y², see `imaging.psf_determiner`; the simulator's size pattern
has that form): the issue's 1% at every grid point now holds in this module's draws with
30, 50 and 200 stars (worst 0.89%, 0.97%, 0.37%). On the bench one draw of 16 with 30
stars is still over (1.57% at a corner in seeds 0-7; 1.02% in seeds 8-15).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("galsim")

from _corner_field import PLACEMENT_IDS, PLACEMENTS, characterized_field  # noqa: E402

from imaging.psf import unweighted_fwhm  # noqa: E402
from imaging.psf_determiner import PixelPsfDeterminer, PixelPsfDeterminerConfig  # noqa: E402
from tasks.measure_psf import PixelPsfDeterminerTask  # noqa: E402

SIZE = 2048
GRID = np.linspace(0.0, 1.0, 5)
SEEDS = (0, 1, 2)  # draws of stars, chosen before tuning
#: Bound at every grid point over SEEDS on both detectors: the issue's 1% (reached: 0.89%,
#: 0.97% and 0.37% with 30, 50 and 200 stars).
REACHED = {30: 0.01, 50: 0.01, 200: 0.01}
CORNERS = ([0, 0, -1, -1], [0, -1, 0, -1])


def _crop(kernel: np.ndarray, n: int) -> np.ndarray:
    c, h = kernel.shape[0] // 2, n // 2
    out = kernel[c - h : c + h + 1, c - h : c + h + 1]
    return out / out.sum()


@pytest.fixture(scope="module", params=PLACEMENTS, ids=PLACEMENT_IDS)
def field(request):
    sim, exposure, result = characterized_field(
        *request.param, size=SIZE, seed=21, star_density=50000
    )
    catalog = result.sourceCat
    candidates = catalog[catalog["calib_psf_candidate"]]
    assert len(candidates) >= 200
    h, w = exposure.image.shape
    positions = [(fx * (w - 1), fy * (h - 1)) for fy in GRID for fx in GRID]
    truth = [_crop(sim.truth.psf.kernel_image(p), 25) for p in positions]
    fits: dict = {}  # (n_stars, seed) -> _grid_errors, shared by the tests of one placement
    return exposure, candidates, positions, truth, sim.truth.psf, fits


def _grid_errors(field, n_stars: int, seed: int):
    """(5, 5) relative unweighted-FWHM errors, the model kernels, and the fit's metadata."""
    if (n_stars, seed) not in field[5]:
        field[5][n_stars, seed] = _fit_grid(field, n_stars, seed)
    return field[5][n_stars, seed]


def _fit_grid(field, n_stars: int, seed: int):
    exposure, candidates, positions, truth = field[:4]
    rng = np.random.default_rng(seed)
    chosen = candidates[np.sort(rng.choice(len(candidates), n_stars, replace=False))]
    result = PixelPsfDeterminer().determine(
        exposure.image, exposure.mask.array, exposure.variance, chosen,
        planes=exposure.mask.planes,
    )
    kernels = [result.psf.kernel_image(p) for p in positions]
    errors = [unweighted_fwhm(k) / unweighted_fwhm(t) - 1.0 for k, t in zip(kernels, truth,
                                                                             strict=True)]
    return np.array(errors).reshape(5, 5), kernels, result.metadata


@pytest.mark.parametrize("n_stars", [30, 50, 200])
def test_model_wings_physical_and_fwhm_at_corners(field, n_stars):
    truth = field[3]
    widths = [unweighted_fwhm(t) for t in truth]
    assert max(widths) / min(widths) > 1.02  # the PSF does vary over the detector
    limit = REACHED[n_stars]
    for seed in SEEDS:
        errors, kernels, metadata = _grid_errors(field, n_stars, seed)
        table = f"seed {seed}, unweighted FWHM errors (%):\n{np.round(100 * errors, 2)}"
        # 30 stars are enough (4 per term): the size's curvature is one radial term
        assert metadata["spatialOrder"] == 2, table
        for kernel in kernels:  # non-negative, unit flux (flux conserving)
            assert kernel.min() >= 0.0 and kernel.sum() == pytest.approx(1.0, abs=1e-12)
        assert abs(errors[2, 2]) < limit, table  # the centre
        assert np.abs(errors[CORNERS]).max() < limit, table  # the corners
        assert np.abs(errors).max() < limit, table  # every grid point
        assert np.abs(errors).mean() < 0.5 * limit, table


def test_one_percent_with_few_stars(field):
    """The issue's 1% at every grid point with 30 and 50 stars (a strict xfail before the
    radial degree-2 term: 1.11% and 1.55%)."""
    worst = max(np.abs(_grid_errors(field, n, seed)[0]).max() for n in (30, 50) for seed in SEEDS)
    assert worst < 0.01, f"{100 * worst:.2f}%"


@pytest.mark.parametrize("n_stars", [30, 50])
def test_far_wings_follow_the_core_with_few_stars(field, n_stars):
    """Beyond 10 px the model holds the truth's flux (4.4-4.8e-3 of it) within 6e-4.

    Fitted from the wing pixels alone (free pixels, then the power-law basis), the far
    wings were the noise of the few brightest stars: off by up to 1.1e-3 at a grid point
    with these draws, which unweighted moments weigh by r² (the grid off by ~1% as a
    whole).  The mean image now continues, beyond 1.5 FWHM, the Moffat that its bright
    inner pixels define.
    """
    truth = field[3]
    half = truth[0].shape[0] // 2
    d = np.arange(-half, half + 1)
    far = np.hypot(d[None, :], d[:, None]) > 10
    for seed in SEEDS:
        kernels = _grid_errors(field, n_stars, seed)[1]
        deviation = [abs(k[far].sum() - t[far].sum()) for k, t in zip(kernels, truth,
                                                                      strict=True)]
        assert max(deviation) < 6e-4, f"seed {seed}: {max(deviation):.1e}"


def test_model_matches_noise_free_stars_out_to_the_corners(field):
    """Noise-free stars drawn from the truth PSF at 30 candidates' (whole-pixel) positions.

    No noise, no neighbours, no resampling: what is left is the model's own error. The
    stretch images of the derivative basis did not conserve flux (the star amplitudes
    absorbed it and a third of the size change over the field was captured), and the mean
    image and the variation, fitted in turn about the detector's centre, had not converged
    when the few bright stars that weigh most sat off-centre: 0.4-4.2% at the grid's edges.
    """
    exposure, candidates, positions, truth, psf_truth = field[:5]
    h, w = exposure.image.shape
    worst = 0.0
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        chosen = candidates[np.sort(rng.choice(len(candidates), 30, replace=False))].copy()
        image = np.zeros((h, w))
        for name in ("base_SdssCentroid_x", "base_SdssCentroid_y"):
            chosen[name] = np.round(chosen[name])
        for row in chosen:
            x, y = int(row["base_SdssCentroid_x"]), int(row["base_SdssCentroid_y"])
            star = row["base_CircularApertureFlux_9_0_instFlux"] * psf_truth.kernel_image((x, y))
            half = star.shape[0] // 2
            y0, x0 = max(y - half, 0), max(x - half, 0)
            y1, x1 = min(y + half + 1, h), min(x + half + 1, w)
            cut = star[y0 - y + half : y1 - y + half, x0 - x + half : x1 - x + half]
            image[y0:y1, x0:x1] += cut
        variance = 300.0 + image
        result = PixelPsfDeterminer().determine(
            image, np.zeros((h, w), np.uint32), variance, chosen, planes=exposure.mask.planes)
        errors = [unweighted_fwhm(result.psf.kernel_image(p)) / unweighted_fwhm(t) - 1.0
                  for p, t in zip(positions, truth, strict=True)]
        worst = max(worst, float(np.abs(errors).max()))
    assert worst < 0.005, f"{100 * worst:.2f}%"



def test_task_config_selects_the_quadratic_variation(field):
    """``quadraticVariation`` of the task's determiner reaches `PixelPsfDeterminer`."""
    exposure, candidates = field[0], field[1][:60]
    task_config = PixelPsfDeterminerTask.ConfigClass()
    assert task_config.quadraticVariation == "radial"
    task_config.quadraticVariation = "full"
    by_task = PixelPsfDeterminerTask(config=task_config).determine(exposure, candidates, None)
    direct = PixelPsfDeterminer(PixelPsfDeterminerConfig(quadratic_variation="full")).determine(
        exposure.image, exposure.mask.array, exposure.variance, candidates,
        planes=exposure.mask.planes, xy0=exposure.xy0)
    assert by_task.psf == direct.psf
    assert np.asarray(by_task.psf.to_dict()["coefficients"])[4].any()  # uv: full


def test_variation_prior_shrinks_the_spatial_terms(field):
    """``variation_sigma``: a Gaussian prior on the varying terms (off by default).

    A vanishing σ leaves one PSF for the whole detector; a moderate one (the bench's
    (0.01, 0.007)) keeps part of the change over the field, between that and none.
    """
    exposure, candidates, positions = field[:3]
    chosen = candidates[np.sort(np.random.default_rng(0).choice(len(candidates), 30,
                                                                replace=False))]
    spread = {}
    for sigma in ((), (0.01, 0.007), (1e-9, 1e-9)):
        result = PixelPsfDeterminer(PixelPsfDeterminerConfig(variation_sigma=sigma)).determine(
            exposure.image, exposure.mask.array, exposure.variance, chosen,
            planes=exposure.mask.planes)
        kernels = np.array([result.psf.kernel_image(p) for p in positions])
        spread[sigma] = float(np.abs(kernels - kernels[12]).max())
    assert spread[(1e-9, 1e-9)] < 1e-6 * spread[()], spread
    assert spread[(1e-9, 1e-9)] < spread[(0.01, 0.007)] < spread[()], spread
