"""Numba kernels of `imaging.measurement`: per-source sums over ``(N, S, S)`` cutout stacks.

Each kernel is one loop over the sources and the pixels of their cutouts, with no
temporaries: the numpy forms made five to ten ``(N, S, S)`` float64 arrays per plugin and
spent their time writing and reading them back.  The arithmetic is the numpy forms', term
by term; only the order of the sums differs (sequential here, pairwise in numpy), so the
results agree to rounding (~1e-15 relative).

- `adaptive_moments`: ``base_SdssShape``'s iteration, source by source (its convergence
  test sees the rounding: a source could stop one iteration apart, its moments then
  differing by about ``tol``; none did on the bench detector's 761 sources);
- `centroid`: the over-relaxed fixed point of the Gaussian-weighted first moment
  (``base_SdssCentroid``), the weight separable in x and y;
- `gaussian_flux`: ``2 Σ W I`` and ``2 √(Σ W² V)`` with the elliptical Gaussian weight;
- `psf_flux`: the least-squares PSF amplitude and its error, the PSF's effective area and
  whether the PSF reaches off the image;
- `aperture_sums`: circular apertures with a 1-pixel linear edge taper, each summed over
  the box its weight can reach (the centroid is within ``max_shift`` of the centre);
- `footprint_bits`: the OR of the mask bits of each footprint's pixels (``base_PixelFlags``).

State: none; numba caches the compiled code next to this file (``cache=True``).
Division by zero gives inf or NaN, as in numpy (``error_model="numpy"``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "adaptive_moments",
    "aperture_sums",
    "centroid",
    "footprint_bits",
    "gaussian_flux",
    "psf_flux",
]

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_jit
def _gaussian_weights(gx, gy, half, x, y, sig2):
    """Fill the separable weights exp(-(k - half - x)² / 2σ²) along x and y."""
    for k in range(gx.size):
        gx[k] = math.exp(-0.5 * (k - half - x) ** 2 / sig2)
        gy[k] = math.exp(-0.5 * (k - half - y) ** 2 / sig2)


@_jit
def centroid(img, var, good, sigma, max_iter, max_shift):
    """Gaussian(σ)-weighted centroids of an (N, S, S) stack, relative to its centre.

    ``img`` is zero where not ``good``.  Returns ``xc, yc, x_err, y_err, flag``; flagged
    centroids are reset to 0 (the peak).
    """
    n, s, _ = img.shape
    half = s // 2
    sig2 = sigma * sigma
    bound = max_shift + 1.0
    xc = np.zeros(n)
    yc = np.zeros(n)
    x_err = np.empty(n)
    y_err = np.empty(n)
    flag = np.zeros(n, np.bool_)
    gx = np.empty(s)
    gy = np.empty(s)
    for i in range(n):
        x = 0.0
        y = 0.0
        for _ in range(max_iter):
            _gaussian_weights(gx, gy, half, x, y, sig2)
            f = 0.0
            sx = 0.0
            sy = 0.0
            for r in range(s):
                row = 0.0
                row_x = 0.0
                for c in range(s):
                    v = img[i, r, c] * gx[c]
                    row += v
                    row_x += v * (c - half)
                f += gy[r] * row
                sx += gy[r] * row_x
                sy += gy[r] * row * (r - half)
            # over-relaxed fixed point: for a Gaussian of the weight's width the plain
            # update halves the error, a step of 1.6x shrinks it five-fold
            nx = x + 1.6 * (sx / f - x)
            ny = y + 1.6 * (sy / f - y)
            if math.isfinite(nx):
                x = min(max(nx, -bound), bound)
            if math.isfinite(ny):
                y = min(max(ny, -bound), bound)
        # errors from the fixed-point equation F(xc) = Σ I W (x - xc) = 0
        _gaussian_weights(gx, gy, half, x, y, sig2)
        f = 0.0
        dfx = 0.0
        dfy = 0.0
        vx = 0.0
        vy = 0.0
        for r in range(s):
            ddy = r - half - y
            for c in range(s):
                if not good[i, r, c]:
                    continue
                ddx = c - half - x
                w = gy[r] * gx[c]
                iw = img[i, r, c] * w
                vw = var[i, r, c] * w * w
                f += iw
                dfx += iw * (1.0 - ddx * ddx / sig2)
                dfy += iw * (1.0 - ddy * ddy / sig2)
                vx += vw * ddx * ddx
                vy += vw * ddy * ddy
        x_err[i] = math.sqrt(vx) / abs(dfx)
        y_err[i] = math.sqrt(vy) / abs(dfy)
        ok = (math.isfinite(x) and math.isfinite(y) and f > 0 and math.hypot(x, y) <= max_shift
              and dfx > 0 and dfy > 0)
        flag[i] = not ok
        xc[i] = x if ok else 0.0
        yc[i] = y if ok else 0.0
    return xc, yc, x_err, y_err, flag


@_jit
def gaussian_flux(img, var, good, xc, yc, mxx, myy, mxy):
    """``2 Σ W I`` and ``2 √(Σ W² V)`` over the ``good`` pixels; W of covariance M at (xc, yc)."""
    n, s, _ = img.shape
    half = s // 2
    flux = np.empty(n)
    err = np.empty(n)
    for i in range(n):
        det = mxx[i] * myy[i] - mxy[i] ** 2
        total = 0.0
        total_var = 0.0
        for r in range(s):
            dy = r - half - yc[i]
            for c in range(s):
                if not good[i, r, c]:
                    continue
                dx = c - half - xc[i]
                rho = (myy[i] * dx * dx - 2 * mxy[i] * dx * dy + mxx[i] * dy * dy) / det
                w = math.exp(-0.5 * rho)
                total += w * img[i, r, c]
                total_var += w * w * var[i, r, c]
        flux[i] = 2.0 * total
        err[i] = 2.0 * math.sqrt(total_var)
    return flux, err


@_jit
def psf_flux(img, var, good, inside, psf):
    """PSF-fit amplitude and error over the ``good`` pixels, ``1 / Σ P²``, P reaches off image.

    ``psf`` is ``(N, K, K)``, centred on the ``(N, S, S)`` cutouts (``K ≤ S``, both odd).
    Returns ``flux, err, sum_p2`` (Σ P² over good pixels), ``area`` and ``edge``.
    """
    n, s, _ = img.shape
    k = psf.shape[1]
    o = (s - k) // 2
    flux = np.empty(n)
    err = np.empty(n)
    p2 = np.empty(n)
    area = np.empty(n)
    edge = np.zeros(n, np.bool_)
    for i in range(n):
        num = 0.0
        den = 0.0
        vsum = 0.0
        all_p2 = 0.0
        for r in range(k):
            for c in range(k):
                p = psf[i, r, c]
                all_p2 += p * p
                if p > 0 and not inside[i, r + o, c + o]:
                    edge[i] = True
                if good[i, r + o, c + o]:
                    num += p * img[i, r + o, c + o]
                    den += p * p
                    vsum += p * p * var[i, r + o, c + o]
        flux[i] = num / den
        err[i] = math.sqrt(vsum) / den
        p2[i] = den
        area[i] = 1.0 / all_p2
    return flux, err, p2, area, edge


@_jit
def aperture_sums(img, var, inside, xc, yc, radii, max_shift):
    """Tapered circular-aperture sums: ``flux, err, truncated``, each ``(N, len(radii))``.

    Weight ``clip(radius - r + 0.5, 0, 1)``, summed in rows over the pixels of the box of
    half width ``ceil(radius + 0.5 + max_shift)`` where it is positive (``|(xc, yc)| ≤
    max_shift``: it is 0 beyond); the distances are computed once per source.
    """
    n, s, _ = img.shape
    half = s // 2
    nr = radii.size
    flux = np.zeros((n, nr))
    err = np.zeros((n, nr))
    trunc = np.zeros((n, nr), np.bool_)
    dist = np.empty((s, s))
    for i in range(n):
        for r in range(s):
            dy = r - half - yc[i]
            for c in range(s):
                dx = c - half - xc[i]
                dist[r, c] = math.sqrt(dx * dx + dy * dy)  # hypot to 1 ulp, 10x faster
        for j in range(nr):
            radius = radii[j]
            b = min(half, int(math.ceil(radius + 0.5 + max_shift)))
            total = 0.0
            total_var = 0.0
            cut = False
            for r in range(half - b, half + b + 1):
                for c in range(half - b, half + b + 1):
                    # branch-free: a zero weight adds exactly 0 (the cutouts are finite)
                    wa = min(max(radius - dist[r, c] + 0.5, 0.0), 1.0)
                    total += wa * img[i, r, c]
                    total_var += wa * wa * var[i, r, c]
                    cut |= wa > 0 and not inside[i, r, c]
            flux[i, j] = total
            err[i, j] = math.sqrt(total_var)
            trunc[i, j] = cut
    return flux, err, trunc


@_jit
def footprint_bits(mask, labels, boxes, ids, use_labels):
    """OR of ``mask`` over each box ``(y0, y1, x0, x1)``, where ``labels`` is the box's id.

    Without ``use_labels`` every pixel of the box counts.  Returns uint32 per box.
    """
    n = boxes.shape[0]
    out = np.zeros(n, np.uint32)
    for i in range(n):
        acc = np.uint32(0)
        for y in range(boxes[i, 0], boxes[i, 1]):
            for x in range(boxes[i, 2], boxes[i, 3]):
                if not use_labels or labels[y, x] == ids[i]:
                    acc |= np.uint32(mask[y, x])
        out[i] = acc
    return out


@_jit
def adaptive_moments(img, good, xc, yc, init, max_iter, tol):
    """Adaptive second moments of each image of an (N, S, S) stack about fixed centres.

    The iteration of `imaging.measurement.adaptive_moments_stack` per source: weight W
    = Gaussian of covariance M at (xc, yc); weighted moments Q of the ``good`` pixels;
    M ← (Q⁻¹ − M⁻¹)⁻¹ until the change is below ``tol × (Mxx + Myy)``.  Fails on
    non-positive matrices, sizes below 0.05 px² or beyond the stamp.  Returns ``mxx, myy,
    mxy`` (NaN where failed), ``wsum`` (Σ I W of the last iteration) and ``failed``.
    """
    n, s, _ = img.shape
    half = s // 2
    mxx = np.empty(n)
    myy = np.empty(n)
    mxy = np.empty(n)
    wsum = np.zeros(n)
    failed = np.zeros(n, np.bool_)
    for i in range(n):
        m_xx = init[i]
        m_yy = init[i]
        m_xy = 0.0
        done = False
        for _ in range(max_iter):
            det = m_xx * m_yy - m_xy ** 2
            a = m_yy / det
            b = -m_xy / det
            c = m_xx / det
            f = 0.0
            s_xx = 0.0
            s_yy = 0.0
            s_xy = 0.0
            for r in range(s):
                dy = r - half - yc[i]
                dy2 = dy * dy
                for col in range(s):
                    if not good[i, r, col]:
                        continue
                    dx = col - half - xc[i]
                    dx2 = dx * dx
                    dxy = dx * dy
                    q = math.exp(dxy * (-b) + dx2 * (-0.5 * a) + dy2 * (-0.5 * c)) * img[i, r, col]
                    f += q
                    s_xx += q * dx2
                    s_yy += q * dy2
                    s_xy += q * dxy
            qxx = s_xx / f
            qyy = s_yy / f
            qxy = s_xy / f
            qdet = qxx * qyy - qxy ** 2
            # (Q^-1 - M^-1)^-1
            pxx = qyy / qdet - a
            pyy = qxx / qdet - c
            pxy = -qxy / qdet - b
            pdet = pxx * pyy - pxy ** 2
            nxx = pyy / pdet
            nyy = pxx / pdet
            nxy = -pxy / pdet
            wsum[i] = f
            # fail on non-positive matrices and on sizes far below a pixel (CRs, noise spikes)
            if not (f > 0 and qdet > 0 and pdet > 0 and nxx > 0.05 and nyy > 0.05
                    and math.isfinite(nxx) and nxx < s * s and nyy < s * s):
                failed[i] = True
                done = True
                break
            conv = (abs(nxx - m_xx) + abs(nyy - m_yy) + abs(nxy - m_xy)
                    < tol * (m_xx + m_yy))
            m_xx = nxx
            m_yy = nyy
            m_xy = nxy
            if conv:
                done = True
                break
        if not done:
            failed[i] = True  # not converged
        if failed[i]:
            m_xx = m_yy = m_xy = np.nan
        mxx[i] = m_xx
        myy[i] = m_yy
        mxy[i] = m_xy
    return mxx, myy, mxy, wsum, failed
