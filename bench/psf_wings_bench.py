"""PSF model out to the corners: unweighted-FWHM error on a 5x5 grid against the truth.

Run with ``python -m bench psf_wings``. Two 2048² detectors of the simulator's 3×3 camera (a
corner one at 0°, an edge one at 90°; the PSF's FWHM changes 7.5% over the corner detector and
its ellipticity grows towards the field's edge) go through CharacterizeImageTask once; then the
PSF determiner is refitted on random draws of its candidates (30, 50 and 200 stars, seeds
0..7, or ``PSF_WINGS_SEEDS=8-15``) at spatial order 0, 1 and 2 (asked for: the rule of 4 stars
per term is off here), order 2 with the default radial degree-2 term (one coefficient: the
isotropic stretch times x² + y²) and with every derivative image on u², uv, v²
(``quadratic_variation="full"``, the default before), and that with the Gaussian prior
``variation_sigma`` = (0.01, 0.007) on the varying terms. For each fit the table gives the
largest and the mean |error| of the FWHM from unweighted second moments of the 25×25 model
image over the 5×5 grid including the corners (the truth drawn at the same points, cut to the
same box), the grid point where it is largest, the distance from that point to the nearest star
used and the largest such distance over the grid (how the candidates spread out to the
corners), and the CPU time of the fit (one thread).  The summary gives per fit and star count
the largest error over the grid (worst draw, mean of draws, draws within 1%) and the same at
the four corners and at the centre.

This is the measurement behind ``tests/tasks/test_characterize_psf_wings.py`` (issue 14).
"""

from __future__ import annotations

import os
import time

import numpy as np

from ._table import print_table

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

SIZE = 2048
GRID = np.linspace(0.0, 1.0, 5)
STAR_COUNTS = (30, 50, 200)
#: (label, spatial order asked, quadratic_variation, variation_sigma)
FITS = (("0", 0, "radial", ()), ("1", 1, "radial", ()), ("2 radial (default)", 2, "radial", ()),
        ("2 full", 2, "full", ()), ("2 full, prior (0.01, 0.007)", 2, "full", (0.01, 0.007)))
CORNERS = [0, 4, 20, 24]  # of the 5x5 grid, row-major
CENTRE = 12


def _seeds() -> tuple[int, ...]:
    first, _, last = os.environ.get("PSF_WINGS_SEEDS", "0-7").partition("-")
    return tuple(range(int(first), int(last or first) + 1))


def _crop(kernel: np.ndarray, n: int) -> np.ndarray:
    c, h = kernel.shape[0] // 2, n // 2
    out = kernel[c - h : c + h + 1, c - h : c + h + 1]
    return out / out.sum()


def _field(detector: int, orientation: float):
    from imaging.sim import SimOptions, SkyModel, Visit, make_camera, simulate_detector
    from tasks import CharacterizeImageTask

    camera = make_camera(9, detector_size=SIZE, orientations=[orientation] * 9)
    visit = Visit(id=3, band="r", ra=150.0, dec=2.0, exposure_time=30.0, mjd=60000.0)
    sim = simulate_detector(camera, visit, detector, seed=21, sky=SkyModel(star_density=50000),
                            options=SimOptions(halo_threshold=1e30))
    exposure = sim.exposure.clone()
    config = CharacterizeImageTask.ConfigClass()
    config.repair.cosmicray.nCrPixelMax = 100_000
    catalog = CharacterizeImageTask(config=config).run(exposure, exposureIdInfo=1).sourceCat
    h, w = exposure.image.shape
    positions = np.array([(fx * (w - 1), fy * (h - 1)) for fy in GRID for fx in GRID])
    truth = [_crop(sim.truth.psf.kernel_image(tuple(p)), 25) for p in positions]
    return exposure, catalog[catalog["calib_psf_candidate"]], positions, truth


def main() -> None:
    """Print the error table for every (detector, order, star count, seed)."""
    from imaging.psf import unweighted_fwhm
    from imaging.psf_determiner import PixelPsfDeterminer, PixelPsfDeterminerConfig

    rows, summary = [], {}
    for detector, orientation in ((0, 0.0), (1, 90.0)):
        exposure, candidates, positions, truth = _field(detector, orientation)
        truth_fwhm = np.array([unweighted_fwhm(t) for t in truth])
        for label, order, quadratic, sigma in FITS:
            determiner = PixelPsfDeterminer(PixelPsfDeterminerConfig(
                spatial_order=order, min_stars_per_term=0.0, quadratic_variation=quadratic,
                variation_sigma=sigma))
            for n_stars in STAR_COUNTS:
                for seed in _seeds():
                    rng = np.random.default_rng(seed)
                    chosen = candidates[np.sort(rng.choice(len(candidates), n_stars,
                                                           replace=False))]
                    start = time.process_time()
                    result = determiner.determine(
                        exposure.image, exposure.mask.array, exposure.variance, chosen,
                        planes=exposure.mask.planes)
                    cpu = time.process_time() - start
                    errors = np.abs([unweighted_fwhm(result.psf.kernel_image(tuple(p))) / t - 1
                                     for p, t in zip(positions, truth_fwhm, strict=True)])
                    xy = np.c_[chosen["base_SdssCentroid_x"], chosen["base_SdssCentroid_y"]]
                    worst = int(np.argmax(errors))
                    gaps = np.hypot(xy[None, :, 0] - positions[:, None, 0],
                                    xy[None, :, 1] - positions[:, None, 1]).min(axis=1)
                    rows.append((f"{detector} ({orientation:.0f} deg)", label,
                                 result.metadata["spatialOrder"], n_stars, seed,
                                 f"{100 * errors.max():.2f}", f"{100 * errors.mean():.2f}",
                                 f"({worst % 5}, {worst // 5})", f"{gaps[worst]:.0f}",
                                 f"{gaps.max():.0f}", f"{cpu:.3f}"))
                    summary.setdefault((label, n_stars), []).append(
                        (errors.max(), errors[CORNERS].max(), errors[CENTRE]))
    print_table("PSF model: unweighted-FWHM |error| (%) over the 5x5 grid, 2048^2 detectors",
                ("detector", "fit (order asked)", "order used", "stars", "seed", "max %", "mean %",
                 "worst (ix, iy)", "nearest star px", "largest gap px", "fit CPU s"), rows)
    print_table("Summary over seeds and both detectors: max |error| % over the grid, at the "
                "corners and at the centre (worst draw / mean of draws)",
                ("fit (order asked)", "stars", "grid", "draws <= 1%", "corners", "centre"),
                [_summary_row(label, n, np.array(v)) for (label, n), v in summary.items()])


def _summary_row(label: str, n_stars: int, errors: np.ndarray) -> tuple:
    """``errors``: (draws, 3) grid maximum, corner maximum, centre."""
    def worst_mean(values: np.ndarray) -> str:
        return f"{100 * values.max():.2f} / {100 * values.mean():.2f}"

    return (label, n_stars, worst_mean(errors[:, 0]),
            f"{int(np.sum(errors[:, 0] <= 0.01))}/{len(errors)}",
            worst_mean(errors[:, 1]), worst_mean(errors[:, 2]))


if __name__ == "__main__":
    main()
