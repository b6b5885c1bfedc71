import numpy as np
import pytest
from conftest import SEED, adaptive_sigma, clean_stars

from imaging.sim import simulate_detector


def test_psf_size_matches_truth(sims):
    ratios = []
    for sim in sims.values():
        for row, stamp in clean_stars(sim):
            sigma, _, _ = adaptive_sigma(stamp)
            ratios.append(sigma / row["psf_sigma"])
    assert len(ratios) >= 8
    assert np.median(ratios) == pytest.approx(1.0, abs=0.03)
    assert np.all(np.abs(np.array(ratios) - 1) < 0.1)


def test_truth_psf_image_matches_truth_sigma(sims):
    sim = sims[0]
    row = sim.truth.stars[0]
    kernel = sim.truth.psf_at(row["x"], row["y"])
    assert kernel.shape[0] % 2 == 1 and kernel.sum() == pytest.approx(1.0)
    assert np.unravel_index(kernel.argmax(), kernel.shape) == (kernel.shape[0] // 2,) * 2
    sigma, _, _ = adaptive_sigma(kernel)
    assert sigma == pytest.approx(row["psf_sigma"], rel=0.01)
    assert row["psf_fwhm"] == pytest.approx(2.3548 * row["psf_sigma"], rel=1e-4)
    # 0.8" seeing at 0.2"/px: FWHM of about 4 px
    assert 3.5 < row["psf_fwhm"] < 4.8


def _far_from_sources(sim, radius=15, bright_radius=80):
    src = sim.truth.sources
    ny, nx = sim.exposure.image.shape
    y, x = np.mgrid[0:ny, 0:nx]
    keep = np.ones((ny, nx), bool)
    for row in src:
        r = bright_radius if row["is_bright"] else radius
        x0, x1 = max(int(row["x"]) - r, 0), min(int(row["x"]) + r + 1, nx)
        y0, y1 = max(int(row["y"]) - r, 0), min(int(row["y"]) + r + 1, ny)
        keep[y0:y1, x0:x1] &= (x[y0:y1, x0:x1] - row["x"]) ** 2 + (
            y[y0:y1, x0:x1] - row["y"]
        ) ** 2 > r * r
    cr = sim.truth.cr_mask
    cr_grown = cr | np.roll(cr, 1, 0) | np.roll(cr, -1, 0) | np.roll(cr, 1, 1) | np.roll(cr, -1, 1)
    keep &= ~cr_grown & ~sim.exposure.mask.is_set(["BAD", "SAT"])
    # sources centred just off the detector are not in the truth table: drop a border
    border = np.zeros_like(keep)
    border[40:-40, 40:-40] = True
    return keep & border


def test_noise_in_empty_regions(sims):
    for sim in sims.values():
        det = sim.exposure.detector
        keep = _far_from_sources(sim)
        assert keep.sum() > 10_000
        bg = sim.truth.background[keep].astype(float)
        expected = np.sqrt(bg / det.gain + (det.read_noise / det.gain) ** 2)
        z = (sim.exposure.image[keep] - bg) / expected
        assert np.std(z) == pytest.approx(1.0, abs=0.05)
        assert abs(np.mean(z)) < 0.05
        # the variance plane describes the same noise
        ratio = np.mean(sim.exposure.variance[keep]) / np.mean(expected**2)
        assert ratio == pytest.approx(1.0, abs=0.05)


def test_cosmic_rays_in_truth_only(sims):
    for sim in sims.values():
        cr = sim.truth.cr_mask & ~sim.exposure.mask.is_set(["BAD", "SAT"])
        assert cr.sum() > 20
        det = sim.exposure.detector
        bg = sim.truth.background[cr].astype(float)
        z = (sim.exposure.image[cr] - bg) / np.sqrt(
            bg / det.gain + (det.read_noise / det.gain) ** 2
        )
        assert np.median(z) > 5
        assert not sim.exposure.mask.is_set("CR").any()


def test_saturation_bleeds_along_columns(sims):
    saturated = [
        (sim, row)
        for sim in sims.values()
        for row in sim.truth.sources
        if row["is_saturated"] and not row["is_galaxy"]
    ]
    assert saturated, "the test sky should hold saturated stars"
    sim, row = max(saturated, key=lambda sr: sr[1]["flux"])
    exp = sim.exposure
    sat = exp.mask.is_set("SAT")
    ix, iy = int(round(row["x"])), int(round(row["y"]))
    window = sat[max(iy - 150, 0) : iy + 151, max(ix - 15, 0) : ix + 16]
    rows = np.flatnonzero(window.any(axis=1))
    cols = np.flatnonzero(window.any(axis=0))
    assert rows.size > cols.size + 4  # a vertical trail, longer than the saturated core is wide
    assert np.all(exp.image[sat] == np.float32(exp.detector.saturation))
    assert row["is_bright"]  # saturated stars carry the halo


def test_bad_columns_masked(sims):
    for sim in sims.values():
        bad = sim.exposure.mask.is_set("BAD")
        cols = sorted(set(np.flatnonzero(bad.any(axis=0))))
        assert cols == sim.truth.bad_columns and len(cols) == 2


def test_deterministic_and_independent(camera, sky, options, visit, sims):
    again = simulate_detector(camera, visit, 0, seed=SEED, sky=sky, options=options)
    first = sims[0]
    assert np.array_equal(again.exposure.image, first.exposure.image)
    assert np.array_equal(again.exposure.mask.array, first.exposure.mask.array)
    assert np.array_equal(again.truth.cr_mask, first.truth.cr_mask)
    assert again.truth.sources.as_array().tobytes() == first.truth.sources.as_array().tobytes()
    assert not np.array_equal(sims[1].exposure.image, first.exposure.image)
    other_seed = simulate_detector(camera, visit, 0, seed=SEED + 1, sky=sky, options=options)
    assert not np.array_equal(other_seed.exposure.image, first.exposure.image)


def test_psf_orientation_rotates_with_detector(sims, camera):
    assert [d.orientation for d in camera.detectors] == [0.0, 90.0]
    truth_e = {}
    measured_e = {}
    for det_id, sim in sims.items():
        stars = sim.truth.stars
        truth_e[det_id] = np.array([np.median(stars["psf_e1"]), np.median(stars["psf_e2"])])
        shapes = [adaptive_sigma(stamp)[1:] for _, stamp in clean_stars(sim)]
        measured_e[det_id] = np.median(np.array(shapes), axis=0)
    assert np.hypot(*truth_e[0]) > 0.08
    # a 90 deg rotation turns a spin-2 ellipticity into its opposite
    assert truth_e[1] == pytest.approx(-truth_e[0], abs=0.01)
    assert measured_e[0] == pytest.approx(truth_e[0], abs=0.03)
    assert measured_e[1] == pytest.approx(truth_e[1], abs=0.03)


def test_exposure_metadata(sims, visit, camera):
    exp = sims[1].exposure
    assert exp.visit.id == visit.id and exp.visit.band == "r"
    assert exp.visit.instrument == camera.name
    assert exp.detector == camera.detector(1)
    assert exp.psf is None and exp.wcs is not None
    assert exp.wcs.sip is not None
    assert exp.image.dtype == np.float32
