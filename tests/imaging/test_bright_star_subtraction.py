"""How the extended PSF model is scaled to a star, against known fluxes: the annular flux is
noise for a faint star whose halo at the annulus is below the sky noise (the demo's dark,
over-subtracted cores); the least-squares scale is set by the core."""

from __future__ import annotations

import numpy as np
from _extended_psf_factory import annulus_mean, make_star_stamps, truth_image

from imaging.bright_star_subtraction import model_scale

SIZE, RADII, FWHM, SKY_SIGMA = 75, (12, 16), 3.0, 20.0


def test_least_squares_scale_holds_where_the_annulus_is_noise():
    truth = truth_image(SIZE, FWHM)
    ring = annulus_mean(truth, *RADII)
    model = (truth / ring).astype(np.float32)
    record = []
    stamps = make_star_stamps(
        np.random.default_rng(6), 40, size=SIZE, fwhm=FWHM, radii=RADII, neighbours=0,
        sky_level=0.0, sky_sigma=SKY_SIGMA, record=record,
    )  # fmt: skip
    # stamps whose annular flux was not positive were dropped: match the survivors by id
    by_id = {i + 1: r for i, r in enumerate(record)}
    annular, least, snr = [], [], []
    for stamp in stamps:
        expected = by_id[stamp.gaiaId]["flux"] * ring  # the star's true annulus level
        annular.append(model_scale(stamp, model, "ANNULAR_FLUX") / expected - 1)
        least.append(model_scale(stamp, model, "LEAST_SQUARES") / expected - 1)
        snr.append(expected / (SKY_SIGMA / np.sqrt(350)))
    annular, least, snr = map(np.asarray, (annular, least, snr))
    faint = snr < 3
    assert faint.sum() >= 5
    assert np.max(np.abs(annular[faint])) > 0.3  # the annulus is noise
    assert np.max(np.abs(least)) < 0.05, least  # the core sets the scale, faint or bright
    # a stamp kept unnormalized (annular flux NaN, pixels in counts) is scaled in counts
    stamp = stamps[0]
    expected = model_scale(stamp, model, "LEAST_SQUARES")
    stamp.stamp_im.image *= np.float32(stamp.annularFlux)
    stamp.annularFlux = float("nan")
    assert np.isnan(model_scale(stamp, model, "ANNULAR_FLUX"))
    assert np.isclose(model_scale(stamp, model, "LEAST_SQUARES"), expected, rtol=1e-5)
