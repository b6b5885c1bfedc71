"""Both normalizations of `measure_model` against truth: stamps whose stars share a known core +
halo profile, with known fluxes and (for the 2026 mode) a known sky pedestal and gradient."""

from __future__ import annotations

import numpy as np
import pytest
from _extended_psf_factory import annulus_mean, make_star_stamps, truth_image

from imaging.extended_psf_model import measure_model
from imaging.extended_psf_profile import azimuthal_profile
from imaging.stamp_amplitude_fit import AmplitudeFitConfig, fit_stamp
from imaging.stamp_stacking import FileStampSource, StackingConfig, polynomial_terms
from imaging.stamps_io import write_stamps_fits

SIZE, RADII, FWHM = 75, (12, 16), 3.0
SKY, SKY_SIGMA = 20.0, 1.0  # e-: a pedestal far above the annulus level of the faint stars


def _sources(tmp_path, name, *, sky_level):
    """Four detectors (quarter turns 0-3) x 15 stamps, with each stamp's truth."""
    rng = np.random.default_rng(21)
    sources, stamps_by_source, records = [], [], []
    for k in range(4):
        record = []
        stamps = make_star_stamps(
            rng, 15, size=SIZE, fwhm=FWHM, radii=RADII, nb90Rots=k,
            sky_level=sky_level, sky_sigma=SKY_SIGMA, record=record, first_id=100 * k,
        )  # fmt: skip
        path = tmp_path / f"{name}{k}.fits"
        write_stamps_fits(stamps, path)
        sources.append(FileStampSource(str(path)))
        stamps_by_source.append(stamps)
        records.append(record)
    return sources, stamps_by_source, records


def _truth_model():
    truth = truth_image(SIZE, FWHM)
    return truth / annulus_mean(truth, *RADII)


def _profile_errors(image):
    ratio = azimuthal_profile(image).value / azimuthal_profile(_truth_model()).value
    return (
        float(np.max(np.abs(ratio[: RADII[1] + 1] - 1))),
        float(np.max(np.abs(ratio[RADII[1] + 1 :] - 1))),
    )


def test_annulus_normalization_recovers_the_truth(tmp_path):
    # a sky-subtracted field (pedestal 0, noise only): the 2022 mode is right
    sources, stamps_by_source, records = _sources(tmp_path, "flat", sky_level=0.0)
    model, report = measure_model(sources, StackingConfig(), normalization="ANNULUS")
    inner, outer = _profile_errors(model.image.image)
    assert inner < 0.02 and outer < 0.10, (inner, outer)
    assert report.fit_start == "ANNULUS_STACK" and report.corrections is None
    assert model.n_stamps == report.n_stamps == 60
    # known amplitude: the annular flux each stamp was divided by is its flux times the ring
    # (within 4 sigma of the sky noise over the ~350 annulus pixels, 3% for the unmasked wings
    # of neighbours)
    ring = annulus_mean(truth_image(SIZE, FWHM), *RADII)
    for stamps, record in zip(stamps_by_source, records, strict=True):
        for stamp, truth in zip(stamps, record, strict=True):
            assert stamp.annularFlux == pytest.approx(
                truth["flux"] * ring, rel=0.03, abs=4 * SKY_SIGMA / np.sqrt(350)
            )


