"""Image characterisation benchmark: our CharacterizeImageTask against a peer assembly.

Run with ``python -m bench characterize``. A child process with every BLAS/OpenMP pool
limited to one thread (``OMP_NUM_THREADS`` etc. set in its environment, as in
``graph_bench``) simulates a 4096x4096 detector with `imaging.sim` and runs, on copies of
the same exposure:

- ours: `tasks.CharacterizeImageTask`, twice: the times are the second call's, as every
  quantum of a worker after its first (the first call in a process also loads numba's
  compiled kernels from the disk cache and the task's lazily imported modules; its whole is
  a row of its own); the step times are CPU-time differences of the task's own
  ``...StartCpuTime``/``...EndCpuTime`` metadata, summed over the repeated calls (two PSF
  iterations, final CR repair and measurement);
- the peer: SEP (``sep.Background``, ``sep.extract``, ``sep.sum_circle``) for background,
  detection and aperture photometry, astroscrappy (``detect_cosmics``) for cosmic rays, and
  photutils' ``EPSFBuilder`` for the PSF, each timed with ``time.process_time``; SEP works
  on astroscrappy's cleaned image.

Both are scored against the simulator's truth: PSF FWHM relative error at five positions,
PSF image residual there, CR recall and false CR pixels (BAD/SAT pixels excluded),
background residual RMS in units of the sky noise away from sources, and detection
completeness of stars with a noise-free peak above 50 sigma. The child reports JSON; the
parent prints one table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np

from ._table import print_table

#: Detector size and simulation seeds of ``main``.
SIZE = 4096
SEEDS = (1, 2)
#: Star density of the simulated sky (per deg²).
STAR_DENSITY = 5000.0
#: Our task's timed steps: row name -> metadata prefixes whose Start/End CPU times are summed.
OUR_STEPS = {
    "background": ("characterizeImage:background.subtractBackground",),
    "detection": ("characterizeImage:detection.detection",),
    "cosmic rays": ("characterizeImage:repair.cosmicRay",),
    "measurement": ("characterizeImage:measurement.measurement",),
    "PSF": ("characterizeImage:measurePsf.psfDeterminer",),
    "aperture correction": ("characterizeImage.apCorr",),
}
#: Row names of the table, in order (``other`` = our whole task minus the timed steps).
STEP_ROWS = (*OUR_STEPS, "other")
#: Thread-count variables set for the measured child process.
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
#: ``repair.cosmicray.nCrPixelMax`` of our task: a 4k² detector at the simulator's CR rate has
#: ~9,000 CR pixels, some seeds more than LSST's default 10,000 (obs packages raise it too).
N_CR_PIXEL_MAX = 100_000
#: Match radius of detections to true stars (pixels).
MATCH_RADIUS = 2.0
#: Stamp size and oversampling of the peer's ePSF.
#: astroscrappy ``sigclip`` that reaches recall >= 0.97 on the simulator's detectors.
MATCHED_SIGCLIP = 3.0
EPSF_SIZE = 25
EPSF_OVERSAMPLING = 4
#: ``maxiters`` of the peer's ``EPSFBuilder``.
EPSF_MAXITERS = 10


def simulate(size: int = SIZE, seed: int = 1, *, star_density: float = STAR_DENSITY) -> Any:
    """Simulate one detector of a one-detector camera (``imaging.sim.SimulatedDetector``)."""
    from imaging.sim import SkyModel, Visit, make_camera, simulate_detector

    camera = make_camera(1, detector_size=size)
    visit = Visit(id=1, band="r", ra=150.0, dec=2.0, exposure_time=30.0, mjd=60000.0)
    return simulate_detector(camera, visit, 0, seed=seed, sky=SkyModel(star_density=star_density))


def _bad_sat(exposure: Any) -> np.ndarray:
    return exposure.mask.is_set([p for p in ("BAD", "SAT") if p in exposure.mask.planes])


def _psf_positions(shape: tuple[int, int]) -> list[tuple[float, float]]:
    h, w = shape
    return [(0.5 * (w - 1), 0.5 * (h - 1))] + [
        (fx * (w - 1), fy * (h - 1)) for fx in (0.15, 0.85) for fy in (0.15, 0.85)
    ]


# -- ours ----------------------------------------------------------------------------------------


def run_ours(exposure: Any) -> dict[str, Any]:
    """Run `tasks.CharacterizeImageTask` on a copy of ``exposure``; times and products.

    Returns
    -------
    dict
        ``times`` ({row: CPU s}, ``whole`` and ``wall`` included), ``psf`` (a
        `~imaging.psf.Psf`), ``cr_mask``, ``background`` (image, ADU), ``x``, ``y``
        (detections) and ``metadata_names`` (sorted).
    """
    from tasks import CharacterizeImageTask

    exp = exposure.clone()
    config = CharacterizeImageTask.ConfigClass()
    config.repair.cosmicray.nCrPixelMax = N_CR_PIXEL_MAX
    task = CharacterizeImageTask(config=config)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    result = task.run(exp, exposureIdInfo=1000)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    metadata = task.getFullMetadata()
    names = metadata.names()
    times: dict[str, float] = {}
    for row, prefixes in OUR_STEPS.items():
        total = 0.0
        for prefix in prefixes:
            if f"{prefix}StartCpuTime" in names:
                starts = metadata.getArray(f"{prefix}StartCpuTime")
                ends = metadata.getArray(f"{prefix}EndCpuTime")
                total += sum(float(e) - float(s) for s, e in zip(starts, ends, strict=True))
        times[row] = total
    times["other"] = cpu - sum(times.values())
    times["whole"] = cpu
    times["wall"] = wall
    cat = result.sourceCat
    return {
        "times": times,
        "psf": exp.psf,
        "cr_mask": exp.mask.is_set("CR"),
        "background": result.background.evaluate(exp.image.shape, exp.xy0),
        "x": np.asarray(cat["base_SdssCentroid_x"], float) - exp.xy0[0],
        "y": np.asarray(cat["base_SdssCentroid_y"], float) - exp.xy0[1],
        "metadata_names": sorted(names),
    }


# -- the peer ------------------------------------------------------------------------------------


def _select_epsf_stars(
    objects: np.ndarray,
    shape: tuple[int, int],
    saturation: float,
    noise: float,
    *,
    max_stars: int = 150,
) -> np.ndarray:
    """Return indices of bright, unsaturated, isolated point-like SEP objects (ePSF stars)."""
    h, w = shape
    half = EPSF_SIZE // 2 + 2
    x, y, peak = objects["x"], objects["y"], objects["peak"]
    ok = (
        (objects["flag"] == 0)
        & (peak > 50.0 * noise)
        & (peak < 0.5 * saturation)
        & (x > half)
        & (x < w - 1 - half)
        & (y > half)
        & (y < h - 1 - half)
    )
    # Isolated: no other object within a stamp's half-width.
    for i in np.nonzero(ok)[0]:
        d2 = (x - x[i]) ** 2 + (y - y[i]) ** 2
        d2[i] = np.inf
        if d2.min() < (EPSF_SIZE / 2.0) ** 2:
            ok[i] = False
    # Point-like: flux/peak (an area) near the stellar locus (the median of the candidates).
    area = objects["flux"] / np.maximum(peak, 1e-12)
    if np.count_nonzero(ok):
        locus = np.median(area[ok])
        ok &= np.abs(area / locus - 1.0) < 0.2
    idx = np.nonzero(ok)[0]
    return idx[np.argsort(-peak[idx])][:max_stars]


def _epsf_fwhm(epsf: Any) -> float:
    from imaging.psf import FWHM_PER_SIGMA, adaptive_moments

    ixx, iyy, ixy = adaptive_moments(np.asarray(epsf.data, float))
    return FWHM_PER_SIGMA * (ixx * iyy - ixy * ixy) ** 0.25 / EPSF_OVERSAMPLING


def run_peer(exposure: Any, *, epsf_maxiters: int = EPSF_MAXITERS) -> dict[str, Any]:
    """Run the peer assembly (SEP, astroscrappy, photutils ePSF) on ``exposure``'s arrays.

    ``epsf_maxiters`` is the ePSF builder's ``maxiters``: fewer make a quick smoke run (each
    iteration interpolates the oversampled grid's empty pixels, ~2 s with few stars).

    Returns
    -------
    dict
        As `run_ours`; ``psf`` is the photutils ``ImagePSF`` (or `None` when it failed),
        ``psf_fwhm`` its FWHM (native pixels) and ``n_psf_stars``.
    """
    import astroscrappy
    import sep
    from astropy.nddata import NDData
    from astropy.table import Table
    from photutils.psf import EPSFBuilder, extract_stars

    det = exposure.detector
    gain, read_noise, saturation = det.gain, det.read_noise, det.saturation
    data = np.ascontiguousarray(exposure.image, dtype=np.float32)
    bad = np.ascontiguousarray(_bad_sat(exposure))
    times: dict[str, float] = {}

    # Cosmic rays first, as a user of these tools would: SEP then works on the cleaned image
    # (else CRs dominate the point-source locus of the ePSF star selection).
    t0 = time.process_time()
    crmask, cleaned = astroscrappy.detect_cosmics(
        data,
        inmask=bad,
        gain=gain,
        readnoise=read_noise,
        satlevel=saturation,
        sigclip=4.5,
        objlim=5.0,
        sepmed=True,
        cleantype="meanmask",
        fsmode="median",
    )
    cleaned = np.ascontiguousarray(cleaned, dtype=np.float32)
    times["cosmic rays"] = time.process_time() - t0
    # The issue quotes astroscrappy at recall 0.97: a second, untimed run with a lower
    # sigclip reaches that recall, for a comparison of false pixels at matched recall.
    crmask_matched, _ = astroscrappy.detect_cosmics(
        data,
        inmask=bad,
        gain=gain,
        readnoise=read_noise,
        satlevel=saturation,
        sigclip=MATCHED_SIGCLIP,
        objlim=5.0,
        sepmed=True,
        cleantype="meanmask",
        fsmode="median",
    )

    t0 = time.process_time()
    bkg = sep.Background(cleaned, mask=bad, bw=64, bh=64, fw=3, fh=3)
    back = bkg.back()
    sub = cleaned - back
    times["background"] = time.process_time() - t0

    t0 = time.process_time()
    sep.set_extract_pixstack(5_000_000)
    sep.set_sub_object_limit(4096)
    objects = sep.extract(sub, 5.0, err=bkg.globalrms, mask=bad, minarea=5)
    times["detection"] = time.process_time() - t0

    t0 = time.process_time()
    sep.sum_circle(sub, objects["x"], objects["y"], 12.0, err=bkg.globalrms, mask=bad)
    sep.flux_radius(sub, objects["x"], objects["y"], 6.0 * objects["a"], 0.5, normflux=None)
    times["measurement"] = time.process_time() - t0

    t0 = time.process_time()
    epsf, fwhm = None, float("nan")
    idx = _select_epsf_stars(objects, data.shape, saturation, bkg.globalrms)
    if len(idx) >= 3:
        stars = extract_stars(
            NDData(sub.astype(float)),
            Table({"x": objects["x"][idx], "y": objects["y"][idx]}),
            size=EPSF_SIZE,
        )
        builder = EPSFBuilder(
            oversampling=EPSF_OVERSAMPLING, maxiters=epsf_maxiters, progress_bar=False
        )
        built = builder(stars)
        epsf = built.epsf if hasattr(built, "epsf") else built[0]
        fwhm = _epsf_fwhm(epsf)
    times["PSF"] = time.process_time() - t0
    times["aperture correction"] = 0.0
    times["other"] = 0.0
    times["whole"] = sum(times.values())
    return {
        "times": times,
        "psf": epsf,
        "psf_fwhm": fwhm,
        "n_psf_stars": int(len(idx)),
        "cr_mask": crmask.astype(bool),
        "cr_mask_matched": crmask_matched.astype(bool),
        "background": back,
        "x": np.asarray(objects["x"], float),
        "y": np.asarray(objects["y"], float),
        "peak": np.asarray(objects["peak"], float),
    }


# -- accuracy ------------------------------------------------------------------------------------


def _crop(a: np.ndarray, n: int) -> np.ndarray:
    cy, cx = a.shape[0] // 2, a.shape[1] // 2
    return a[cy - n // 2 : cy + n // 2 + 1, cx - n // 2 : cx + n // 2 + 1]


def _psf_residual(model: np.ndarray, truth: np.ndarray) -> float:
    """``|model - truth| / |truth|`` (L2) of two unit-sum centred kernels on a common box."""
    n = min(model.shape + truth.shape)
    n -= 1 - n % 2
    m, t = _crop(model, n), _crop(truth, n)
    m, t = m / m.sum(), t / t.sum()
    return float(np.sqrt(((m - t) ** 2).sum() / (t**2).sum()))


def _epsf_kernel(epsf: Any, n: int) -> np.ndarray:
    c = (n - 1) / 2.0
    yy, xx = np.mgrid[0:n, 0:n].astype(float)
    return np.asarray(epsf.evaluate(xx, yy, 1.0, c, c), float)


def _away_from_sources(sim: Any, noise: float) -> np.ndarray:
    """Pixels farther than a peak-dependent radius from every source above 3 sigma."""
    h, w = sim.truth.background.shape
    keep = np.ones((h, w), bool)
    src = sim.truth.sources
    fwhm = float(np.median(src["psf_fwhm"])) if len(src) else 3.0
    for x, y, peak in zip(src["x"], src["y"], src["peak"], strict=True):
        snr = peak / noise
        if snr < 3.0:
            continue
        r = 3.0 * fwhm * (1.0 + np.log10(snr / 3.0)) + 5.0
        x0, x1 = max(int(x - r), 0), min(int(x + r) + 1, w)
        y0, y1 = max(int(y - r), 0), min(int(y + r) + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.ogrid[y0:y1, x0:x1]
        keep[y0:y1, x0:x1] &= (xx - x) ** 2 + (yy - y) ** 2 > r * r
    return keep


def _grid_positions(shape: tuple[int, int]) -> list[tuple[float, float]]:
    """Return a 5x5 grid of positions including the corners (pixel indices)."""
    h, w = shape
    steps = np.linspace(0.0, 1.0, 5)
    return [(fx * (w - 1), fy * (h - 1)) for fy in steps for fx in steps]


def _spurious(
    products: dict[str, Any], truth: Any, xy0: tuple[int, int], noise: float
) -> int:
    """Count detections with a peak above 50 sigma and no true source within 3 pixels."""
    from scipy.spatial import cKDTree

    x, y = products["x"], products["y"]
    peak = products.get("peak")
    if peak is not None:  # the peer extracts at 5 sigma: keep its > 50 sigma objects
        keep = peak > 50.0 * noise
        x, y = x[keep], y[keep]
    src = truth.sources
    if len(x) == 0 or len(src) == 0:
        return len(x)
    tx, ty = np.asarray(src["x"]) - xy0[0], np.asarray(src["y"]) - xy0[1]
    tree = cKDTree(np.column_stack([tx, ty]))
    distance, _ = tree.query(np.column_stack([x, y]))
    return int(np.count_nonzero(distance > MATCH_RADIUS + 1.0))


def _completeness(x: np.ndarray, y: np.ndarray, tx: np.ndarray, ty: np.ndarray) -> float:
    if len(tx) == 0:
        return float("nan")
    if len(x) == 0:
        return 0.0
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([tx, ty]))
    return float(np.mean(dist <= MATCH_RADIUS))


def score(sim: Any, products: dict[str, Any], *, peer: bool = False) -> dict[str, float]:
    """Accuracy of one assembly's products against ``sim.truth``.

    Returns
    -------
    dict
        ``psf_fwhm_err`` (mean |relative error| over 5 positions), ``psf_fwhm_err_max``,
        ``psf_residual`` (mean L2 residual of the kernel image), ``cr_recall``,
        ``cr_false`` (pixels), ``bg_rms`` (residual RMS / sky noise), ``completeness``.
    """
    from imaging.psf import unweighted_fwhm

    truth, exposure = sim.truth, sim.exposure
    shape = exposure.image.shape
    det = exposure.detector
    valid = ~_bad_sat(exposure)
    out: dict[str, float] = {}

    errs, resid = [], []
    for pos in _psf_positions(shape):
        true_fwhm = truth.psf.fwhm(pos)
        true_kernel = truth.psf.kernel_image(pos)
        if peer:
            if products["psf"] is None:
                continue
            errs.append(products["psf_fwhm"] / true_fwhm - 1.0)
            resid.append(
                _psf_residual(_epsf_kernel(products["psf"], true_kernel.shape[0]), true_kernel)
            )
        else:
            errs.append(products["psf"].fwhm(pos) / true_fwhm - 1.0)
            resid.append(_psf_residual(products["psf"].kernel_image(pos), true_kernel))
    abs_errs = np.abs(errs) if errs else np.array([np.nan])
    # Issue 14: the model image as a user takes it, out to the corners: FWHM of unweighted
    # moments (negatives clipped) on a 5x5 grid, and the most negative wing sum.
    unweighted, negative = [], []
    if not peer or products["psf"] is not None:
        for pos in _grid_positions(shape):
            true_kernel = truth.psf.kernel_image(pos)
            if peer:
                model = _epsf_kernel(products["psf"], true_kernel.shape[0])
            else:
                model = products["psf"].kernel_image(pos)
            n = min(model.shape[0], true_kernel.shape[0])
            m, t = _crop(model, n), _crop(true_kernel, n)
            unweighted.append(unweighted_fwhm(m) / unweighted_fwhm(t) - 1.0)
            negative.append(float(m[m < 0].sum() / m.sum()))
    out["psf_unweighted_err_max"] = float(np.max(np.abs(unweighted))) if unweighted else np.nan
    out["psf_negative_min"] = float(np.min(negative)) if negative else np.nan
    out["psf_fwhm_err"] = float(np.mean(abs_errs))
    out["psf_fwhm_err_max"] = float(np.max(abs_errs))
    out["psf_residual"] = float(np.mean(resid)) if resid else float("nan")

    true_cr = truth.cr_mask & valid
    found = products["cr_mask"] & valid
    out["cr_true"] = float(np.count_nonzero(true_cr))
    out["cr_recall"] = float(np.count_nonzero(found & true_cr) / max(out["cr_true"], 1.0))
    out["cr_false"] = float(np.count_nonzero(found & ~true_cr))
    matched = products.get("cr_mask_matched")
    if matched is not None:  # the peer's recall-matched run
        found = matched & valid
        out["cr_recall_matched"] = float(
            np.count_nonzero(found & true_cr) / max(out["cr_true"], 1.0)
        )
        out["cr_false_matched"] = float(np.count_nonzero(found & ~true_cr))
    else:  # ours has one setting: compare it to both peer runs
        out["cr_recall_matched"] = out["cr_recall"]
        out["cr_false_matched"] = out["cr_false"]

    sky_var = np.maximum(truth.background, 0.0) / det.gain + (det.read_noise / det.gain) ** 2
    noise = np.sqrt(sky_var)
    away = _away_from_sources(sim, float(np.median(noise))) & valid & ~truth.cr_mask
    res = (products["background"] - truth.background)[away] / noise[away]
    out["bg_rms"] = float(np.sqrt(np.mean(res**2)))

    stars = truth.stars
    ix = np.clip(np.round(stars["x"]).astype(int) - exposure.xy0[0], 0, shape[1] - 1)
    iy = np.clip(np.round(stars["y"]).astype(int) - exposure.xy0[1], 0, shape[0] - 1)
    bright = np.asarray(stars["peak"]) > 50.0 * noise[iy, ix]
    out["n_bright_stars"] = float(np.count_nonzero(bright))
    out["spurious"] = float(_spurious(products, truth, exposure.xy0, float(np.median(noise))))
    out["completeness"] = _completeness(
        products["x"],
        products["y"],
        np.asarray(stars["x"])[bright] - exposure.xy0[0],
        np.asarray(stars["y"])[bright] - exposure.xy0[1],
    )
    return out


def compare(sim: Any, *, epsf_maxiters: int = EPSF_MAXITERS) -> dict[str, Any]:
    """Run both assemblies on ``sim.exposure``; return JSON-ready times and scores.

    ``epsf_maxiters``: see `run_peer` (the benchmark keeps `EPSF_MAXITERS`).
    """
    # The first call in a process also loads numba's compiled kernels from its disk cache
    # and imports what the task imports on first use: a worker pays that once for all its
    # quanta. The steps and the whole are timed on the second call (as every later quantum
    # of a worker), the first call's whole is reported beside it.
    first = run_ours(sim.exposure)
    ours = run_ours(sim.exposure)
    ours["times"]["whole, first call in a new process"] = first["times"]["whole"]
    peer = run_peer(sim.exposure, epsf_maxiters=epsf_maxiters)
    return {
        "ours": {"times": ours["times"], "score": score(sim, ours)},
        "peer": {
            "times": peer["times"],
            "score": score(sim, peer, peer=True),
            "n_psf_stars": peer["n_psf_stars"],
        },
        "metadata_names": ours["metadata_names"],
        "shape": list(sim.exposure.image.shape),
    }


# -- report --------------------------------------------------------------------------------------


def _mean(results: list[dict[str, Any]], who: str, part: str, key: str) -> float:
    return float(np.mean([r[who][part][key] for r in results]))


def table_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of the table from the `compare` results (averaged over detectors)."""
    columns = ["quantity", "ours", "peer", "ours / peer"]
    rows: list[list[Any]] = []

    def ratio(a: float, b: float) -> Any:
        return a / b if b > 0 and np.isfinite(a) and np.isfinite(b) else "-"

    for step in (*STEP_ROWS, "whole"):
        a, b = _mean(results, "ours", "times", step), _mean(results, "peer", "times", step)
        rows.append([f"time: {step} (CPU s)", a, b if b > 0 else "-", ratio(a, b)])
    rows.append(["time: whole, wall (s)", _mean(results, "ours", "times", "wall"), "-", "-"])
    first = _mean(results, "ours", "times", "whole, first call in a new process")
    peer_whole = _mean(results, "peer", "times", "whole")
    rows.append(["time: whole, first call in a new process (CPU s)", first, peer_whole,
                 ratio(first, peer_whole)])
    for key, label in (
        ("psf_fwhm_err", "PSF FWHM |rel. error|, mean of 5"),
        ("psf_fwhm_err_max", "PSF FWHM |rel. error|, max of 5"),
        ("psf_residual", "PSF image L2 residual, mean of 5"),
        ("psf_unweighted_err_max", "PSF unweighted-moment FWHM |rel. error|, max of 5x5 grid"),
        ("psf_negative_min", "PSF model negative pixels / flux, most negative of 5x5"),
        ("spurious", "detections > 50 sigma matching no source"),
        ("cr_recall", "CR recall"),
        ("cr_false", "CR false pixels"),
        ("cr_recall_matched", f"CR recall (peer sigclip {MATCHED_SIGCLIP})"),
        ("cr_false_matched", f"CR false pixels (peer sigclip {MATCHED_SIGCLIP})"),
        ("bg_rms", "background residual RMS (sky sigma)"),
        ("completeness", "completeness, stars peak > 50 sigma"),
    ):
        a, b = _mean(results, "ours", "score", key), _mean(results, "peer", "score", key)
        rows.append([label, a, b, ratio(a, b)])
    return columns, rows


