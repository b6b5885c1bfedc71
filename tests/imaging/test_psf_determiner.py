import numpy as np
import pytest
from _synthetic import PLANES, make_image, psf_sigma_at

from imaging._convolve import shift_stack
from imaging._errors import NoPsfCandidatesError
from imaging.background import subtract_background
from imaging.detection import detect_sources
from imaging.measurement import measure_sources
from imaging.psf import GaussianPsf, Psf
from imaging.psf_determiner import (
    PixelPsf,
    PixelPsfDeterminer,
    PixelPsfDeterminerConfig,
    _normal_matrix,
    _row_medians,
    _shifted_mask,
    reserve_sources,
)
from imaging.star_selector import select_stars_object_size

SHAPE = (1024, 1024)
SIGMA0, GRADIENT = 2.0, 0.08


@pytest.fixture(scope="module")
def stars():
    s = make_image(SHAPE, n_stars=220, n_galaxies=15, sigma0=SIGMA0, gradient=GRADIENT,
                   flux_range=(3e4, 5e5), seed=61, min_sep=30)
    img = s.image.copy()
    subtract_background(img, s.mask, planes=PLANES)
    det = detect_sources(img, s.mask, s.variance, SIGMA0, planes=PLANES)
    table = measure_sources(img, s.mask, s.variance, det.footprints, GaussianPsf(SIGMA0),
                            labels=det.labels, planes=PLANES)
    sel = select_stars_object_size(table)
    return s, img, table[sel]


POSITIONS = [(100.0, 100.0), (512.0, 512.0), (900.0, 120.0), (920.0, 900.0), (130.0, 880.0)]


def test_fwhm_within_one_percent_across_the_image(stars):
    s, img, cands = stars
    res = PixelPsfDeterminer().determine(img, s.mask, s.variance, cands, planes=PLANES)
    psf = res.psf
    assert isinstance(psf, PixelPsf)
    truths = []
    for pos in POSITIONS:
        true_fwhm = 2.3548 * psf_sigma_at(pos[0], pos[1], SHAPE, SIGMA0, GRADIENT)
        truths.append(true_fwhm)
        assert psf.fwhm(pos) == pytest.approx(true_fwhm, rel=0.01), pos
        k = psf.kernel_image(pos)
        assert k.shape == (25, 25) and k.sum() == pytest.approx(1.0)
        assert np.unravel_index(np.argmax(k), k.shape) == (12, 12)
    # the spatial variation is really captured (truth spans ~±8%)
    assert max(truths) / min(truths) > 1.1
    assert psf.fwhm(POSITIONS[3]) / psf.fwhm(POSITIONS[0]) == pytest.approx(
        truths[3] / truths[0], rel=0.01)
    md = res.metadata
    assert md["numAvailStars"] == len(cands)
    assert 0.8 * len(cands) <= md["numGoodStars"] <= len(cands)
    assert md["numGoodStars"] == res.used.sum()
    assert abs(md["avgX"] - 512) < 100 and abs(md["avgY"] - 512) < 100
    assert md["spatialFitChi2"] > 0
    assert psf.average_position == (md["avgX"], md["avgY"])


def test_round_trip(stars):
    s, img, cands = stars
    psf = PixelPsfDeterminer().determine(img, s.mask, s.variance, cands, planes=PLANES).psf
    again = Psf.from_dict(psf.to_dict())
    assert isinstance(again, PixelPsf) and again == psf
    for pos in POSITIONS:
        np.testing.assert_array_equal(again.kernel_image(pos), psf.kernel_image(pos))
    shifted = psf.image(POSITIONS[1], offset=(0.3, -0.2))
    d = np.arange(25) - 12
    assert (shifted * d[None, :]).sum() == pytest.approx(0.3, abs=0.02)
    assert (shifted * d[:, None]).sum() == pytest.approx(-0.2, abs=0.02)


def test_reserved_stars_are_not_used(stars):
    s, img, cands = stars
    reserved = reserve_sources(len(cands), fraction=0.2, seed=1, exp_id=7)
    assert reserved.sum() == round(0.2 * len(cands))
    np.testing.assert_array_equal(reserved, reserve_sources(len(cands), fraction=0.2, seed=1,
                                                            exp_id=7))
    res = PixelPsfDeterminer().determine(img, s.mask, s.variance, cands, reserved=reserved,
                                         planes=PLANES)
    assert not (res.used & reserved).any()
    assert res.metadata["numReservedStars"] == reserved.sum()
    assert res.metadata["reservedChi2"] < 3.0
    assert not reserve_sources(10, fraction=0.0).any()


