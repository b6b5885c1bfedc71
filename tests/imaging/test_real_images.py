"""A real image through ingest and CharacterizeImageTask: astropy's DSS frame of M13.

The frame ships with astropy (no download). It is wrapped as a plain single-HDU raw by
``_raws.write_dss_m13_raw`` (header values stated in ``_raws.M13_KEYWORDS``), ingested (SAT from
SATURATE), and characterized. What a real, crowded photographic frame checks: the ingest path
of plain raws, saturated stars never becoming cosmic rays, a PSF model whose image is physical
(no negative wings) and whose FWHM agrees with the stars it was built from.
"""

from __future__ import annotations

import numpy as np
import pytest
from _raws import M13_KEYWORDS, m13_path, write_dss_m13_raw

from butler import Butler
from imaging.ingest import RAW_DATASET_TYPE, ingest_raws, register_instrument

pytest.importorskip("galsim")
if not m13_path().exists():  # pragma: no cover - astropy always ships it
    pytest.skip("astropy's DSS M13 test image is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def m13(tmp_path_factory):
    from imaging.sim import make_camera
    from tasks import CharacterizeImageTask

    root = tmp_path_factory.mktemp("m13")
    Butler.create(root / "repo")
    butler = Butler(root / "repo")
    register_instrument(butler, make_camera(1, detector_size=300, pixel_scale=1.0, name="DSS"))
    ingest_raws(butler, [write_dss_m13_raw(root / "m13.fits")], transfer="copy")
    exposure = butler.get(
        RAW_DATASET_TYPE, instrument="DSS", visit=1, detector=0, collections="DSS/raw/all"
    )
    raw = exposure.image.copy()
    task = CharacterizeImageTask()
    result = task.run(exposure, exposureIdInfo=1)
    return raw, result, task


def test_saturated_cluster_stars_are_sat_and_never_cosmic_rays(m13):
    raw, result, _ = m13
    mask = result.exposure.mask
    saturated = raw >= M13_KEYWORDS["SATURATE"]
    assert saturated.sum() >= 1
    assert np.all(mask.is_set("SAT")[saturated])
    assert not np.any(mask.is_set("CR") & saturated)


def test_psf_model_is_physical_and_matches_its_stars(m13):
    _, result, task = m13
    cat = result.sourceCat
    used = cat[cat["calib_psf_used"]]
    assert len(cat) >= 20 and len(used) >= 10
    psf = result.exposure.psf
    position = psf.average_position
    kernel = psf.kernel_image(position)
    assert kernel[kernel < 0].sum() >= -1e-3
    xx, yy, xy = (np.asarray(used[f"base_SdssShape_{m}"]) for m in ("xx", "yy", "xy"))
    stars_fwhm = 2.3548 * np.median((xx * yy - xy * xy) ** 0.25)
    assert psf.fwhm(position) == pytest.approx(stars_fwhm, rel=0.03)
    assert 2.0 < stars_fwhm < 6.0  # DSS seeing ~3-4" at 1"/pixel
    assert task.getFullMetadata().getScalar("characterizeImage.numPsfStars") == len(used)