def _case(size: int, seed: int) -> dict[str, Any]:
    """Child process: simulate one detector, compare, and add the thread report."""
    t0 = time.perf_counter()
    sim = simulate(size, seed)
    sim_time = time.perf_counter() - t0
    result = compare(sim)
    result["sim_time"] = sim_time
    result["seed"] = seed
    result["cr_true"] = result["ours"]["score"]["cr_true"]
    result["n_bright_stars"] = result["ours"]["score"]["n_bright_stars"]
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        result["threadpools"] = "threadpoolctl not installed"
    else:
        result["threadpools"] = sorted(
            {f"{p['internal_api']}={p['num_threads']}" for p in threadpool_info()}
        )
    result["env"] = {v: os.environ.get(v) for v in THREAD_VARS}
    return result


def measure(size: int = SIZE, seeds: tuple[int, ...] = SEEDS) -> list[dict[str, Any]]:
    """Run `_case` for each seed in a single-threaded child process."""
    env = dict(os.environ, **{v: "1" for v in THREAD_VARS})
    results = []
    for seed in seeds:
        code = (
            "import json; from bench.characterize_bench import _case; "
            f"print('RESULT ' + json.dumps(_case({size}, {seed})))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
        )
        if out.returncode != 0:
            print(f"characterize bench: seed {seed} failed, skipped:\n{out.stderr[-2000:]}")
            continue
        line = next(s for s in reversed(out.stdout.splitlines()) if s.startswith("RESULT "))
        results.append(json.loads(line[len("RESULT ") :]))
    return results


