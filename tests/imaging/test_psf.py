import math

import numpy as np
import pytest

from imaging._errors import PsfError
from imaging.psf import FWHM_PER_SIGMA, GaussianPsf, Psf, adaptive_moments


def _unweighted_moments(img):
    y, x = np.mgrid[0 : img.shape[0], 0 : img.shape[1]].astype(float)
    f = img.sum()
    cx, cy = (img * x).sum() / f, (img * y).sum() / f
    return (
        (img * (x - cx) ** 2).sum() / f,
        (img * (y - cy) ** 2).sum() / f,
        (img * (x - cx) * (y - cy)).sum() / f,
        cx,
        cy,
    )


def test_round_gaussian_moments_and_kernel():
    psf = GaussianPsf(2.0)
    k = psf.kernel_image((10.0, 20.0))
    assert k.shape[0] % 2 == 1 and k.shape[0] == k.shape[1]
    assert k.sum() == pytest.approx(1.0)
    ixx, iyy, ixy, cx, cy = _unweighted_moments(k)
    half = k.shape[0] // 2
    assert (cx, cy) == (pytest.approx(half), pytest.approx(half))
    assert ixx == pytest.approx(4.0, rel=0.01) and iyy == pytest.approx(4.0, rel=0.01)
    assert psf.moments((0, 0)) == (pytest.approx(4.0), pytest.approx(4.0), 0.0)
    assert psf.sigma((0, 0)) == pytest.approx(2.0)
    assert psf.fwhm((0, 0)) == pytest.approx(2.0 * FWHM_PER_SIGMA)
    assert psf.computeShape((1, 1)) == psf.moments((1, 1))
    assert np.array_equal(psf.computeKernelImage((1, 1)), k)


def test_elliptical_gaussian_keeps_determinant_radius():
    psf = GaussianPsf(1.8, ellipticity=(0.2, -0.1))
    ixx, iyy, ixy = psf.moments((0, 0))
    assert (ixx * iyy - ixy**2) ** 0.25 == pytest.approx(1.8)
    assert (ixx - iyy) / (ixx + iyy) == pytest.approx(0.2)
    assert 2 * ixy / (ixx + iyy) == pytest.approx(-0.1)
    mxx, myy, mxy = adaptive_moments(psf.kernel_image((0, 0)))
    assert (mxx, myy, mxy) == (
        pytest.approx(ixx, rel=0.02),
        pytest.approx(iyy, rel=0.02),
        pytest.approx(ixy, abs=0.02),
    )


def test_offset_image_moves_centroid():
    psf = GaussianPsf(1.5, size=21)
    img = psf.image((0, 0), offset=(0.3, -0.25))
    *_, cx, cy = _unweighted_moments(img)
    assert cx == pytest.approx(10.3, abs=1e-3) and cy == pytest.approx(9.75, abs=1e-3)
    # The generic base-class path (Fourier shift) agrees with the analytic one.
    generic = Psf.image(psf, (0, 0), offset=(0.3, -0.25))
    assert np.allclose(generic, img, atol=2e-4)


def test_dict_round_trip_and_registry():
    psf = GaussianPsf(2.5, size=31, ellipticity=(0.1, 0.05))
    back = Psf.from_dict(psf.to_dict())
    assert isinstance(back, GaussianPsf) and back == psf
    assert back.to_dict()["kind"] == "gaussian"
    with pytest.raises(PsfError, match="nope"):
        Psf.from_dict({"kind": "nope"})
    with pytest.raises(PsfError):
        Psf.from_dict({"sigma": 1.0})


def test_registering_taken_kind_is_refused():
    with pytest.raises(PsfError, match="gaussian"):

        class Other(Psf, kind="gaussian"):
            def kernel_image(self, position):
                return np.ones((1, 1))

            def to_dict(self):
                return {"kind": "gaussian"}


@pytest.mark.parametrize(
    "bad", [dict(sigma=0.0), dict(sigma=1.0, size=10), dict(sigma=1.0, ellipticity=(1.0, 0.0))]
)
def test_bad_parameters(bad):
    sigma = bad.pop("sigma")
    with pytest.raises(PsfError):
        GaussianPsf(sigma, **bad)


def test_fwhm_constant():
    assert FWHM_PER_SIGMA == pytest.approx(2 * math.sqrt(2 * math.log(2)))


def test_unweighted_fwhm_of_a_gaussian_and_of_negative_wings():
    from imaging.psf import unweighted_fwhm

    kernel = GaussianPsf(2.0, size=41).kernel_image((0.0, 0.0))
    assert unweighted_fwhm(kernel) == pytest.approx(2.3548 * 2.0, rel=1e-3)
    # negative pixels are clipped, so a ring of negative noise cannot shrink the FWHM
    ring = kernel.copy()
    ring[0, :] -= 1e-3
    assert unweighted_fwhm(ring) == pytest.approx(unweighted_fwhm(kernel), rel=1e-9)
    ring[0, :] += 2e-3  # positive wings widen it
    assert unweighted_fwhm(ring) > 1.05 * unweighted_fwhm(kernel)


def test_gaussian_image_stack_is_image_at_each_offset():
    psf = GaussianPsf(1.7, ellipticity=(0.1, -0.05))
    dx, dy = np.array([0.0, 0.3, -1.2, 2.5]), np.array([0.0, -0.7, 0.4, 1.1])
    stack = psf.image_stack(np.zeros(4), np.zeros(4), dx, dy)
    for i in range(4):
        np.testing.assert_array_equal(stack[i], psf.image((5.0, 9.0), offset=(dx[i], dy[i])))
    np.testing.assert_array_equal(stack[0], psf.kernel_image((0.0, 0.0)))
