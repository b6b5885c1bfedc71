"""ProcessBrightStarsTask on simulated detectors at 0, 90, 180 and 270 degrees, against truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("galsim")

from astropy.stats import sigma_clipped_stats  # noqa: E402
from astropy.table import Table  # noqa: E402
from scipy import ndimage  # noqa: E402

from imaging._errors import CatalogSchemaError  # noqa: E402
from imaging.geometry import Box  # noqa: E402
from imaging.refcat import REFCAT_SCHEMA, propagate_positions  # noqa: E402
from imaging.refcat_loader import ReferenceCatalogError, ReferenceObjectLoader  # noqa: E402
from imaging.sim import SkyModel, Visit, make_camera, simulate_detector  # noqa: E402
from imaging.sim.simulate import SimOptions  # noqa: E402
from imaging.sim.sky import make_reference_catalog  # noqa: E402
from imaging.stamps import annulus_mask  # noqa: E402
from tasks import CharacterizeImageTask  # noqa: E402
from tasks.process_bright_stars import (  # noqa: E402
    ProcessBrightStarsConfig,
    ProcessBrightStarsTask,
)

SIZE = 560
SEED = 4
SKY = SkyModel(star_density=2000, bright_star_density=7000, galaxy_density=1000)
OPTIONS = SimOptions(halo_threshold=0.0, cr_rate=0.3, n_bad_columns=1)
VISIT = Visit(id=9, band="r", ra=150.0, dec=2.0, exposure_time=30.0, mjd=60000.0)


def _config(**overrides):
    config = ProcessBrightStarsConfig()
    config.doApplySkyCorr = False
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


@pytest.fixture(scope="module")
def field():
    camera = make_camera(4, detector_size=SIZE)
    assert [d.orientation for d in camera.detectors] == [0, 90, 180, 270]
    refcat = make_reference_catalog((VISIT.ra, VISIT.dec), 0.2, seed=SEED, sky=SKY)
    detectors = []
    for det in camera.detectors:
        sim = simulate_detector(camera, VISIT, det.id, seed=SEED, sky=SKY, options=OPTIONS)
        exposure = sim.exposure.clone()
        CharacterizeImageTask().run(exposure, exposureIdInfo=det.id)
        detectors.append((sim, exposure))
    return camera, refcat, detectors


def _loader(refcat):
    return ReferenceObjectLoader([{"healpix7": 0}], [refcat], name="gaia_dr2_20200414")


def _expected_ids(refcat, exposure, mag_limit=18.0, half=125):
    epoch = 2000.0 + (VISIT.mjd - 51544.5) / 365.25
    ra, dec = propagate_positions(refcat, epoch)
    x, y = exposure.wcs.all_world2pix(ra, dec, 0)
    ids = set()
    for i in range(len(refcat)):
        if not refcat["phot_g_mean_mag"][i] < mag_limit:
            continue
        nx, ny = math.floor(x[i] + 0.5), math.floor(y[i] + 0.5)
        box = Box(nx - half, ny - half, 2 * half, 2 * half)
        if not exposure.bbox.intersection(box).is_empty():
            ids.add(int(refcat["id"][i]))
    return ids


@pytest.fixture(scope="module")
def processed(field):
    _, refcat, detectors = field
    out = []
    for sim, exposure in detectors:
        task = ProcessBrightStarsTask(config=_config())
        result = task.run(exposure.clone(), refObjLoader=_loader(refcat))
        out.append((sim, exposure, result, task))
    return out


def test_every_bright_overlapping_star_is_extracted_and_no_other(field, processed):
    _, refcat, _ = field
    total_edge = 0
    for sim, exposure, result, _ in processed:
        expected = _expected_ids(refcat, exposure)
        assert len(expected) >= 3, "the simulation must give every detector bright stars"
        stamps = result.brightStarStamps
        assert set(stamps.getGaiaIds()) == expected
        assert all(m < 18.0 for m in stamps.getMagnitudes())
        for stamp in stamps:
            assert stamp.stamp_im.image.shape == (275, 275)
            no_data = stamp.stamp_im.mask.is_set("NO_DATA")
            if no_data.any():
                total_edge += 1
                assert np.isnan(stamp.stamp_im.image[no_data]).all()
                assert np.isfinite(stamp.stamp_im.image[~no_data]).all()
    assert total_edge >= 2, "off-edge stars must be padded with NaN / NO_DATA"


def test_rotations_follow_the_detector_orientation(processed):
    assert [r.brightStarStamps.nb90Rots for _, _, r, _ in processed] == [0, 1, 2, 3]
    for _, exposure, result, task in processed:
        assert task.metadata["nb90Rots"] == result.brightStarStamps.nb90Rots
        assert exposure.detector.orientation == 90 * result.brightStarStamps.nb90Rots


def _centroid(image, center=137.0, sigma=2.0, iterations=20):
    """Gaussian-weighted (adaptive-moment style) centroid near the model centre."""
    cx = cy = center
    ys, xs = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(float)
    for _ in range(iterations):
        w = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2)) * np.nan_to_num(image)
        cx, cy = (w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()
    return cx, cy


def test_warped_centroids_are_on_the_centre_pixel(processed):
    errors = []
    for sim, _, result, _ in processed:
        truth = sim.truth.sources
        saturated = {int(i) for i in truth["id"][truth["is_saturated"]]}
        for stamp in result.brightStarStamps:
            if stamp.gaiaId in saturated:
                continue
            core = stamp.stamp_im.image[127:148, 127:148]
            if (
                not np.isfinite(core).all()
                or stamp.stamp_im.mask.is_set("SAT")[127:148, 127:148].any()
            ):
                continue
            cx, cy = _centroid(stamp.stamp_im.image)
            errors.append(math.hypot(cx - 137.0, cy - 137.0))
    assert len(errors) >= 6
    assert np.median(errors) < 0.02, errors
    assert max(errors) < 0.05, errors


def test_normalized_annulus_mean_is_one(processed):
    ring = annulus_mask((275, 275), (137, 137), 40, 50)
    checked = 0
    for _, _, result, task in processed:
        bad = task.config.badMaskPlanes
        for stamp in result.brightStarStamps:
            if not np.isfinite(stamp.annularFlux):
                continue
            good = ring & ~stamp.stamp_im.mask.is_set([p for p in bad])
            good &= np.isfinite(stamp.stamp_im.image)
            mean, _, _ = sigma_clipped_stats(
                stamp.stamp_im.image[good], sigma=4, maxiters=3, cenfunc="mean"
            )
            assert abs(mean - 1.0) < 0.005, (stamp.gaiaId, mean)
            checked += 1
    assert checked >= 8


def test_neighbour_footprints_are_bad(field):
    _, refcat, detectors = field
    task = ProcessBrightStarsTask(config=_config())
    sim, exposure = detectors[0]
    before = exposure.mask.is_set("BAD")
    extracted = task.extractStamps(exposure.clone(), refObjLoader=_loader(refcat))
    marked = 0
    for stamp, (x, y) in zip(extracted.starIms, extracted.pixCenters, strict=True):
        labels, n = ndimage.label(stamp.mask.is_set("DETECTED"), structure=np.ones((3, 3)))
        cx = math.floor(x + 0.5) - stamp.xy0[0]
        cy = math.floor(y + 0.5) - stamp.xy0[1]
        h, w = labels.shape
        central = labels[cy, cx] if 0 <= cx < w and 0 <= cy < h else 0
        others = (labels > 0) & (labels != central)
        bad = stamp.mask.is_set("BAD")
        assert bad[others].all()
        original = np.zeros_like(bad)
        inside = exposure.bbox.intersection(stamp.bbox)
        original[inside.slices(stamp.xy0)] = before[inside.slices(exposure.xy0)]
        if central:
            assert not (bad & (labels == central) & ~original).any()
        marked += int(others.any())
    assert marked >= 1


def _mask_annulus_of_one_star(field):
    _, refcat, detectors = field
    sim, exposure = detectors[1]
    exposure = exposure.clone()
    task = ProcessBrightStarsTask(config=_config())
    extracted = task.extractStamps(exposure.clone(), refObjLoader=_loader(refcat))
    inside = [
        (gid, c)
        for gid, c, im in zip(
            extracted.gaiaIds, extracted.pixCenters, extracted.starIms, strict=True
        )
        if not im.mask.is_set("NO_DATA").any()
    ]
    gid, (x, y) = inside[0]
    ys, xs = np.mgrid[0 : exposure.height, 0 : exposure.width]
    r = np.hypot(xs + exposure.xy0[0] - x, ys + exposure.xy0[1] - y)
    exposure.mask.set("SAT", (r > 30) & (r < 62))
    return refcat, exposure, int(gid)


def test_fully_masked_annulus_follows_discard_nan_flux_stars(field):
    refcat, exposure, gid = _mask_annulus_of_one_star(field)
    kept = ProcessBrightStarsTask(config=_config(discardNanFluxStars=False))
    stamps = kept.run(exposure.clone(), refObjLoader=_loader(refcat)).brightStarStamps
    ids = stamps.getGaiaIds()
    fluxes = dict(zip(ids, stamps.getAnnularFluxes(), strict=True))
    assert math.isnan(fluxes[gid])  # kept, unnormalized
    nan_ids = {i for i, f in fluxes.items() if math.isnan(f)}
    dropping = ProcessBrightStarsTask(config=_config(discardNanFluxStars=True))
    dropped = dropping.run(exposure.clone(), refObjLoader=_loader(refcat)).brightStarStamps
    # every NaN-flux star is dropped, and no other (no skipped neighbour in the loop)
    assert dropped.getGaiaIds() == [i for i in ids if i not in nan_ids]
    assert dropping.metadata["allStarCount"] == len(ids)


def test_nothing_bright_enough_returns_none(field):
    _, refcat, detectors = field
    task = ProcessBrightStarsTask(config=_config(magLimit=5.0))
    assert task.run(detectors[0][1].clone(), refObjLoader=_loader(refcat)) is None
    assert task.metadata["allStarCount"] == 0


def test_bad_inputs_are_clear_errors(field):
    _, refcat, detectors = field
    exposure = detectors[0][1].clone()
    task = ProcessBrightStarsTask(config=_config())
    with pytest.raises(ReferenceCatalogError, match="detector 3 of visit 9"):
        task._region_name = "detector 3 of visit 9"
        task.run(exposure, refObjLoader=ReferenceObjectLoader([], [], name="gaia"))
    del task._region_name
    no_mag = refcat.copy()
    no_mag.remove_column("phot_g_mean_mag")
    with pytest.raises(CatalogSchemaError, match="phot_g_mean_mag.*|phot_g_mean_flux"):
        task.run(exposure, refObjLoader=_loader(no_mag))
    exposure.wcs = None
    with pytest.raises(RuntimeError, match="WCS"):
        task.run(exposure, refObjLoader=_loader(refcat))
    with pytest.raises(ValueError, match="skyCorr"):
        ProcessBrightStarsTask(config=_config(doApplySkyCorr=True)).run(
            detectors[0][1].clone(), refObjLoader=_loader(refcat)
        )


def test_config_validation():
    config = _config()
    config.annularFluxRadii = [50, 40]
    with pytest.raises(ValueError, match="annularFluxRadii"):
        config.validate()
    assert ProcessBrightStarsTask(config=_config()).modelStampSize == (275, 275)
    config = _config()
    config.modelStampBuffer = 1.2
    assert ProcessBrightStarsTask(config=config).modelStampSize == (301, 301)


def test_config_fields_act(field, processed):
    _, refcat, detectors = field
    sim, exposure = detectors[3]
    base = processed[3][2].brightStarStamps

    def run(**overrides):
        task = ProcessBrightStarsTask(config=_config(**overrides))
        return task, task.run(exposure.clone(), refObjLoader=_loader(refcat))

    # doRemoveDetected: without it no footprint becomes BAD
    task = ProcessBrightStarsTask(config=_config(doRemoveDetected=False))
    plain = task.extractStamps(exposure.clone(), refObjLoader=_loader(refcat))
    masked = ProcessBrightStarsTask(config=_config()).extractStamps(
        exposure.clone(), refObjLoader=_loader(refcat)
    )
    assert sum(int(s.mask.is_set("BAD").sum()) for s in plain.starIms) < sum(
        int(s.mask.is_set("BAD").sum()) for s in masked.starIms
    )
    # doApplyTransform: identity polynomial, the star still on the centre pixel
    _, flat = run(doApplyTransform=False)
    assert all(not t.sip_a.any() for t in flat.brightStarStamps.getArchiveElements())
    assert any(t.sip_a.any() for t in base.getArchiveElements())
    # warpingKernelName and annularFluxStatistic change the pixels and fluxes, not the stars
    _, bilinear = run(warpingKernelName="bilinear")
    _, median = run(annularFluxStatistic="MEDIAN")
    for other in (flat, bilinear, median):
        assert other.brightStarStamps.getGaiaIds() == base.getGaiaIds()
    assert not np.array_equal(
        bilinear.brightStarStamps[0].stamp_im.image, base[0].stamp_im.image, equal_nan=True
    )
    assert median.brightStarStamps.getAnnularFluxes() != base.getAnnularFluxes()
    # numSigmaClip: a looser clip keeps more outliers in the mean
    _, loose = run(numSigmaClip=50.0, numIter=1)
    assert loose.brightStarStamps.getAnnularFluxes() != base.getAnnularFluxes()
    # minPixelsWithinFrame bounds the search beyond the edges (with no loader padding)
    unpadded = ReferenceObjectLoader([{"healpix7": 0}], [refcat], pixelMargin=0)
    task = ProcessBrightStarsTask(config=_config(minPixelsWithinFrame=240))
    near = task.run(exposure.clone(), refObjLoader=unpadded)
    near_ids = set(near.brightStarStamps.getGaiaIds()) if near else set()
    assert near_ids < set(base.getGaiaIds())
    # minValidAnnulusFraction: partly covered annuli are not normalized
    _, strict = run(minValidAnnulusFraction=0.99)
    fluxes = strict.brightStarStamps.getAnnularFluxes()
    assert sum(math.isnan(f) for f in fluxes) > sum(math.isnan(f) for f in base.getAnnularFluxes())
    # badMaskPlanes: with none, SAT/BAD/CR annulus pixels enter the statistic
    _, nothing_bad = run(badMaskPlanes=[])
    changed = [
        a != b and not (math.isnan(a) and math.isnan(b))
        for a, b in zip(
            nothing_bad.brightStarStamps.getAnnularFluxes(), base.getAnnularFluxes(), strict=True
        )
    ]
    assert any(changed)


def test_apply_sky_correction(field):
    from imaging.background import BackgroundConfig, BackgroundList, estimate_background

    exposure = field[2][0][1].clone()
    rng = np.random.default_rng(2)
    flat = (7.0 + rng.normal(0, 1, exposure.image.shape)).astype(np.float32)
    sky = BackgroundList(
        [
            estimate_background(
                flat, variance=np.ones_like(flat), config=BackgroundConfig(bin_size=128)
            )
        ]
    )
    model = sky.evaluate(exposure.image.shape, exposure.xy0)
    assert abs(float(model.mean()) - 7.0) < 0.05
    before = exposure.image.copy()
    ProcessBrightStarsTask(config=_config(doApplySkyCorr=True)).applySkyCorr(exposure, sky)
    # float32 pixels: 1 ulp of a saturated pixel (~4e4 ADU) is 4e-3
    np.testing.assert_allclose(before - exposure.image, model, atol=5e-3)


@pytest.fixture(scope="module")
def beside_small_detector():
    """A 200² detector and four G = 12 stars: inside, and beside it by 124, 120 and 100 px.

    The stamps (250²) of the stars beside it overlap it by 1 x 1, 5 x 200 and 25 x 200 pixels;
    after the warp (lanczos5 needs 5 valid pixels on each side) the first two keep none.
    """
    camera = make_camera(1, detector_size=200)
    sky = SkyModel(star_density=500, bright_star_density=0, galaxy_density=0)
    exposure = simulate_detector(camera, VISIT, 0, seed=3, sky=sky).exposure
    pixels = {1: (100, 100), 2: (-124, -124), 3: (-100, 100), 4: (-120, 50)}
    x, y = zip(*pixels.values(), strict=True)
    ra, dec = exposure.wcs.all_pix2world(x, y, 0)
    values = {"id": list(pixels), "ra": ra, "dec": dec, "epoch": 2016.0, "phot_g_mean_mag": 12.0}
    refcat = Table()
    for name in REFCAT_SCHEMA.names:
        column = np.broadcast_to(values.get(name, 0.0), (len(pixels),))
        refcat[name] = np.asarray(column, dtype=REFCAT_SCHEMA[name].dtype)
    return exposure, refcat


def test_a_stamp_with_no_valid_pixel_is_dropped(beside_small_detector, caplog):
    exposure, refcat = beside_small_detector
    task = ProcessBrightStarsTask(config=_config(doRemoveDetected=False))
    with caplog.at_level("INFO", logger=task.log.name):
        stamps = task.run(exposure.clone(), refObjLoader=_loader(refcat)).brightStarStamps
    for stamp in stamps:
        image, mask = stamp.stamp_im.image, stamp.stamp_im.mask
        assert (np.isfinite(image) & ~mask.is_set("NO_DATA")).any(), stamp.gaiaId
    # star 3 keeps a strip of data but no annulus: kept unnormalized (discardNanFluxStars)
    assert stamps.getGaiaIds() == [1, 3]
    assert math.isnan(stamps.getAnnularFluxes()[1])
    assert task.metadata["allStarCount"] == 4
    assert task.metadata["noDataStarCount"] == 2
    assert task.metadata["validStarCount"] == 2
    assert "dropped 2 of 4 bright-star stamps with no valid pixel" in caplog.text