def main() -> None:
    results = measure()
    if not results:
        print("characterize bench: no detector could be measured")
        return
    columns, rows = table_rows(results)
    first = results[0]
    ours_whole = _mean(results, "ours", "times", "whole")
    peer_whole = _mean(results, "peer", "times", "whole")
    print("metadata names:", ", ".join(n for n in first["metadata_names"] if "CpuTime" in n))

    def mean(who: str, key: str) -> float:
        return _mean(results, who, "score", key)

    met = {
        "whole <= 2.5 s (issue 14)": ours_whole <= 2.5,
        "PSF unweighted FWHM within 1% on the 5x5 grid (issue 14)": mean(
            "ours", "psf_unweighted_err_max"
        )
        <= 0.01,
        "<= 1 spurious > 50 sigma detection (issue 14)": mean("ours", "spurious") <= 1.0,
        "CR recall >= 0.99 with fewer false pixels than astroscrappy's default (issue 14)": (
            mean("ours", "cr_recall") >= 0.99
            and mean("ours", "cr_false") < mean("peer", "cr_false")
        ),
        "whole <= 5 s": ours_whole <= 5.0,
        ">= 10x faster": peer_whole >= 10.0 * ours_whole,
        "PSF FWHM error <= peer's": mean("ours", "psf_fwhm_err") <= mean("peer", "psf_fwhm_err"),
        "PSF residual <= peer's": mean("ours", "psf_residual") <= mean("peer", "psf_residual"),
        "CR recall >= 0.97": mean("ours", "cr_recall") >= 0.97,
        "CR false < astroscrappy's (its default sigclip 4.5, lower recall)": mean(
            "ours", "cr_false"
        )
        < mean("peer", "cr_false"),
        "CR false < astroscrappy's at recall >= 0.97": (
            mean("peer", "cr_recall_matched") >= 0.97
            and mean("ours", "cr_false") < mean("peer", "cr_false_matched")
        ),
    }
    verdict = "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in met.items())
    print_table(
        f"CharacterizeImageTask vs SEP + astroscrappy + photutils ePSF, one core, "
        f"{first['shape'][1]}x{first['shape'][0]} simulated detector "
        f"(seeds {[r['seed'] for r in results]})",
        columns,
        rows,
        notes=(
            f"Means over {len(results)} detector(s). Truth per detector: "
            f"{[int(r['cr_true']) for r in results]} CR pixels (BAD/SAT excluded), "
            f"{[int(r['n_bright_stars']) for r in results]} stars with peak > 50 sigma; ePSF "
            f"built from {[r['peer']['n_psf_stars'] for r in results]} stars (oversampling "
            f"{EPSF_OVERSAMPLING}, one ePSF per detector). Simulation "
            f"{first['sim_time']:.1f} s (not timed). Child "
            f"threads: {first['threadpools']}; env {first['env']}. "
            f"Whole: ours {ours_whole:.2f} s, peer {peer_whole:.2f} s, peer/ours = "
            f"{peer_whole / max(ours_whole, 1e-9):.1f}x. "
            "Ours' step times are the task metadata's CPU times summed over calls; 'other' is "
            "the rest of the task (PSF installs, peak splitting, star selection, ...). Peer "
            f"measurement = sep.sum_circle(r=12) + sep.flux_radius. Our task runs with "
            f"repair.cosmicray.nCrPixelMax = {N_CR_PIXEL_MAX} (default 10,000). "
            "Targets (issue 6): whole task <= 5 s per 4k^2 detector on one core and >= 10x "
            "faster than the peer assembly; PSF residuals no worse than the peer's; CR recall "
            ">= 0.97 with fewer false pixels than astroscrappy. Issue's measurements here: SEP "
            "background+extraction 0.7 s; astroscrappy 48 s, recall 0.97, ~2,600 false CR "
            f"pixels. Verdict: {verdict}."
        ),
    )


if __name__ == "__main__":
    main()