def test_errors_and_order_reduction(stars):
    s, img, cands = stars
    det = PixelPsfDeterminer()
    with pytest.raises(NoPsfCandidatesError, match=r"No PSF candidates supplied\."):
        det.determine(img, s.mask, s.variance, cands[:0])
    bad = cands.copy()
    bad["base_CircularApertureFlux_9_0_flag"] = True
    with pytest.raises(RuntimeError, match="No good PSF candidates to pass to PSFEx"):
        det.determine(img, s.mask, s.variance, bad)
    few = PixelPsfDeterminer(PixelPsfDeterminerConfig(kernel_size=5.0))
    res = few.determine(img, s.mask, s.variance, cands[:3], planes=PLANES)
    assert res.metadata["spatialOrder"] == 0  # fewer than 4 stars per term of order 1
    for n, order in ((15, 1), (30, 2)):  # order 1 needs 4 x 3 stars, order 2 4 x 6
        res = det.determine(img, s.mask, s.variance, cands[:n], planes=PLANES)
        assert res.metadata["spatialOrder"] == order, n
    assert 25 <= res.metadata["kernelSize"] <= 45 and res.metadata["kernelSize"] % 2 == 1
    with pytest.raises(NotImplementedError):
        PixelPsfDeterminer(PixelPsfDeterminerConfig(sampling=0.5))


def test_image_stack_matches_image(stars):
    s, img, cands = stars
    psf = PixelPsfDeterminer().determine(img, s.mask, s.variance, cands, planes=PLANES).psf
    x, y = np.array([100.0, 700.0]), np.array([300.0, 50.0])
    dx, dy = np.array([0.25, -0.4]), np.array([0.0, 0.3])
    stack = psf.image_stack(x, y, dx, dy)
    for i in range(2):
        np.testing.assert_allclose(stack[i], psf.image((x[i], y[i]), offset=(dx[i], dy[i])),
                                   atol=1e-12)


def test_quadratic_variation_is_one_radial_size_term(stars):
    """Default ``quadratic_variation="radial"``: the degree-2 terms are one coefficient.

    The isotropic stretch times x² + y²: on a square image the u² and v² coefficient
    images are equal and the uv one is zero (``"full"``: 15 free coefficients).
    """
    s, img, cands = stars
    coeffs = {}
    for mode in ("radial", "full"):
        det = PixelPsfDeterminer(PixelPsfDeterminerConfig(quadratic_variation=mode))
        res = det.determine(img, s.mask, s.variance, cands, planes=PLANES)
        assert res.metadata["spatialOrder"] == 2
        coeffs[mode] = np.array(res.psf.to_dict()["coefficients"])  # 1, u, v, u², uv, v²
    u2, uv, v2 = coeffs["radial"][3:]
    assert np.abs(u2).max() > 0 and not uv.any()
    np.testing.assert_allclose(u2, v2, rtol=0, atol=1e-15)
    full_u2, full_uv, full_v2 = coeffs["full"][3:]
    assert np.abs(full_uv).max() > 0 and np.abs(full_u2 - full_v2).max() > 0
    with pytest.raises(ValueError, match="quadratic_variation"):
        PixelPsfDeterminer(PixelPsfDeterminerConfig(quadratic_variation="round")).determine(
            img, s.mask, s.variance, cands, planes=PLANES)


def test_normal_matrix_is_the_weighted_products():
    rng = np.random.default_rng(5)
    design, weight, basis = rng.normal(size=(7, 3)), rng.random((7, 40)), rng.normal(size=(4, 40))
    gram = _normal_matrix(design, weight, basis)
    expected = np.einsum("st,su,sp,jp,kp->tjuk", design, design, weight, basis, basis)
    np.testing.assert_allclose(gram, expected.reshape(12, 12), rtol=1e-12, atol=1e-12)


def test_row_medians_are_nanmedian():
    rng = np.random.default_rng(6)
    values = np.round(rng.normal(100.0, 10.0, size=(9, 700)), 1)  # ties too
    keep = rng.random(values.shape) < np.linspace(0.0, 1.0, 9)[:, None]
    keep[1, :3] = [True, False, True]
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):  # the all-NaN row
        expected = np.nanmedian(np.where(keep, values, np.nan), axis=1)
    np.testing.assert_array_equal(_row_medians(values, keep), expected)


def test_shifted_mask_is_the_shift_of_every_stamp():
    rng = np.random.default_rng(7)
    bad = np.zeros((6, 15, 15), bool)
    bad[1, 7, 7] = bad[4, 0, 3] = bad[4, 14, 14] = True
    dx, dy = rng.uniform(-0.5, 0.5, 6), rng.uniform(-0.5, 0.5, 6)
    expected = shift_stack(bad.astype(np.float64), dx, dy)
    np.testing.assert_array_equal(_shifted_mask(bad, dx, dy), expected)
    assert not _shifted_mask(bad[:1], dx[:1], dy[:1]).any()
