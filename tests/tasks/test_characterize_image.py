"""CharacterizeImageTask on simulated detectors, checked against the simulator's truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("galsim")

from imaging._errors import LengthError  # noqa: E402
from imaging.psf import Psf  # noqa: E402
from imaging.sim import SkyModel, Visit, make_camera, simulate_detector  # noqa: E402
from tasks import CharacterizeImageConfig, CharacterizeImageTask  # noqa: E402
from tasks.measure_psf import PixelPsfDeterminerTask, psfDeterminerRegistry  # noqa: E402

SIZE = 1024


def _simulate(seed: int = 11, orientation: float = 0.0):
    camera = make_camera(1, detector_size=SIZE, orientations=[orientation])
    visit = Visit(id=7, band="r", ra=150.0, dec=2.0, exposure_time=30.0, mjd=60000.0)
    return simulate_detector(camera, visit, 0, seed=seed, sky=SkyModel(star_density=20000))


@pytest.fixture(scope="module")
def characterized():
    sim = _simulate()
    exposure = sim.exposure.clone()
    raw_image = exposure.image.copy()
    task = CharacterizeImageTask()
    result = task.run(exposure, exposureIdInfo=7000)
    return sim, raw_image, result, task


def _noise(sim) -> float:
    gain = sim.exposure.detector.gain
    rn = sim.exposure.detector.read_noise
    return float(np.sqrt(np.median(sim.truth.background) / gain + (rn / gain) ** 2))


def test_psf_fwhm_matches_truth_within_one_percent(characterized):
    sim, _, result, _ = characterized
    psf = result.exposure.psf
    for x, y in [
        (200, 200),
        (SIZE - 200, 200),
        (SIZE / 2, SIZE / 2),
        (200, SIZE - 200),
        (SIZE - 200, SIZE - 200),
    ]:
        model = psf.fwhm((x, y))
        truth = sim.truth.psf.fwhm((x, y))
        assert abs(model / truth - 1) < 0.01, (x, y, model, truth)


def test_background_residual_below_tenth_of_noise(characterized):
    sim, _, result, _ = characterized
    model = result.background.evaluate(result.exposure.image.shape, result.exposure.xy0)
    residual = (model - sim.truth.background) / _noise(sim)
    keep = np.zeros(residual.shape, bool)
    keep[64:-64, 64:-64] = True
    yy, xx = np.mgrid[: residual.shape[0], : residual.shape[1]]
    for star in sim.truth.sources[
        sim.truth.sources["is_bright"] | sim.truth.sources["is_saturated"]
    ]:
        keep &= (xx - star["x"]) ** 2 + (yy - star["y"]) ** 2 > 60**2
    assert keep.sum() > 0.3 * keep.size
    assert np.percentile(np.abs(residual[keep]), 99) < 0.1


def test_bright_stars_found_and_nothing_spurious(characterized):
    sim, _, result, _ = characterized
    cat = result.sourceCat
    sx, sy = np.asarray(cat["base_SdssCentroid_x"]), np.asarray(cat["base_SdssCentroid_y"])
    truth = sim.truth.sources
    noise = _noise(sim)
    border = 15
    bright = truth[
        (~truth["is_galaxy"])
        & (truth["peak"] > 50 * noise)
        & (truth["x"] > border)
        & (truth["x"] < SIZE - border)
        & (truth["y"] > border)
        & (truth["y"] < SIZE - border)
    ]
    assert len(bright) >= 10
    for star in bright:
        distance = np.hypot(sx - star["x"], sy - star["y"])
        assert distance.min() < 3.0, (
            f"star at ({star['x']:.1f}, {star['y']:.1f}) peak {star['peak']:.0f} missed"
        )
    tx, ty = np.asarray(truth["x"]), np.asarray(truth["y"])
    loud = truth[truth["is_bright"] | truth["is_saturated"]]
    for x, y in zip(sx, sy, strict=True):
        near_truth = np.hypot(tx - x, ty - y).min() < 3.0
        near_loud = (
            len(loud) and np.hypot(np.asarray(loud["x"]) - x, np.asarray(loud["y"]) - y).min() < 60
        )
        on_bleed = len(loud) and np.abs(np.asarray(loud["x"]) - x).min() < 4
        assert near_truth or near_loud or on_bleed, f"spurious source at ({x:.1f}, {y:.1f})"


def test_cosmic_rays_flagged_and_no_star_core(characterized):
    sim, raw_image, result, _ = characterized
    mask = result.exposure.mask
    cr = mask.is_set("CR")
    truth_cr = sim.truth.cr_mask & ~mask.is_set(["BAD", "SAT"])
    assert truth_cr.sum() > 50
    recall = np.count_nonzero(cr & truth_cr) / np.count_nonzero(truth_cr)
    assert recall >= 0.97, recall
    stars = sim.truth.stars
    for star in stars[stars["peak"] > 20 * _noise(sim)]:
        x, y = (
            int(round(star["x"])),
            int(round(star["y"])),
        )
        core = (slice(max(y - 1, 0), y + 2), slice(max(x - 1, 0), x + 2))
        if sim.truth.cr_mask[core].any():
            continue  # a real cosmic ray hit this star
        assert not cr[core].any(), f"star core at ({x}, {y}) flagged as CR"
    # flagged pixels were interpolated at the end (CR and INTRP set, values changed)
    assert np.all(mask.is_set("INTRP")[cr])
    assert np.any(result.exposure.image[cr] != raw_image[cr])


def test_psf_flags_and_metadata(characterized):
    _, _, result, task = characterized
    cat = result.sourceCat
    used = np.asarray(cat["calib_psf_used"])
    candidate = np.asarray(cat["calib_psf_candidate"])
    assert used.sum() >= 5
    assert np.all(candidate[used])  # used is a subset of candidates
    assert set(result.psfCellSet["status"]) <= {"used", "reserved", "rejected"}
    assert result.characterized is result.exposure and result.backgroundModel is result.background
    metadata = task.getFullMetadata()
    names = set(metadata.names())
    assert "characterizeImage.numPsfStars" in names
    assert "characterizeImage:repair.nCrPixels" in names
    assert any(n.startswith("characterizeImage:detection.detectionStart") for n in names)
    assert math.isclose(
        metadata["characterizeImage.psfFwhm"],
        result.exposure.psf.fwhm(result.exposure.psf.average_position),
        rel_tol=1e-9,
    )


def test_too_many_cr_pixels_is_the_seed_error():
    sim = _simulate(seed=12)
    config = CharacterizeImageConfig()
    config.repair.cosmicray.nCrPixelMax = 5
    with pytest.raises(LengthError, match="Too many CR pixels"):
        CharacterizeImageTask(config=config).run(sim.exposure)


class _NanPsf(Psf, kind="test_nan"):
    def __init__(self, size: int = 11) -> None:
        self.size = size

    def kernel_image(self, position):
        return np.full((self.size, self.size), np.nan)

    def moments(self, position):
        return (math.nan, math.nan, math.nan)

    def to_dict(self):
        return {"size": self.size}


class _NanDeterminer(PixelPsfDeterminerTask):
    def determine(self, exposure, stars, reserved):
        result = super().determine(exposure, stars, reserved)
        return result._replace(psf=_NanPsf())


def test_nan_psf_sigma_is_the_seed_error():
    psfDeterminerRegistry.register("test_nan", _NanDeterminer)
    sim = _simulate(seed=13)
    config = CharacterizeImageConfig()
    config.measurePsf.psfDeterminer.name = "test_nan"
    config.psfIterations = 1
    with pytest.raises(RuntimeError, match="PSF sigma is NaN, cannot continue PSF determination."):
        CharacterizeImageTask(config=config).run(sim.exposure)


def test_debug_pictures(tmp_path):
    sim = _simulate(seed=14)
    config = CharacterizeImageConfig()
    config.debugStages = ["psf", "repair"]
    config.debugDir = str(tmp_path)
    config.psfIterations = 1
    CharacterizeImageTask(config=config).run(sim.exposure)
    pictures = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pictures == ["exposure_psf.png", "exposure_psf_stars.png", "exposure_repair.png"]
    assert all(p.stat().st_size > 10_000 for p in tmp_path.glob("*.png"))


def test_rotated_detector_psf(tmp_path):
    sim = _simulate(seed=15, orientation=90.0)
    result = CharacterizeImageTask().run(sim.exposure)
    center = (SIZE / 2, SIZE / 2)
    assert abs(result.exposure.psf.fwhm(center) / sim.truth.psf.fwhm(center) - 1) < 0.01


def test_cosmic_ray_options_are_reachable_from_the_config():
    """The CR finder's options have config fields with their defaults, and a change reaches
    the finder (ring_min_sigma, model_error, the track pass...)."""
    from imaging.cosmic_rays import CosmicRayConfig

    cosmicray = CharacterizeImageConfig().repair.cosmicray
    assert cosmicray.to_options() == CosmicRayConfig()
    cosmicray.ringMinSigma = 1.5
    cosmicray.modelError = 0.05
    cosmicray.extendCond3Fac2 = 0.6
    cosmicray.trackBox = 0
    cosmicray.trackSigma = 2.0
    cosmicray.besideIntrp = False
    options = cosmicray.to_options()
    assert options == CosmicRayConfig(ring_min_sigma=1.5, model_error=0.05, extend_cond3_fac2=0.6,
                                      track_box=0, track_sigma=2.0, beside_intrp=False)
