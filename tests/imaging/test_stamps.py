"""BrightStarStamps data model (the seed-era rules of meas_algorithms' tests) and normalization."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _stamps_factory import make_stamp, make_stamps

from imaging.exposure import Exposure
from imaging.mask import Mask
from imaging.stamps import BrightStarStamp, BrightStarStamps, annulus_mask


def test_accessors_follow_stamp_order():
    stamps = make_stamps()
    assert len(stamps) == 3
    assert stamps.getMagnitudes()[1] == 18.0
    assert stamps.getGaiaIds() == [s.gaiaId for s in stamps]
    assert stamps.getPositions() == [s.position for s in stamps]
    assert stamps.getMaskedImages()[2] is stamps[2].stamp_im
    assert stamps.getArchiveElements()[0] is stamps[0].archive_element
    assert math.isnan(stamps.getAnnularFluxes()[1])
    assert stamps.nb90Rots == 2


def test_select_by_magnitude_is_strict():
    stamps = make_stamps()
    bright = stamps.selectByMag(magMax=7)
    assert len(bright) == 2 and 18.0 not in bright.getMagnitudes()
    faint = stamps.selectByMag(magMin=7)
    assert faint.getMagnitudes() == [18.0]
    np.testing.assert_array_equal(faint[0].stamp_im.image, stamps[1].stamp_im.image)
    assert len(stamps.selectByMag(magMin=18.0)) == 0  # strict inequality
    assert (faint.innerRadius, faint.outerRadius, faint.nb90Rots) == (5, 10, 2)


@pytest.mark.parametrize("bad", [{"a": 1}, Exposure(np.zeros((3, 3)))])
def test_wrong_types_are_value_errors(bad):
    with pytest.raises(ValueError):
        BrightStarStamps([bad])
    stamps = make_stamps(normalized=False)
    with pytest.raises(ValueError):
        stamps.append(bad)
    with pytest.raises(ValueError):
        stamps.extend([bad])


def test_normalization_rules():
    rng = np.random.default_rng(5)
    unnormalized = [make_stamp(rng, mask_bits=False) for _ in range(3)]
    with pytest.raises(AttributeError):
        BrightStarStamps(unnormalized, innerRadius=5, outerRadius=10)
    plain = BrightStarStamps(unnormalized)
    assert not plain.normalized
    normalized = BrightStarStamps.initAndNormalize(
        [make_stamp(rng, mask_bits=False) for _ in range(3)], innerRadius=5, outerRadius=10
    )
    assert normalized.normalized and all(f is not None for f in normalized.getAnnularFluxes())
    with pytest.raises(AttributeError):  # already normalized
        BrightStarStamps.initAndNormalize(list(normalized), innerRadius=5, outerRadius=10)
    with pytest.raises(AttributeError):  # normalized stamps need radii
        BrightStarStamps(list(normalized))
    other = BrightStarStamps.initAndNormalize(
        [make_stamp(rng, mask_bits=False) for _ in range(2)], innerRadius=5, outerRadius=10
    )
    normalized.extend(other)
    assert len(normalized) == 5
    with pytest.raises(AttributeError):
        normalized.extend(plain)
    different = BrightStarStamps.initAndNormalize(
        [make_stamp(rng, mask_bits=False)], innerRadius=2, outerRadius=10
    )
    with pytest.raises(AttributeError):
        normalized.extend(different)
    with pytest.raises(AttributeError):
        normalized.append(different[0], innerRadius=2, outerRadius=10)
    with pytest.raises(AttributeError):
        plain.append(other[0], innerRadius=5, outerRadius=10)
    with pytest.raises(AttributeError):
        normalized.append(make_stamp(rng, mask_bits=False))
    normalized.append(other[0], innerRadius=5, outerRadius=10)
    plain.append(make_stamp(rng, mask_bits=False))
    assert len(plain) == 4


def test_annulus_is_integer_circles():
    ring = annulus_mask((21, 21), (10, 10), 3, 5)
    ys, xs = np.nonzero(ring)
    r2 = (xs - 10) ** 2 + (ys - 10) ** 2
    assert r2.min() == 10 and r2.max() == 25  # 9 excluded (inner circle), 25 included
    assert ring.sum() == np.sum((r2 > 9) & (r2 <= 25))
    assert ring[10, 15] and not ring[10, 13]
    with pytest.raises(ValueError):
        annulus_mask((5, 5), (2, 2), 4, 4)


def _flat_stamp(value, *, bad_annulus=False, gaia_id=1):
    image = np.full((61, 61), value, dtype=np.float32)
    mask = Mask(image.shape)
    if bad_annulus:
        mask.set("SAT", annulus_mask(image.shape, (30, 30), 10, 15))
    variance = np.full(image.shape, 4.0, dtype=np.float32)
    return BrightStarStamp(
        stamp_im=Exposure(image, mask=mask, variance=variance), gaiaGMag=10.0, gaiaId=gaia_id
    )


def test_normalization_divides_image_by_clipped_annulus_mean():
    rng = np.random.default_rng(1)
    stamp = _flat_stamp(50.0)
    ring = annulus_mask((61, 61), (30, 30), 10, 15)
    stamp.stamp_im.image += rng.normal(0, 1, (61, 61)).astype(np.float32)
    ys, xs = np.nonzero(ring)
    stamp.stamp_im.image[ys[:5], xs[:5]] = 1e5  # outliers are clipped (4 sigma)
    stamp.stamp_im.mask.set("CR", np.zeros((61, 61), bool) | (np.arange(61) == 3)[None, :])
    stamps = BrightStarStamps.initAndNormalize([stamp], innerRadius=10, outerRadius=15)
    flux = stamps[0].annularFlux
    assert abs(flux - 50.0) < 0.2
    assert abs(np.mean(stamps[0].stamp_im.image[ring][5:]) - 1.0) < 0.005
    np.testing.assert_array_equal(stamps[0].stamp_im.variance, 4.0)  # variance untouched


@pytest.mark.parametrize("discard", [True, False])
def test_masked_annulus_follows_discard_flag_without_skipping_the_next(discard):
    stars = [
        _flat_stamp(10.0, gaia_id=1),
        _flat_stamp(10.0, bad_annulus=True, gaia_id=2),
        _flat_stamp(20.0, bad_annulus=True, gaia_id=3),
        _flat_stamp(30.0, gaia_id=4),
    ]
    stamps = BrightStarStamps.initAndNormalize(
        stars, innerRadius=10, outerRadius=15, discardNanFluxObjects=discard
    )
    if discard:
        assert stamps.getGaiaIds() == [1, 4]  # LSST's loop would have skipped star 3 / 4
    else:
        assert stamps.getGaiaIds() == [1, 2, 3, 4]
        assert math.isnan(stamps[1].annularFlux) and math.isnan(stamps[2].annularFlux)
        assert stamps[2].stamp_im.image[0, 0] == 20.0  # left unnormalized
    assert stamps[-1].annularFlux == 30.0


def test_min_valid_annulus_fraction():
    stamp = _flat_stamp(10.0)
    half = np.zeros((61, 61), bool)
    half[:, :30] = True
    stamp.stamp_im.mask.set("NO_DATA", half)
    kept = BrightStarStamps.initAndNormalize(
        [stamp], innerRadius=10, outerRadius=15, minValidAnnulusFraction=0.4
    )
    assert kept[0].annularFlux == 10.0
    dropped = BrightStarStamps.initAndNormalize(
        [_flat_stamp(10.0)], innerRadius=10, outerRadius=15, minValidAnnulusFraction=1.01
    )
    assert len(dropped) == 0
