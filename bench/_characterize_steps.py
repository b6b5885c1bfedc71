"""CPU time of each CharacterizeImageTask algorithm step, on one core.

`time_steps` runs the characterisation chain of ``science.md`` §1.3 directly on the
`imaging` functions (no task framework): initial background, ``psf_iterations`` rounds of
[CR detection with keepCRs, detection with background re-estimate, measurement, star
selection, PSF fit], final CR interpolation, final measurement, aperture correction.
Times are ``time.process_time`` deltas summed per step name; BLAS/OpenMP pools are
limited to one thread while it runs (threadpoolctl), so CPU time equals wall time on one
core.  The exposure is not modified (the chain works on copies).

Run ``python -m bench._characterize_steps [size] [seed]`` to simulate one detector and
print the table.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import defaultdict

import numpy as np

from imaging.aperture_correction import apply_ap_corr, measure_ap_corr
from imaging.background import BackgroundList, subtract_background
from imaging.cosmic_rays import CosmicRayConfig, find_cosmic_rays
from imaging.detection import detect_sources
from imaging.measurement import measure_sources
from imaging.psf import GaussianPsf
from imaging.psf_determiner import PixelPsfDeterminer
from imaging.star_selector import select_stars_object_size

__all__ = ["STEPS", "run_chain", "time_steps"]

#: Step names, in the order `time_steps` reports them.
STEPS = (
    "background",
    "cosmic_rays",
    "detection",
    "measurement",
    "star_selection",
    "psf",
    "cr_repair",
    "final_measurement",
    "aperture_correction",
)


def _single_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scipy/sklearn stacks
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def run_chain(image, mask, variance, planes, *, psf_iterations=2, timer=None):
    """Run the characterisation chain in place; return ``(psf, catalog, background)``.

    Parameters
    ----------
    image, mask, variance : ndarray
        Post-ISR image (float32, counts, not sky-subtracted), uint32 mask, variance;
        ``image`` and ``mask`` are modified in place.
    planes : mapping
        ``{plane: bit}`` of the mask.
    psf_iterations : int
        Rounds of detection, measurement and PSF fitting.
    timer : callable, optional
        ``timer(name)`` returning a context manager that times a step.
    """
    timer = timer or (lambda name: contextlib.nullcontext())
    # A 4k² detector at the simulator's default CR rate has ~9000 CR pixels: LSST's
    # nCrPixelMax of 10000 is too tight for it (obs packages raise it as well).
    cr_config = CosmicRayConfig(n_cr_pixel_max=100_000)
    h, w = image.shape
    with timer("background"):
        model, _ = subtract_background(image, mask, variance, planes=planes)
    background = BackgroundList([model])
    psf = None
    candidates = None  # condition-2 pixels, found once (as CharacterizeImageTask does)
    for _ in range(psf_iterations):
        sigma = 1.5 if psf is None else psf.sigma(psf.average_position)
        simple = GaussianPsf(sigma, size=11 if psf is None else psf.size)
        with timer("cosmic_rays"):
            candidates = find_cosmic_rays(
                image, mask, variance, simple, keep_crs=True, planes=planes, config=cr_config,
                candidates=candidates,
            ).candidates
        with timer("detection"):
            det = detect_sources(image, mask, variance, sigma, planes=planes)
        background.append(det.background)
        with timer("measurement"):
            cat = measure_sources(
                image, mask, variance, det.footprints, simple, labels=det.labels, planes=planes
            )
        with timer("star_selection"):
            stars = select_stars_object_size(cat)
            cat["calib_psf_candidate"] = stars
        with timer("psf"):
            result = PixelPsfDeterminer().determine(
                image, mask, variance, cat[stars], planes=planes
            )
            psf = result.psf
            used = np.zeros(len(cat), bool)
            used[np.nonzero(stars)[0][result.used]] = True
            cat["calib_psf_used"] = used
    with timer("cr_repair"):
        find_cosmic_rays(
            image, mask, variance, psf, keep_crs=False, planes=planes, config=cr_config,
            candidates=candidates,
        )
    with timer("final_measurement"):
        final = measure_sources(
            image, mask, variance, det.footprints, psf, labels=det.labels, planes=planes
        )
        for col in ("calib_psf_candidate", "calib_psf_used"):
            final[col] = cat[col]
    with timer("aperture_correction"):
        ap_corr = measure_ap_corr(final, (0.0, 0.0, w - 1.0, h - 1.0))
        apply_ap_corr(final, ap_corr)
    return psf, final, background


def time_steps(exposure, *, psf_iterations: int = 2) -> dict[str, float]:
    """CPU seconds of each characterisation step on one core (see module docstring).

    Parameters
    ----------
    exposure : Exposure
        Post-ISR exposure (``image``, ``mask`` with planes, ``variance``); left unchanged.
    psf_iterations : int
        PSF iterations (LSST default 2).

    Returns
    -------
    dict
        ``{step: seconds}`` for each name of `STEPS`, plus ``"total"``.
    """
    image = np.array(exposure.image, dtype=np.float32)
    mask = np.array(exposure.mask.array, dtype=np.uint32)
    variance = np.asarray(exposure.variance, dtype=np.float32)
    planes = dict(exposure.mask.planes)
    for name in ("INTRP", "CR", "EDGE", "DETECTED", "DETECTED_NEGATIVE"):
        if name not in planes:
            planes[name] = max(planes.values(), default=-1) + 1
    times: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def timer(name):
        t0 = time.process_time()
        try:
            yield
        finally:
            times[name] += time.process_time() - t0

    with _single_thread():
        run_chain(image, mask, variance, planes, psf_iterations=psf_iterations, timer=timer)
    out = {name: round(times.get(name, 0.0), 3) for name in STEPS}
    out["total"] = round(sum(times.values()), 3)
    return out


def main(argv: list[str]) -> None:
    """Simulate one detector and print the step times."""
    from imaging.sim import SimOptions, SkyModel, Visit, make_camera, simulate_detector

    size = int(argv[0]) if argv else 4096
    seed = int(argv[1]) if len(argv) > 1 else 1
    camera = make_camera(1, detector_size=size)
    sim = simulate_detector(
        camera,
        Visit(1, "r", 150.0, 2.0, seeing=0.7),
        0,
        seed=seed,
        sky=SkyModel(),
        options=SimOptions(),
    )
    for name, value in time_steps(sim.exposure).items():
        print(f"{name:20s} {value:7.3f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
