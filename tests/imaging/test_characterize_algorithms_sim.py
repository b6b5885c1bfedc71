"""The characterisation algorithms against the GalSim simulator's truth.

One dense 1024² detector (fixed seed) goes through the chain of ``science.md`` §1.3:
background, two rounds of [CR detection keeping the pixels, detection with background
re-estimate, measurement, star selection, PSF fit], final CR interpolation and
measurement.  The assertions are the targets of issue 6.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from imaging.background import BackgroundList, subtract_background
from imaging.cosmic_rays import CosmicRayConfig, find_cosmic_rays
from imaging.detection import detect_sources
from imaging.measurement import measure_sources
from imaging.psf import GaussianPsf, adaptive_moments
from imaging.psf_determiner import PixelPsfDeterminer
from imaging.sim import SimOptions, SkyModel, Visit, make_camera, simulate_detector
from imaging.star_selector import select_stars_object_size

SEEDS = (3, 4)
FWHM = 2.3548200450309493


def _chain(sim):
    exp = sim.exposure
    image = np.array(exp.image, dtype=np.float32)
    mask = np.array(exp.mask.array, dtype=np.uint32)
    variance = np.asarray(exp.variance, dtype=np.float32)
    planes = dict(exp.mask.planes)
    cr_config = CosmicRayConfig(n_cr_pixel_max=100_000)
    model, _ = subtract_background(image, mask, variance, planes=planes)
    background = BackgroundList([model])
    psf = None
    for _ in range(2):
        sigma = 1.5 if psf is None else psf.sigma(psf.average_position)
        simple = GaussianPsf(sigma, size=11 if psf is None else psf.size)
        find_cosmic_rays(image, mask, variance, simple, keep_crs=True, planes=planes,
                         config=cr_config)
        det = detect_sources(image, mask, variance, sigma, planes=planes)
        background.append(det.background)
        cat = measure_sources(image, mask, variance, det.footprints, simple,
                              labels=det.labels, planes=planes)
        stars = select_stars_object_size(cat)
        psf = PixelPsfDeterminer().determine(image, mask, variance, cat[stars],
                                             planes=planes).psf
    crs = find_cosmic_rays(image, mask, variance, psf, keep_crs=False, planes=planes,
                           config=cr_config)
    cat = measure_sources(image, mask, variance, det.footprints, psf, labels=det.labels,
                          planes=planes)
    return {"image": image, "mask": mask, "planes": planes, "psf": psf, "catalog": cat,
            "background": background, "crs": crs, "noise": float(np.sqrt(np.median(variance)))}


@pytest.fixture(scope="module", params=SEEDS)
def run(request):
    camera = make_camera(1, detector_size=1024)
    visit = Visit(1, "r", 150.0, 2.0, seeing=0.7)
    sim = simulate_detector(camera, visit, 0, seed=request.param,
                            sky=SkyModel(star_density=20000), options=SimOptions())
    return sim, _chain(sim)


def _fwhm(stamp):
    ixx, iyy, ixy = adaptive_moments(stamp)
    return FWHM * (ixx * iyy - ixy * ixy) ** 0.25


def test_cosmic_ray_recall_and_false_pixels(run):
    sim, out = run
    truth = sim.truth.cr_mask
    found = np.zeros(truth.shape, bool)
    found[out["crs"].y, out["crs"].x] = True
    assert truth.sum() > 200
    recall = (found & truth).sum() / truth.sum()
    false = (found & ~truth).sum()
    # issue 14: thresholds that fall with a neighbour's CR neighbours (1.9-3.0 sigma)
    # took these detectors from 0.979/0.976 to 0.986/0.985
    assert recall >= 0.98
    # astroscrappy needs 0.3 (4k², issue 6) to 2 (2k², sigclip 3.5) false pixels per true
    # CR pixel to reach a recall of 0.97; ours stays near 0.12
    assert false < 0.2 * truth.sum()


def test_no_star_core_flagged_as_cosmic_ray(run):
    sim, out = run
    cr = (out["mask"] & np.uint32(1 << out["planes"]["CR"])) != 0
    stars = sim.truth.stars
    h, w = cr.shape
    ix, iy = np.rint(stars["x"]).astype(int), np.rint(stars["y"]).astype(int)
    hit = np.zeros(len(stars), bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            hit |= cr[np.clip(iy + dy, 0, h - 1), np.clip(ix + dx, 0, w - 1)]
    assert len(stars) > 30
    assert not hit.any(), np.asarray(stars["x", "y", "flux"][hit])


def test_bright_stars_all_detected(run):
    sim, out = run
    cat = out["catalog"]
    stars = sim.truth.stars
    bright = stars[stars["peak"] > 50 * out["noise"]]
    assert len(bright) >= 10
    tree = cKDTree(np.c_[cat["base_SdssCentroid_x"], cat["base_SdssCentroid_y"]])
    d, _ = tree.query(np.c_[bright["x"], bright["y"]])
    # a fainter star blended into a brighter one's footprint counts as found
    missed = bright[d > 2.0]
    if len(missed):
        labels = ndimage.label((out["mask"] & np.uint32(1 << out["planes"]["DETECTED"])) != 0)[0]
        lab = labels[np.rint(missed["y"]).astype(int), np.rint(missed["x"]).astype(int)]
        brighter = bright[np.argsort(-bright["flux"])]
        blended = [
            lab[i] > 0 and any(
                labels[int(round(b["y"])), int(round(b["x"]))] == lab[i] and b["flux"] > m["flux"]
                for b in brighter)
            for i, m in enumerate(missed)
        ]
        missed = missed[~np.asarray(blended, bool)]
    assert len(missed) == 0, np.asarray(missed["x", "y", "peak"])


def test_no_spurious_detections(run):
    sim, out = run
    cat = out["catalog"]
    src = sim.truth.sources
    x, y = np.asarray(cat["base_SdssCentroid_x"]), np.asarray(cat["base_SdssCentroid_y"])
    d, _ = cKDTree(np.c_[src["x"], src["y"]]).query(np.c_[x, y])
    sat = (out["mask"] & np.uint32(1 << out["planes"]["SAT"])) != 0
    near_sat = ndimage.binary_dilation(sat, iterations=30)
    h, w = sat.shape
    on_trail = near_sat[np.clip(np.rint(y).astype(int), 0, h - 1),
                        np.clip(np.rint(x).astype(int), 0, w - 1)]
    bright = src[src["is_bright"]]
    in_halo = np.zeros(len(cat), bool)
    for s in bright:
        in_halo |= np.hypot(x - s["x"], y - s["y"]) < 100
    spurious = (d > 2.0) & ~on_trail & ~in_halo
    assert len(cat) > 20
    assert not spurious.any(), np.c_[x[spurious], y[spurious]]


def test_background_residual(run):
    sim, out = run
    h, w = out["image"].shape
    resid = out["background"].evaluate((h, w)) - sim.truth.background
    away = ~ndimage.binary_dilation(
        (out["mask"] & np.uint32(1 << out["planes"]["SAT"])) != 0, iterations=50)
    # the halo of a saturated star (drawn out to 400 px) is real light, not sky
    yy, xx = np.mgrid[:h, :w]
    for s in sim.truth.sources[sim.truth.sources["is_bright"]]:
        away &= np.hypot(xx - s["x"], yy - s["y"]) > 300
    assert away.mean() > 0.2
    assert np.abs(resid[away]).max() < 0.1 * out["noise"]


@pytest.mark.parametrize("pos", [(150, 150), (512, 512), (870, 180), (180, 870), (870, 870)])
def test_psf_fwhm_matches_truth(run, pos):
    sim, out = run
    true = _fwhm(sim.truth.psf_at(*pos))
    model = _fwhm(out["psf"].kernel_image(pos))
    assert abs(model / true - 1) < 0.01, (true, model)


def test_local_extension_has_fewer_false_pixels_at_the_same_recall(run):
    # Issue 14: the extension passes used to test a CR's neighbours against neighbour-pair
    # means that already held CR charge, flagging the tracks' faint wings too widely.
    sim, out = run
    valid = ~sim.exposure.mask.is_set(["BAD", "SAT"])
    truth = sim.truth.cr_mask & valid
    scores = {}
    for mode in ("pairs", "local"):
        result = find_cosmic_rays(
            sim.exposure.image.copy(), sim.exposure.mask.array.copy(), sim.exposure.variance,
            out["psf"], keep_crs=True, planes=out["planes"],
            config=CosmicRayConfig(n_cr_pixel_max=100_000, extend_mode=mode),
        )
        found = np.zeros(truth.shape, bool)
        found[result.y, result.x] = True
        found &= valid
        scores[mode] = ((found & truth).sum() / truth.sum(), (found & ~truth).sum())
    # Since the extension judges a neighbour against the background and the star model
    # (f017604), "local" also finds more of the faint track edges: on seed 4, recall 0.976
    # (pairs) against 0.993 (local) with 66 against 58 false pixels. At unequal recall the
    # 20% margin this test held at equal recall is not the comparison: local must find at
    # least as much with fewer false pixels, and 20% fewer where its recall is about the same.
    (recall_pairs, false_pairs), (recall_local, false_local) = scores["pairs"], scores["local"]
    assert recall_local >= recall_pairs - 0.002, scores
    if recall_local > recall_pairs + 0.005:
        assert false_local < false_pairs, scores
    else:
        assert false_local < 0.8 * false_pairs, scores
