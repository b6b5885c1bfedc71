import numpy as np
import pytest
from _synthetic import PLANES, make_image

from imaging._errors import ApertureCorrectionError
from imaging.aperture_correction import ApCorrMap, apply_ap_corr, measure_ap_corr
from imaging.background import subtract_background
from imaging.detection import detect_sources
from imaging.measurement import (
    MeasurementConfig,
    adaptive_moments_stack,
    aperture_column,
    measure_sources,
)
from imaging.psf import GaussianPsf


def _match(table, s):
    d = np.hypot(
        np.asarray(table["base_SdssCentroid_x"])[:, None] - s.x[None],
        np.asarray(table["base_SdssCentroid_y"])[:, None] - s.y[None],
    )
    return d.argmin(axis=1), d.min(axis=1)


@pytest.fixture(scope="module")
def measured():
    s = make_image(
        (768, 768),
        n_stars=120,
        sigma0=2.0,
        flux_range=(2e4, 2e6),
        read_noise=3,
        sky_level=200.0,
        seed=41,
        saturate=True,
    )
    img = s.image.copy()
    subtract_background(img, s.mask, planes=PLANES)
    det = detect_sources(img, s.mask, s.variance, 2.0, planes=PLANES)
    table = measure_sources(
        img, s.mask, s.variance, det.footprints, GaussianPsf(2.0), labels=det.labels, planes=PLANES
    )
    return s, img, det, table


def test_columns(measured):
    _, _, det, table = measured
    assert len(table) == len(det.footprints)
    for col in [
        "id",
        "parent",
        "base_SdssCentroid_x",
        "base_SdssCentroid_yErr",
        "base_SdssCentroid_flag",
        "base_SdssShape_xx",
        "base_SdssShape_psf_xy",
        "base_SdssShape_flag",
        "base_GaussianFlux_instFlux",
        "base_PsfFlux_instFluxErr",
        "base_PsfFlux_flag",
        "base_PixelFlags_flag_saturatedCenter",
        "base_PixelFlags_flag_crCenter",
        "base_PixelFlags_flag_edge",
        "calib_psf_candidate",
        "calib_psf_used",
        "calib_psf_reserved",
    ]:
        assert col in table.colnames, col
    for r in (3.0, 4.5, 6.0, 9.0, 12.0, 17.0):
        assert f"{aperture_column(r)}_instFlux" in table.colnames
    assert aperture_column(4.5) == "base_CircularApertureFlux_4_5"
    assert not table["calib_psf_used"].any()


def test_centroids_shapes_and_fluxes(measured):
    s, _, _, table = measured
    j, dist = _match(table, s)
    ok = ~np.asarray(table["base_PixelFlags_flag_saturated"]) & (s.flux[j] > 2e5)
    ok &= ~np.asarray(table["base_PixelFlags_flag_edge"])
    assert ok.sum() > 30
    assert dist[ok].max() < 0.05
    sig = (np.asarray(table["base_SdssShape_xx"]) * np.asarray(table["base_SdssShape_yy"])) ** 0.25
    assert np.abs(sig[ok] / s.sigma[j][ok] - 1).max() < 0.01
    assert np.abs(np.asarray(table["base_SdssShape_xy"])[ok]).max() < 0.01 * 2 * 4.0
    np.testing.assert_allclose(table["base_SdssShape_psf_xx"][ok], 4.0, rtol=1e-6)
    for col, tol in [
        ("base_GaussianFlux_instFlux", 0.01),
        ("base_PsfFlux_instFlux", 0.01),
        ("base_CircularApertureFlux_17_0_instFlux", 0.02),
    ]:
        ratio = np.asarray(table[col])[ok] / s.flux[j][ok]
        assert np.abs(np.median(ratio) - 1) < tol / 2, col
        assert np.abs(ratio - 1).max() < tol * 3, col
    # a 3-px aperture on a sigma=2 Gaussian holds 1 - exp(-9/8) of the flux
    ratio3 = np.median(
        np.asarray(table["base_CircularApertureFlux_3_0_instFlux"])[ok] / s.flux[j][ok]
    )
    assert ratio3 == pytest.approx(1 - np.exp(-9 / 8), abs=0.02)
    # errors: the centroid error is a few milli-pixels for these bright stars
    assert np.all(np.asarray(table["base_SdssCentroid_xErr"])[ok] < 0.02)
    assert np.all(np.asarray(table["base_PsfFlux_instFluxErr"])[ok] > 0)


def test_pixel_flags(measured):
    s, _, _, table = measured
    j, dist = _match(table, s)
    sat = np.asarray(table["base_PixelFlags_flag_saturatedCenter"])
    assert sat.sum() == 1
    assert j[sat][0] == np.argmax(s.flux)
    assert np.asarray(table["base_PixelFlags_flag_saturated"])[sat].all()
    assert not np.asarray(table["base_PixelFlags_flag_cr"]).any()


