"""The numba kernels of measurement against the numpy forms they replaced (to rounding)."""

import numpy as np
import pytest

from imaging import _measure_kernels as kernels
from imaging._convolve import cutout_indices
from imaging.measurement import _Cutouts

S = 21


def _stars(n=12, seed=0):
    """(N, S, S) noisy Gaussian stars off the centre, a dead one, and a masked corner."""
    rng = np.random.default_rng(seed)
    d = np.arange(S, dtype=np.float64) - S // 2
    x0, y0 = rng.uniform(-1.5, 1.5, n), rng.uniform(-1.5, 1.5, n)
    r2 = (d[None, None, :] - x0[:, None, None]) ** 2 + (d[None, :, None] - y0[:, None, None]) ** 2
    img = 500.0 * np.exp(-0.5 * r2 / 2.0**2) + rng.normal(0, 3.0, (n, S, S))
    var = np.full((n, S, S), 9.0) + rng.uniform(0, 1, (n, S, S))
    good = rng.random((n, S, S)) > 0.05
    good[1, :8, :8] = False
    img[2] = rng.normal(0, 3.0, (S, S)) - 50.0  # nothing there: the centroid is flagged
    inside = np.ones((n, S, S), bool)
    inside[3, :, :6] = False
    return np.where(good, img, 0.0), np.where(good, var, 0.0), good, inside


def _centroid_numpy(img, var, good, sigma, max_iter, max_shift):
    n, s, _ = img.shape
    d = np.arange(s, dtype=np.float64) - s // 2
    xc, yc = np.zeros(n), np.zeros(n)
    sig2 = sigma**2
    with np.errstate(invalid="ignore", divide="ignore"):
        for _ in range(max_iter):
            gx = np.exp(-0.5 * (d[None, :] - xc[:, None]) ** 2 / sig2)
            gy = np.exp(-0.5 * (d[None, :] - yc[:, None]) ** 2 / sig2)
            wi = img * gy[:, :, None] * gx[:, None, :]
            f = wi.sum(axis=(1, 2))
            nx = xc + 1.6 * ((wi.sum(axis=1) * d[None, :]).sum(axis=1) / f - xc)
            ny = yc + 1.6 * ((wi.sum(axis=2) * d[None, :]).sum(axis=1) / f - yc)
            nx = np.where(np.isfinite(nx), np.clip(nx, -max_shift - 1, max_shift + 1), xc)
            ny = np.where(np.isfinite(ny), np.clip(ny, -max_shift - 1, max_shift + 1), yc)
            xc, yc = nx, ny
        gx = np.exp(-0.5 * (d[None, :] - xc[:, None]) ** 2 / sig2)
        gy = np.exp(-0.5 * (d[None, :] - yc[:, None]) ** 2 / sig2)
        w = gy[:, :, None] * gx[:, None, :] * good
        ddx = d[None, None, :] - xc[:, None, None]
        ddy = d[None, :, None] - yc[:, None, None]
        dfx = (img * w * (1 - ddx**2 / sig2)).sum(axis=(1, 2))
        dfy = (img * w * (1 - ddy**2 / sig2)).sum(axis=(1, 2))
        x_err = np.sqrt((var * w * w * ddx**2).sum(axis=(1, 2))) / np.abs(dfx)
        y_err = np.sqrt((var * w * w * ddy**2).sum(axis=(1, 2))) / np.abs(dfy)
        f = (img * w).sum(axis=(1, 2))
    flag = ~(np.isfinite(xc) & np.isfinite(yc) & (f > 0) & (np.hypot(xc, yc) <= max_shift)
             & (dfx > 0) & (dfy > 0))
    return np.where(flag, 0.0, xc), np.where(flag, 0.0, yc), x_err, y_err, flag


