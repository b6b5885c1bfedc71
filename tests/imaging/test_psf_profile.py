import warnings

import numpy as np
from scipy.optimize import least_squares

from imaging._psf_profile import _Moffat, _subsamples, fit_moffat

SIZE, SIGMA = 25, 1.7


def _noisy_gaussian(noise=1e-5, seed=0):
    half = SIZE // 2
    d = np.arange(-half, half + 1, dtype=np.float64)
    x, y = (a.ravel() for a in np.meshgrid(d, d))
    image = np.exp(-0.5 * (x * x + y * y) / SIGMA**2)
    image = image / image.sum() + np.random.default_rng(seed).normal(size=image.size) * noise
    return x, y, image, np.full(image.size, noise**-2)


def test_indefinite_trial_steps_do_not_warn():
    # a near-Gaussian stamp drives beta up; some of MINPACK's trial steps make the quadratic
    # form indefinite and the power overflows (the step is refused): no RuntimeWarning
    _, _, image, precision = _noisy_gaussian()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = fit_moffat(image, precision, SIZE, 1.4 * SIGMA)
    assert fitted is not None
    assert np.exp(fitted[1][4]) > 100  # beta - 1: the Gaussian limit
    with warnings.catch_warnings():  # a far start: trial steps overflow the exponentials
        warnings.simplefilter("error")
        fitted = fit_moffat(image, precision, SIZE, 1.0, start=np.array([0.0, 2.0, 0.0, 2.0, 3.0]))
    assert fitted is None or np.all(np.isfinite(fitted[1]))


def test_fit_is_least_squares_lm():
    # fit_moffat calls MINPACK's lmder directly: the same solution, bit for bit, as
    # scipy's least_squares(method="lm", x_scale="jac"), which evaluates more
    x, y, image, precision = _noisy_gaussian(noise=1e-4, seed=3)
    sel = np.hypot(x, y) >= 1.4 * SIGMA
    model = _Moffat(*_subsamples(x[sel], y[sel]))
    weight = np.sqrt(precision[sel])
    for start in ([-3.2, -1.4, 0.0, -1.4, 0.7], [-2.9, -2.0, 0.1, -1.8, 2.0]):
        start = np.array(start)
        fitted = fit_moffat(image, precision, SIZE, 1.4 * SIGMA, start=start)
        with np.errstate(over="ignore"):
            reference = least_squares(
                lambda p: (model.value(p) - image[sel]) * weight, start,
                jac=lambda p: model.jacobian(p) * weight[:, None], method="lm",
                x_scale="jac", max_nfev=50).x
        np.testing.assert_array_equal(fitted[1], reference)