def test_other_sources_are_masked():
    from _synthetic import add_gaussian

    img = np.random.default_rng(0).normal(0, 5, (256, 256)).astype(np.float32)
    truth = np.zeros(img.shape)
    add_gaussian(truth, 120.0, 128.0, 1e5, 2.0)
    add_gaussian(truth, 160.0, 128.0, 1e6, 2.0)
    img += truth.astype(np.float32)
    mask = np.zeros(img.shape, np.uint32)
    var = np.full(img.shape, 25.0, np.float32)
    det = detect_sources(img, mask, var, 2.0, planes=PLANES)
    assert len(det.footprints) == 2
    cfg = MeasurementConfig(aperture_radii=(40.0,))
    tab = measure_sources(
        img, mask, var, det.footprints, GaussianPsf(2.0), labels=det.labels, config=cfg
    )
    faint = int(np.argmin(tab["base_PsfFlux_instFlux"]))
    assert tab["base_PsfFlux_instFlux"][faint] == pytest.approx(1e5, rel=0.02)
    assert tab["base_CircularApertureFlux_40_0_instFlux"][faint] < 1.1e5
    cfg.mask_other_sources = False
    nomask = measure_sources(
        img, mask, var, det.footprints, GaussianPsf(2.0), labels=det.labels, config=cfg
    )
    assert nomask["base_CircularApertureFlux_40_0_instFlux"][faint] > 3e5


def test_adaptive_moments_of_elliptical_gaussian():
    d = np.arange(31) - 15.0
    yy, xx = np.meshgrid(d, d, indexing="ij")
    cov = np.array([[5.0, 1.2], [1.2, 3.0]])
    inv = np.linalg.inv(cov)
    dx, dy = xx - 0.3, yy + 0.2
    img = np.exp(-0.5 * (inv[0, 0] * dx**2 + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy**2))
    ixx, iyy, ixy, wsum, flag = adaptive_moments_stack(
        img[None], np.ones((1, 31, 31), bool), np.array([0.3]), np.array([-0.2]), 2.0
    )
    assert not flag[0]
    np.testing.assert_allclose([ixx[0], iyy[0], ixy[0]], [5.0, 3.0, 1.2], rtol=1e-4)
    assert 2 * wsum[0] == pytest.approx(img.sum(), rel=1e-4)
    _, _, _, _, flag = adaptive_moments_stack(
        np.zeros((1, 31, 31)), np.ones((1, 31, 31), bool), np.zeros(1), np.zeros(1), 2.0
    )
    assert flag[0]


def test_empty_footprint_list():
    img = np.zeros((64, 64), np.float32)
    tab = measure_sources(img, np.zeros((64, 64), np.uint32), img + 1, [], GaussianPsf(1.5))
    assert len(tab) == 0 and "base_PsfFlux_instFlux" in tab.colnames


def test_aperture_correction(measured):
    s, _, _, table = measured
    table = table.copy()
    j, _ = _match(table, s)
    good = (
        ~np.asarray(table["base_PixelFlags_flag_saturated"])
        & ~np.asarray(table["base_PixelFlags_flag_edge"])
        & (s.flux[j] > 1e5)
    )
    table["calib_psf_used"] = good
    ap_map = measure_ap_corr(table, (0, 0, 767, 767))
    assert set(ap_map) == {
        "base_PsfFlux_instFlux",
        "base_PsfFlux_instFluxErr",
        "base_GaussianFlux_instFlux",
        "base_GaussianFlux_instFluxErr",
    }
    # 12-px aperture holds ~all the flux of a sigma=2 Gaussian: correction ~1
    corr = ap_map.evaluate("base_PsfFlux_instFlux", 384.0, 384.0)
    assert corr == pytest.approx(1.0, abs=0.01)
    assert table["apcorr_base_PsfFlux_used"].sum() >= 0.8 * good.sum()
    again = ApCorrMap.from_dict(ap_map.to_dict())
    assert again.to_dict() == ap_map.to_dict()
    before = np.asarray(table["base_PsfFlux_instFlux"]).copy()
    apply_ap_corr(table, ap_map)
    np.testing.assert_allclose(
        table["base_PsfFlux_instFlux"], before * table["base_PsfFlux_apCorr"]
    )
    assert "base_GaussianFlux_apCorrErr" in table.colnames
    assert not table["base_PsfFlux_flag_apCorr"].any()
    table["calib_psf_used"] = False
    with pytest.raises(ApertureCorrectionError, match="only 0 sources, but require at least 2"):
        measure_ap_corr(table, (0, 0, 767, 767))


def test_chunked_measurement_matches(measured):
    s, img, det, table = measured
    cfg = MeasurementConfig(chunk_size=17)
    chunked = measure_sources(img, s.mask, s.variance, det.footprints, GaussianPsf(2.0),
                              labels=det.labels, planes=PLANES, config=cfg)
    assert chunked.colnames == table.colnames
    for col in ("id", "base_SdssCentroid_x", "base_PsfFlux_instFlux", "base_SdssShape_xx"):
        np.testing.assert_array_equal(chunked[col], table[col])


def test_big_endian_planes(measured):
    # FITS gives big-endian arrays, which numba refuses: the same table as native ones
    s, img, det, table = measured
    other = measure_sources(
        img.astype(">f4"), s.mask.astype(">u4"), s.variance.astype(">f4"), det.footprints,
        GaussianPsf(2.0), labels=det.labels.astype(">i4"), planes=PLANES,
    )
    for name in table.colnames:
        np.testing.assert_array_equal(other[name], table[name], err_msg=name)