def test_centroid_is_the_numpy_fixed_point():
    img, var, good, _ = _stars()
    got = kernels.centroid(img, var, good, 2.0, 12, 2.0)
    expected = _centroid_numpy(img, var, good, 2.0, 12, 2.0)
    np.testing.assert_array_equal(got[4], expected[4])
    assert got[4][2] and not got[4][0]
    for a, b in zip(got[:4], expected[:4], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_gaussian_psf_and_aperture_fluxes_are_the_numpy_sums():
    img, var, good, inside = _stars()
    n = img.shape[0]
    rng = np.random.default_rng(1)
    xc, yc = rng.uniform(-1.4, 1.4, n), rng.uniform(-1.4, 1.4, n)
    mxx, myy, mxy = rng.uniform(3, 5, n), rng.uniform(3, 5, n), rng.uniform(-1, 1, n)
    mxx[4] = np.nan  # failed moments: NaN flux
    d = np.arange(S, dtype=np.float64) - S // 2
    dx = d[None, None, :] - xc[:, None, None]
    dy = d[None, :, None] - yc[:, None, None]

    rho = (myy[:, None, None] * dx * dx - 2 * mxy[:, None, None] * dx * dy
           + mxx[:, None, None] * dy * dy) / (mxx * myy - mxy**2)[:, None, None]
    w = np.where(good, np.exp(-0.5 * rho), 0.0)
    flux, err = kernels.gaussian_flux(img, var, good, xc, yc, mxx, myy, mxy)
    np.testing.assert_allclose(flux, 2.0 * (w * img).sum(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(err, 2.0 * np.sqrt((w * w * var).sum(axis=(1, 2))), rtol=1e-12)
    assert np.isnan(flux[4])

    k = 5  # the PSF fills the central 11 x 11
    psf = np.zeros((n, S, S))
    psf[:, S // 2 - k:S // 2 + k + 1, S // 2 - k:S // 2 + k + 1] = np.exp(
        -0.5 * (dx**2 + dy**2) / 4.0)[:, S // 2 - k:S // 2 + k + 1, S // 2 - k:S // 2 + k + 1]
    psf /= psf.sum(axis=(1, 2), keepdims=True)
    inside_psf = inside.copy()
    inside_psf[5, :, :S // 2 - 3] = False  # off the image under the PSF
    pflux, perr, p2, area, edge = kernels.psf_flux(
        img, var, good, inside_psf,
        np.ascontiguousarray(psf[:, S // 2 - k:S // 2 + k + 1, S // 2 - k:S // 2 + k + 1]))
    pw = psf * good
    np.testing.assert_allclose(p2, (pw * psf).sum(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(pflux, (pw * img).sum(axis=(1, 2)) / p2, rtol=1e-12)
    np.testing.assert_allclose(perr, np.sqrt((pw * pw * var).sum(axis=(1, 2))) / p2, rtol=1e-12)
    np.testing.assert_allclose(area, 1.0 / (psf**2).sum(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_array_equal(edge, ((psf > 0) & ~inside_psf).any(axis=(1, 2)))
    assert edge[5] and not edge[0]

    radii = np.array([2.0, 4.5, 7.0])
    flux, err, trunc = kernels.aperture_sums(img, var, inside, xc, yc, radii, 2.0)
    r = np.hypot(dx, dy)
    for j, radius in enumerate(radii):
        wa = np.clip(radius - r + 0.5, 0.0, 1.0)
        np.testing.assert_allclose(flux[:, j], (wa * img).sum(axis=(1, 2)), rtol=1e-12)
        np.testing.assert_allclose(err[:, j], np.sqrt((wa * wa * var).sum(axis=(1, 2))),
                                   rtol=1e-12)
        np.testing.assert_array_equal(trunc[:, j], ((wa > 0) & ~inside).any(axis=(1, 2)))
    assert trunc[3, 2] and not trunc[3, 0]


@pytest.mark.parametrize("dtype", [np.float32, np.uint32, np.int32])
def test_cutouts_are_the_clipped_index_gather(dtype):
    image = np.arange(30 * 40).reshape(30, 40).astype(dtype)
    px = np.array([0, 3, 20, 39, 12, 38])
    py = np.array([0, 15, 15, 29, 27, 2])
    cut = _Cutouts(image.shape, px, py, 4)
    iy, ix, inside = cutout_indices(image.shape, px, py, 4)
    np.testing.assert_array_equal(cut(image), image[iy, ix])
    np.testing.assert_array_equal(cut.inside, inside)
    whole = _Cutouts(image.shape, px[2:3], py[2:3], 4)
    np.testing.assert_array_equal(whole(image), image[iy[2:3], ix[2:3]])


def test_footprint_bits_are_the_or_over_the_labelled_pixels():
    rng = np.random.default_rng(2)
    mask = (1 << rng.integers(0, 12, (30, 40))).astype(np.uint32) * (rng.random((30, 40)) < 0.2)
    labels = rng.integers(0, 4, (30, 40)).astype(np.int32)
    boxes = np.array([[0, 10, 0, 12], [5, 30, 20, 40], [3, 3, 4, 9], [12, 20, 7, 8]])
    ids = np.array([1, 2, 3, 1])
    got = kernels.footprint_bits(mask, labels, boxes, ids, True)
    every = kernels.footprint_bits(mask, labels, boxes, ids, False)
    for i, (y0, y1, x0, x1) in enumerate(boxes):
        sub = mask[y0:y1, x0:x1]
        assert got[i] == np.bitwise_or.reduce(sub[labels[y0:y1, x0:x1] == ids[i]].ravel())
        assert every[i] == np.bitwise_or.reduce(sub.ravel())
    assert got[2] == 0 and got.dtype == np.uint32


def _moments_numpy(stack, good, xc, yc, init_sigma, max_iter, tol):
    n, s, _ = stack.shape
    d = np.arange(s, dtype=np.float64) - s // 2
    mxx = np.full(n, float(init_sigma) ** 2)
    myy, mxy = mxx.copy(), np.zeros(n)
    img = np.where(good, stack, 0.0)
    dx = d[None, None, :] - xc[:, None, None]
    dy = d[None, :, None] - yc[:, None, None]
    dx2, dy2, dxy = dx * dx, dy * dy, dx * dy
    active, failed, wsum = np.ones(n, bool), np.zeros(n, bool), np.zeros(n)
    for _ in range(max_iter):
        idx = np.nonzero(active)[0]
        if idx.size == 0:
            break
        det = mxx[idx] * myy[idx] - mxy[idx] ** 2
        a, b, c = myy[idx] / det, -mxy[idx] / det, mxx[idx] / det
        q = np.exp(dxy[idx] * (-b)[:, None, None] + dx2[idx] * (-0.5 * a)[:, None, None]
                   + dy2[idx] * (-0.5 * c)[:, None, None]) * img[idx]
        f = q.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            qxx, qyy = (q * dx2[idx]).sum(axis=(1, 2)) / f, (q * dy2[idx]).sum(axis=(1, 2)) / f
            qxy = (q * dxy[idx]).sum(axis=(1, 2)) / f
            qdet = qxx * qyy - qxy**2
            pxx, pyy, pxy = qyy / qdet - a, qxx / qdet - c, -qxy / qdet - b
            pdet = pxx * pyy - pxy**2
            nxx, nyy, nxy = pyy / pdet, pxx / pdet, -pxy / pdet
        bad = ~((f > 0) & (qdet > 0) & (pdet > 0) & (nxx > 0.05) & (nyy > 0.05)
                & np.isfinite(nxx) & (nxx < s * s) & (nyy < s * s))
        failed[idx[bad]] = True
        active[idx[bad]] = False
        conv = ~bad & (np.abs(nxx - mxx[idx]) + np.abs(nyy - myy[idx]) + np.abs(nxy - mxy[idx])
                       < tol * (mxx[idx] + myy[idx]))
        upd = idx[~bad]
        mxx[upd], myy[upd], mxy[upd] = nxx[~bad], nyy[~bad], nxy[~bad]
        wsum[idx] = f
        active[idx[conv]] = False
    failed |= active
    mxx[failed] = myy[failed] = mxy[failed] = np.nan
    return mxx, myy, mxy, wsum, failed


@pytest.mark.parametrize("max_iter", [100, 3])
def test_adaptive_moments_are_the_numpy_iteration(max_iter):
    img, _, good, _ = _stars(n=16, seed=4)
    img[5] = 0.0
    img[5, S // 2, S // 2] = 1e4  # a cosmic ray: too small, fails
    d = np.arange(S, dtype=np.float64) - S // 2
    img[6] = 300.0 * np.exp(-0.5 * (d[None, :] ** 2 / 9.0 + d[:, None] ** 2 / 2.0))  # elongated
    rng = np.random.default_rng(3)
    xc, yc = rng.uniform(-1.0, 1.0, 16), rng.uniform(-1.0, 1.0, 16)
    got = kernels.adaptive_moments(img, good, xc, yc, np.full(16, 4.0), max_iter, 1e-4)
    expected = _moments_numpy(img, good, xc, yc, 2.0, max_iter, 1e-4)
    np.testing.assert_array_equal(got[4], expected[4])
    assert got[4][5] and got[4].sum() < 16 and (max_iter < 10) == got[4][6]  # 3: too few
    for a, b in zip(got[:3], expected[:3], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11)
    ok = ~got[4]
    np.testing.assert_allclose(got[3][ok], expected[3][ok], rtol=1e-11)