def test_psf_amplitude_recovers_known_amplitude_and_pedestal(tmp_path):
    sources, stamps_by_source, records = _sources(tmp_path, "sky", sky_level=SKY)
    # the 2022 mode divides the sky pedestal into the annular flux: far from the truth
    annulus, _ = measure_model(sources, StackingConfig(), normalization="ANNULUS")
    assert _profile_errors(annulus.image.image)[0] > 0.3
    model, report = measure_model(
        sources,
        StackingConfig(),
        normalization="PSF_AMPLITUDE",
        psf_model=_truth_model(),
        fit_iterations=3,
    )
    assert report.fit_start == "PSF_MODEL" and report.n_fitted == model.n_stamps == 60
    inner, outer = _profile_errors(model.image.image)
    assert inner < 0.02 and outer < 0.10, (inner, outer)
    ring = annulus_mean(truth_image(SIZE, FWHM), *RADII)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    terms = polynomial_terms(2, xs.ravel(), ys.ravel(), (SIZE, SIZE)).reshape(-1, SIZE, SIZE)
    for k, (stamps, fixes, record) in enumerate(
        zip(stamps_by_source, report.corrections, records, strict=True)
    ):
        for i, (stamp, truth) in enumerate(zip(stamps, record, strict=True)):
            # stamps are stored divided by their annular flux and turned k quarter turns
            flux = fixes.amplitude[i] * stamp.annularFlux / ring
            assert flux == pytest.approx(truth["flux"], rel=0.01), (k, i)
            pedestal = np.rot90(np.tensordot(fixes.background[i], terms, 1), k) * stamp.annularFlux
            error = pedestal - truth["pedestal"]
            assert np.sqrt(np.mean(error**2)) < 0.2 * SKY_SIGMA, (k, i)


def test_pedestal_needs_outer_pixels(tmp_path):
    sources, stamps_by_source, _ = _sources(tmp_path, "edge", sky_level=SKY)
    stamp = stamps_by_source[0][0]
    model = _truth_model()
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    terms = polynomial_terms(2, xs.ravel(), ys.ravel(), (SIZE, SIZE)).reshape(-1, SIZE, SIZE)
    config = AmplitudeFitConfig(pedestal_radius=RADII[1])
    assert np.isfinite(fit_stamp(stamp, model, terms, config).amplitude)
    # only the star and its annulus left: no pixel tells the pedestal from the model's wing
    far = np.hypot(xs - SIZE // 2, ys - SIZE // 2) >= RADII[1]
    stamp.stamp_im.mask.set("BAD", far)
    fit = fit_stamp(stamp, model, terms, config)
    assert np.isnan(fit.amplitude) and "outer pixels" in fit.problem
    with pytest.raises(ValueError, match="fit_iterations"):
        measure_model(sources, StackingConfig(), normalization="PSF_AMPLITUDE", fit_iterations=0)


def test_unnormalized_stamps_stay_out_of_the_annulus_stack(tmp_path):
    # ProcessBrightStarsTask keeps a star whose annular flux is not positive unnormalized
    # (annularFlux NaN, pixels in counts) unless discardNanFluxStars: the demo's faint stars
    rng = np.random.default_rng(2)
    stamps = make_star_stamps(rng, 8, size=SIZE, radii=RADII, sky_level=0.0, sky_sigma=0.3)
    raw = make_star_stamps(rng, 3, size=SIZE, radii=RADII, first_id=50)
    for stamp in raw:
        stamp.stamp_im.image *= np.float32(stamp.annularFlux)  # back to counts
        stamp.annularFlux = float("nan")
    # and a stamp with no valid pixel (all NaN and NO_DATA: a star beside a detector, as
    # stamps made before ProcessBrightStarsTask dropped them): it counts nowhere either
    empty = raw[2].stamp_im
    empty.image[:] = np.nan
    empty.mask.set("NO_DATA", np.ones(empty.image.shape, bool))
    write_stamps_fits(stamps, tmp_path / "good.fits")
    write_stamps_fits(raw, tmp_path / "raw.fits")
    good = [FileStampSource(str(tmp_path / "good.fits"))]
    both = good + [FileStampSource(str(tmp_path / "raw.fits"))]
    alone, _ = measure_model(good, StackingConfig(), normalization="ANNULUS")
    mixed, report = measure_model(both, StackingConfig(), normalization="ANNULUS")
    assert report.n_stamps == 8
    np.testing.assert_array_equal(mixed.image.image, alone.image.image)
    # the fitted normalization needs no annular flux: they count there
    _, fitted = measure_model(
        both, StackingConfig(), normalization="PSF_AMPLITUDE", fit_iterations=1,
        psf_model=_truth_model(),
    )  # fmt: skip
    assert fitted.n_fitted == 10  # the one with no pixel is not fitted
    assert sum(1 for per in fitted.fits for f in per if f.n_outer == 0) == 1
