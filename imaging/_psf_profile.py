"""An elliptical Moffat profile fitted to a PSF model's mean image, for its outer parts.

The pixel-basis PSF model (`imaging.psf_determiner`) fits its mean image pixel by pixel in
the core and with a power-law basis in the wings.  With few stars the outer pixels are fitted
from the noise of the few brightest ones; unweighted second moments weigh them by r², so the
model's size is off by about 1% over the whole detector in some draws of stars.  Far from the
centre the model instead continues the profile that the bright inner pixels define: an
elliptical Moffat ``A (1 + Q(x, y))^-β`` (β free, so power-law tails r^-2β of any index),
integrated over the pixel, and fitted by weighted least squares to the mean image outside a
small radius, where the inner pixels carry most of the weight.  A DAOPHOT-like split: an
analytic function where the data are poor, the data where they are good.

No state: one function of arrays.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_moffat"]

#: Sub-pixel samples per axis for the pixel integration (3: a β = 3.5 Moffat of FWHM 4.2 px
#: is integrated to 0.2% at 2-10 px; one sample at the centre is off by up to 1.9%).
_SUBSAMPLE = 3


def _sample_offsets() -> np.ndarray:
    return (np.arange(_SUBSAMPLE) + 0.5) / _SUBSAMPLE - 0.5


def _subsamples(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n_pixels, n_samples) sub-pixel sample coordinates of pixels centred at (x, y)."""
    off = _sample_offsets()
    shape = (x.size, off.size, off.size)
    xs = np.broadcast_to(x[:, None, None] + off[None, :, None], shape).reshape(x.size, -1)
    ys = np.broadcast_to(y[:, None, None] + off[None, None, :], shape).reshape(y.size, -1)
    return xs, ys


class _Moffat:
    """Pixel-integrated elliptical Moffat at fixed sub-pixel samples, and its Jacobian.

    ``xs``, ``ys`` are (n_pixels, n_samples) from `_subsamples`; parameters as in
    `fit_moffat`.  The samples' profile of the last evaluation is kept: MINPACK asks for
    the Jacobian at the point it has just evaluated, which then costs no second power.
    """

    def __init__(self, xs: np.ndarray, ys: np.ndarray) -> None:
        self.xs, self.ys = xs, ys
        self._last: tuple[bytes, np.ndarray, np.ndarray, np.ndarray] | None = None

    def _evaluate(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = np.asarray(params, dtype=np.float64).tobytes()
        if self._last is not None and self._last[0] == key:
            return self._last[1:]
        xs, ys = self.xs, self.ys
        ln_amp, ln_qxx, qxy, ln_qyy, ln_beta1 = params
        qxx, qyy, beta = np.exp(ln_qxx), np.exp(ln_qyy), 1.0 + np.exp(ln_beta1)
        base = np.maximum(1.0 + qxx * xs * xs + 2.0 * qxy * xs * ys + qyy * ys * ys, 1e-12)
        prof = base ** (-beta)
        value = np.exp(ln_amp) * prof.mean(axis=1)
        self._last = (key, base, prof, value)
        return base, prof, value

    def value(self, params: np.ndarray) -> np.ndarray:
        """(n_pixels,) model values: the pixel means of the samples."""
        return self._evaluate(params)[2]

    def jacobian(self, params: np.ndarray) -> np.ndarray:
        """(n_pixels, 5) derivatives of `value` by the parameters."""
        base, prof, value = self._evaluate(params)
        xs, ys = self.xs, self.ys
        ln_amp, ln_qxx, _, ln_qyy, ln_beta1 = params
        qxx, qyy, beta = np.exp(ln_qxx), np.exp(ln_qyy), 1.0 + np.exp(ln_beta1)
        amp = np.exp(ln_amp)
        dq = -beta * amp * prof / base  # d value / d Q, per sample
        return np.stack([
            value,
            (dq * qxx * xs * xs).mean(axis=1),
            (dq * 2.0 * xs * ys).mean(axis=1),
            (dq * qyy * ys * ys).mean(axis=1),
            -(beta - 1.0) * amp * (prof * np.log(base)).mean(axis=1),
        ], axis=1)


def fit_moffat(
    mean: np.ndarray,
    precision: np.ndarray,
    size: int,
    fit_radius: float,
    *,
    start: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Fit an elliptical, pixel-integrated Moffat to a centred mean PSF image.

    Parameters
    ----------
    mean : ndarray
        (K²,) mean PSF image, centred on the central pixel of the K × K stamp.
    precision : ndarray
        (K²,) inverse variance of each pixel of ``mean`` (0: not fitted).
    size : int
        K, odd.
    fit_radius : float
        Only pixels at least this far from the centre (pixels) are fitted: the very core,
        where the pixel-integrated Moffat is least like a real PSF, is left out.
    start : ndarray, optional
        Parameters to start from (a previous fit's); `None`: from the image.

    Returns
    -------
    (image, params) or None
        The (K²,) Moffat image and its parameters ``(ln A, ln Qxx, Qxy, ln Qyy, ln(β - 1))``
        (β > 1: a tail r^-2β that holds a finite flux), or
        `None` when the fit fails or gives a profile that is not positive definite.
    """
    from scipy.optimize import leastsq

    half = size // 2
    d = np.arange(-half, half + 1, dtype=np.float64)
    x, y = (a.ravel() for a in np.meshgrid(d, d))
    sel = (np.hypot(x, y) >= fit_radius) & (precision > 0)
    if sel.sum() < 10 or not np.all(np.isfinite(mean[sel])):
        return None
    sigma_w = np.sqrt(precision[sel])
    model = _Moffat(*_subsamples(x[sel], y[sel]))
    target = mean[sel]

    def residual(p: np.ndarray) -> np.ndarray:
        return (model.value(p) - target) * sigma_w

    def jacobian(p: np.ndarray) -> np.ndarray:
        return model.jacobian(p) * sigma_w[:, None]

    if start is None:
        # a β = 3 Moffat of the image's half-light scale
        peak = max(float(mean.max()), 1e-12)
        r2 = float(np.sum(np.clip(mean, 0, None) * (x * x + y * y))
                   / max(np.clip(mean, 0, None).sum(), 1e-12))
        alpha2 = max(r2 / 2.0, 0.5)  # <r²> = 2α²/(β-2) = 2α² at β = 3
        start = np.array([np.log(peak), -np.log(alpha2), 0.0, -np.log(alpha2), np.log(2.0)])
    start = np.asarray(start, dtype=np.float64)
    # MINPACK's trial steps can be wild (huge exponents, an indefinite quadratic form whose
    # power overflows where base is clipped): their residuals are inf or NaN and the step
    # is refused; nothing to warn about
    with np.errstate(over="ignore", invalid="ignore"):
        if not np.all(np.isfinite(residual(start))):
            return None
        # MINPACK's lmder as least_squares(method="lm", x_scale="jac") calls it (the same
        # tolerances, step bound and scaling), without the residuals and Jacobian that
        # wrapper evaluates before and after the fit
        try:
            p = leastsq(residual, start, Dfun=jacobian, full_output=True, ftol=1e-8,
                        xtol=1e-8, gtol=1e-8, maxfev=50, factor=100.0)[0]
        except (ValueError, np.linalg.LinAlgError):
            return None
    if not np.all(np.isfinite(p)) or p[2] ** 2 >= np.exp(p[1] + p[3]):
        return None
    return _Moffat(*_subsamples(x, y)).value(p), p
