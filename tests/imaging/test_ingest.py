"""Ingest of instruments, raw exposures and reference catalogs into a real repository."""

from __future__ import annotations

import contextlib
import os
import shutil

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

pytest.importorskip("galsim")

from _raws import saturated_star_image, write_plain_raw  # noqa: E402

from butler import Butler  # noqa: E402
from butler.cli import main as butler_main  # noqa: E402
from imaging._errors import ExposureFormatError  # noqa: E402
from imaging.ingest import RAW_DATASET_TYPE, ingest_raws, ingest_refcat, register_instrument  # noqa: E402
from imaging.sim import SkyModel, Visit, make_camera, write_simulated_observations  # noqa: E402
from imaging.sim.camera import Camera  # noqa: E402


@pytest.fixture(scope="module")
def observations(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    camera = make_camera(4, detector_size=256)
    visits = [
        Visit(id=1, band="r", ra=150.0, dec=2.0, exposure_time=30.0, mjd=60000.0),
        Visit(id=2, band="g", ra=150.01, dec=2.0, exposure_time=15.0, mjd=60000.1),
    ]
    raws = write_simulated_observations(
        out, camera, visits, seed=5, sky=SkyModel(star_density=20000)
    )
    return out, raws


@pytest.fixture
def repo(tmp_path, observations):
    out, _ = observations
    Butler.create(tmp_path / "repo")
    butler = Butler(tmp_path / "repo")
    register_instrument(butler, Camera.from_yaml(out / "camera.yaml"))
    return tmp_path / "repo"


def test_ingest_raws_records_regions_and_get(repo, observations):
    _, raws = observations
    butler = Butler(repo)
    refs = ingest_raws(butler, raws, transfer="copy")
    assert len(refs) == 8 and refs[0].run == "SimCam/raw/all"
    visits = {r["id"]: r for r in butler.query_dimension_records("visit")}
    assert visits[2]["band"] == "g" and visits[2]["exposure_time"] == 15.0
    assert butler.registry.get_region(
        "visit_detector_region", {"instrument": "SimCam", "visit": 1, "detector": 0}
    )
    exposure = butler.get(
        RAW_DATASET_TYPE, instrument="SimCam", visit=1, detector=0, collections="SimCam/raw/all"
    )
    with fits.open(raws[0]) as hdul:
        np.testing.assert_array_equal(exposure.image, hdul["IMAGE"].data)
    cut = butler.get(
        RAW_DATASET_TYPE,
        instrument="SimCam",
        visit=1,
        detector=0,
        collections="SimCam/raw/all",
        parameters={"bbox": (10, 20, 30, 40)},
    )
    assert cut.image.shape == (40, 30) and cut.xy0 == (10, 20)
    # spatial join: every detector region overlaps at least one sky pixel
    rows = butler.query_data_ids(["visit", "detector", "healpix7"], where="visit = 1")
    assert {r["detector"] for r in rows} == {0, 1, 2, 3}


def test_duplicate_files_in_batch_and_reingest(repo, observations):
    _, raws = observations
    butler = Butler(repo)
    with pytest.raises(ExposureFormatError, match="same instrument/visit/detector"):
        ingest_raws(butler, [raws[0], raws[0]])
    assert _ingested(butler) == set()
    ingest_raws(butler, raws[:2])
    # raws[1] is already stored with the same bytes: skipped, raws[2] is new
    refs = ingest_raws(butler, raws[1:3])
    assert [(r.data_id["visit"], r.data_id["detector"]) for r in refs] == [(1, 2)]
    assert _ingested(butler) == {(1, 0), (1, 1), (1, 2)}


def test_bad_headers_name_file_and_keyword(repo, observations, tmp_path):
    _, raws = observations
    butler = Butler(repo)
    broken = tmp_path / "broken.fits"
    shutil.copy(raws[0], broken)
    with fits.open(broken, mode="update") as hdul:
        del hdul[0].header["EXPTIME"]
    with pytest.raises(ExposureFormatError, match=r"broken\.fits.*EXPTIME"):
        ingest_raws(butler, [raws[1], broken])
    assert _ingested(butler) == set()  # the good file of the failed batch was not ingested
    inconsistent = tmp_path / "inconsistent.fits"
    shutil.copy(raws[1], inconsistent)
    with fits.open(inconsistent, mode="update") as hdul:
        hdul[0].header["DETECTOR"] = 99
    with pytest.raises(ExposureFormatError, match=r"inconsistent\.fits.*DETECTOR 99"):
        ingest_raws(butler, [inconsistent])
    other_visit = tmp_path / "other.fits"
    shutil.copy(raws[1], other_visit)
    with fits.open(other_visit, mode="update") as hdul:
        hdul[0].header["EXPTIME"] = 99.0
    with pytest.raises(ExposureFormatError, match="exposure_time"):
        ingest_raws(butler, [raws[0], other_visit])


def _ingested(butler) -> set[tuple[int, int]]:
    """(visit, detector) of every registered raw, empty if the type or run does not exist."""
    try:
        refs = butler.query_datasets(RAW_DATASET_TYPE, collections="SimCam/raw/all")
    except LookupError:
        return set()
    return {(r.data_id["visit"], r.data_id["detector"]) for r in refs}


@contextlib.contextmanager
def _vanishing_after_header(vanished):
    """Make ``vanished`` disappear once ingest has read its header (before its transfer)."""
    from imaging import ingest as ingest_module

    real = ingest_module.read_raw_header

    def read_then_vanish(path):
        info = real(path)
        if str(path) == str(vanished):
            vanished.unlink()
        return info

    ingest_module.read_raw_header = read_then_vanish
    try:
        yield
    finally:
        ingest_module.read_raw_header = real


def test_interrupted_batch_leaves_nothing(repo, observations, tmp_path):
    _, raws = observations
    butler = Butler(repo)
    vanished = tmp_path / "vanished.fits"
    shutil.copy(raws[3], vanished)
    header_ok = list(raws[:3]) + [vanished]
    with _vanishing_after_header(vanished), pytest.raises(Exception, match="vanished"):
        ingest_raws(butler, header_ok, transfer="copy")
    assert _ingested(butler) == set()
    copied = [p for p in repo.rglob("*.fits") if "postISRCCD" in str(p)]
    assert copied == []


def test_ingest_refcat_shards(repo, observations):
    out, _ = observations
    butler = Butler(repo)
    refs = ingest_refcat(butler, "gaia_dr2_20200414", out / "refcat.fits")
    assert refs
    total = sum(len(butler.get(r)) for r in refs)
    assert total == len(fits.getdata(out / "refcat.fits"))


def test_cli_register_and_ingest(tmp_path, observations):
    out, raws = observations
    runner = CliRunner()
    repo = str(tmp_path / "r")
    assert runner.invoke(butler_main, ["create", repo]).exit_code == 0
    result = runner.invoke(butler_main, ["register-instrument", repo, str(out / "camera.yaml")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        butler_main, ["ingest-raws", repo, str(out / "raw"), "--transfer", "symlink"]
    )
    assert result.exit_code == 0 and "Ingested 8" in result.output, result.output
    result = runner.invoke(butler_main, ["ingest-raws", repo, str(tmp_path / "nothing.fits")])
    assert result.exit_code != 0
    bad_camera = tmp_path / "camera.yaml"
    bad_camera.write_text("instrument: X\ndetectors: [{id: 0}]\n")
    result = runner.invoke(butler_main, ["register-instrument", repo, str(bad_camera)])
    assert (
        result.exit_code == 1
        and "camera.yaml" in result.output
        and "Traceback" not in result.output
    )


# -- SATURATE -> SAT -------------------------------------------------------------------------


def _no_cr_on_saturated(exposure) -> tuple[int, int]:
    """(CR pixels, CR pixels at or above saturation) found by the CR finder on ``exposure``."""
    from imaging.cosmic_rays import find_cosmic_rays
    from imaging.psf import GaussianPsf

    mask = exposure.mask.array.copy()
    result = find_cosmic_rays(
        exposure.image.copy(),
        mask,
        exposure.variance,
        GaussianPsf(2.0),
        keep_crs=True,
        planes=exposure.mask.planes,
    )
    saturated = exposure.image >= exposure.detector.saturation
    return result.n_pixels, int(np.count_nonzero(saturated[result.y, result.x]))


def test_single_hdu_raw_saturate_sets_sat_and_no_cr(repo, tmp_path):
    image, _ = saturated_star_image(saturation=60000.0)
    raw = write_plain_raw(tmp_path / "plain.fits", image, saturation=60000.0)
    butler = Butler(repo)
    ingest_raws(butler, [raw], transfer="copy")
    exposure = butler.get(
        RAW_DATASET_TYPE, instrument="SimCam", visit=7, detector=0, collections="SimCam/raw/all"
    )
    saturated = image >= 60000.0
    assert np.count_nonzero(saturated) > 80  # core and the 81-pixel trail
    np.testing.assert_array_equal(exposure.mask.is_set("SAT"), saturated)
    np.testing.assert_array_equal(exposure.image, image.astype(np.float32))
    n_cr, n_cr_saturated = _no_cr_on_saturated(exposure)
    assert n_cr_saturated == 0, f"{n_cr_saturated} of {n_cr} CR pixels are saturated"
    assert raw.exists()  # copy keeps the user's file


def test_multi_hdu_raw_whose_mask_lacks_sat(repo, observations, tmp_path):
    _, raws = observations
    edited = tmp_path / "nosat.fits"
    shutil.copy(raws[0], edited)
    with fits.open(edited, mode="update") as hdul:
        sat_bit = int(hdul["MASK"].header["MP_SAT"])
        del hdul["MASK"].header["MP_SAT"]
        hdul["MASK"].data = (hdul["MASK"].data & ~np.int32(1 << sat_bit)).astype(np.int32)
        level = float(hdul[0].header["SATURATE"])
        image = np.array(hdul["IMAGE"].data)
        image[100:140, 50] = level  # a bleed trail the writer did not mask
        hdul["IMAGE"].data = image
    ingest_raws(Butler(repo), [edited], transfer="move")
    assert not edited.exists()  # moved: the rewritten copy replaced it in the repository
    exposure = Butler(repo).get(
        RAW_DATASET_TYPE, instrument="SimCam", visit=1, detector=0, collections="SimCam/raw/all"
    )
    np.testing.assert_array_equal(exposure.mask.is_set("SAT"), image >= level)
    assert _no_cr_on_saturated(exposure)[1] == 0


@pytest.mark.parametrize("transfer", ["symlink", "direct"])
def test_raw_needing_sat_plane_refuses_linking_transfers(repo, tmp_path, transfer):
    image, _ = saturated_star_image(shape=(64, 64), trail=5)
    raw = write_plain_raw(tmp_path / "plain.fits", image, saturation=60000.0)
    with pytest.raises(ExposureFormatError, match=r"plain\.fits: single-HDU raw with SATURATE"):
        ingest_raws(Butler(repo), [raw], transfer=transfer)
    assert _ingested(Butler(repo)) == set()


def test_single_hdu_raw_without_saturate_links_unchanged(repo, tmp_path):
    image, _ = saturated_star_image(shape=(64, 64), trail=5)
    raw = write_plain_raw(tmp_path / "plain.fits", image, saturation=None)
    ingest_raws(Butler(repo), [raw], transfer="symlink")
    exposure = Butler(repo).get(
        RAW_DATASET_TYPE, instrument="SimCam", visit=7, detector=0, collections="SimCam/raw/all"
    )
    assert not exposure.mask.array.any()


# -- GAIN / RDNOISE are required (README) ------------------------------------------------------


@pytest.mark.parametrize("keyword", ["GAIN", "RDNOISE"])
def test_raw_without_gain_or_read_noise_is_refused(repo, observations, tmp_path, keyword):
    """A raw the reader cannot turn into an Exposure (no GAIN/RDNOISE) must fail at ingest."""
    _, raws = observations
    broken = tmp_path / f"no_{keyword.lower()}.fits"
    shutil.copy(raws[0], broken)
    with fits.open(broken, mode="update") as hdul:
        del hdul[0].header[keyword]
    with pytest.raises(ExposureFormatError, match=rf"no_{keyword.lower()}\.fits.*{keyword}"):
        ingest_raws(Butler(repo), [broken])


def test_raw_with_non_positive_gain_is_refused(repo, tmp_path):
    raw = write_plain_raw(
        tmp_path / "zero_gain.fits", np.zeros((64, 64), np.float32), saturation=None,
        keywords={"GAIN": 0.0},
    )
    with pytest.raises(ExposureFormatError, match=r"zero_gain\.fits.*GAIN"):
        ingest_raws(Butler(repo), [raw])


# -- minimal reference catalogs ----------------------------------------------------------------


def test_ingest_refcat_minimal_table_gets_stated_defaults(repo, tmp_path):
    from astropy.table import Table

    from imaging.refcat_input import DEFAULT_REFCAT_EPOCH, REFCAT_DEFAULTS

    minimal = Table({"ID": [1, 2, 3], "RA": [150.0, 150.01, 150.02], "Dec": [2.0, 2.0, 2.01],
                     "mag": [17.0, 18.5, 19.0]})
    minimal.write(tmp_path / "mine.fits")
    butler = Butler(repo)
    refs = ingest_refcat(butler, "my_refcat", tmp_path / "mine.fits")
    stored = Table.vstack([butler.get(r) for r in refs]) if len(refs) > 1 else butler.get(refs[0])
    stored.sort("id")
    assert list(stored["id"]) == [1, 2, 3]
    assert np.allclose(stored["phot_g_mean_mag"], [17.0, 18.5, 19.0])
    assert np.all(stored["epoch"] == DEFAULT_REFCAT_EPOCH)
    for name, value in REFCAT_DEFAULTS.items():
        # a NaN may read back masked
        column = np.ma.filled(np.ma.asarray(stored[name], dtype=float), np.nan)
        assert np.allclose(column, value, equal_nan=True), name


def test_ingest_refcat_flux_csv_and_missing_brightness(repo, tmp_path):
    butler = Butler(repo)
    (tmp_path / "flux.csv").write_text("id,ra,dec,flux\n7,150.0,2.0,3630.78\n")
    refs = ingest_refcat(butler, "flux_refcat", tmp_path / "flux.csv", epoch=2000.0)
    stored = butler.get(refs[0])
    assert abs(float(stored["phot_g_mean_mag"][0]) - 22.5) < 1e-3  # 3630.78 nJy = AB 22.5
    assert float(stored["epoch"][0]) == 2000.0
    (tmp_path / "nomag.csv").write_text("id,ra,dec\n7,150.0,2.0\n")
    result = CliRunner().invoke(
        butler_main, ["ingest-refcat", str(repo), "x_refcat", str(tmp_path / "nomag.csv")]
    )
    assert result.exit_code == 1, result.output
    assert "nomag.csv" in result.output and "flux" in result.output
    assert "Traceback" not in result.output


# -- re-ingest never deletes or takes what is the repository's ---------------------------------


def _stored_files(repo) -> dict[str, bytes]:
    """Relative path -> bytes of every raw file stored in the repository."""
    return {
        str(p.relative_to(repo)): p.read_bytes()
        for p in sorted(repo.rglob("*.fits"))
        if "postISRCCD" in str(p)
    }


def _sources(raws, folder) -> list[str]:
    """Fresh copies of ``raws`` in ``folder`` (a move takes its sources away)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [str(shutil.copy(r, folder / f"{i}_{r.name}")) for i, r in enumerate(raws)]


@pytest.mark.parametrize("transfer", ["copy", "move", "symlink", "hardlink"])
def test_reingest_of_ingested_raws_keeps_files_and_records(repo, observations, tmp_path, transfer):
    _, raws = observations
    runner = CliRunner()
    first = _sources(raws[:2], tmp_path / "first")
    result = runner.invoke(butler_main, ["ingest-raws", str(repo), *first, "--transfer", transfer])
    assert result.exit_code == 0, result.output
    before = _stored_files(repo)
    assert len(before) == 2
    # the same raws again (a move took them: identical fresh copies), plus one new raw
    again = first if transfer != "move" else _sources(raws[:2], tmp_path / "again")
    new = _sources(raws[2:3], tmp_path / "new")
    result = runner.invoke(
        butler_main, ["ingest-raws", str(repo), *again, *new, "--transfer", transfer]
    )
    assert result.exit_code == 0, result.output
    assert "Ingested 1" in result.output and "2 raw exposure(s) already ingested" in result.output
    after = _stored_files(repo)
    assert {k: v for k, v in after.items() if k in before} == before
    assert len(after) == 3
    butler = Butler(repo)
    assert _ingested(butler) == {(1, 0), (1, 1), (1, 2)}
    for ref in butler.query_datasets(RAW_DATASET_TYPE, collections="SimCam/raw/all"):
        assert butler.get(ref).image.shape == (256, 256)
    if transfer == "move":  # the skipped sources were not taken
        assert all(os.path.exists(p) for p in again)


@pytest.mark.parametrize("transfer", ["copy", "move", "symlink", "hardlink"])
def test_reingest_of_a_different_file_is_refused_and_changes_nothing(
    repo, observations, tmp_path, transfer
):
    _, raws = observations
    runner = CliRunner()
    first = _sources(raws[:1], tmp_path / "first")
    assert runner.invoke(butler_main, ["ingest-raws", str(repo), *first]).exit_code == 0
    before = _stored_files(repo)
    changed = _sources(raws[:1], tmp_path / "changed")
    with fits.open(changed[0], mode="update") as hdul:
        hdul["IMAGE"].data[0, 0] += 1.0
    new = _sources(raws[1:2], tmp_path / "new")
    result = runner.invoke(
        butler_main, ["ingest-raws", str(repo), *changed, *new, "--transfer", transfer]
    )
    assert result.exit_code == 1, result.output
    assert "already" in result.output and "differs" in result.output
    assert "Traceback" not in result.output
    assert _stored_files(repo) == before
    assert _ingested(Butler(repo)) == {(1, 0)}
    assert os.path.exists(changed[0]) and os.path.exists(new[0])


def test_failed_ingest_leaves_existing_files_and_records(repo, observations, tmp_path):
    """A batch failing part-way removes only what it transferred, never the stored raw."""
    _, raws = observations
    butler = Butler(repo)
    ingest_raws(butler, raws[:1], transfer="copy")
    before = _stored_files(repo)
    vanished = tmp_path / "vanished.fits"
    shutil.copy(raws[1], vanished)
    with _vanishing_after_header(vanished), pytest.raises(Exception, match="vanished"):
        ingest_raws(butler, [raws[0], vanished], transfer="copy")
    assert _stored_files(repo) == before
    assert _ingested(butler) == {(1, 0)}


def test_simulate_twice_into_one_repository_keeps_the_first(tmp_path):
    repo = tmp_path / "sim"
    args = ["simulate", str(repo), "--detectors", "1", "--size", "256", "--visits", "1", "-j", "1"]
    runner = CliRunner()
    result = runner.invoke(butler_main, args)
    assert result.exit_code == 0, result.output
    before = _stored_files(repo)
    result = runner.invoke(butler_main, args)
    assert result.exit_code == 0, result.output
    assert "already" in result.output and "Traceback" not in result.output
    assert _stored_files(repo) == before
    butler = Butler(repo)
    for ref in butler.query_datasets(RAW_DATASET_TYPE, collections="SimCam/raw/all"):
        butler.get(ref)
    for ref in butler.query_datasets("gaia_dr2_20200414", collections="refcats"):
        butler.get(ref)
    result = runner.invoke(butler_main, [*args, "--seed", "2"])  # other pixels: refused
    assert result.exit_code == 1 and "differs" in result.output, result.output
    assert _stored_files(repo) == before
