"""characterizeImage -> processBrightStars through ``pipetask run`` on a simulated repository.

Raws are written without DETORIEN/DETFPX/DETFPY, so the detector geometry can only come from the
registered camera; the run is killed part-way and finished with ``--resume``.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("galsim")

from astropy.io import fits  # noqa: E402

from butler import Butler  # noqa: E402
from imaging.geometry import Box  # noqa: E402
from imaging.ingest import ingest_raws, ingest_refcat, register_instrument  # noqa: E402
from imaging.refcat import propagate_positions  # noqa: E402
from imaging.sim import SkyModel, Visit, make_camera, write_simulated_observations  # noqa: E402
from imaging.sim.simulate import SimOptions  # noqa: E402

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
REFCAT = "gaia_dr2_20200414"
MAG_LIMIT = 16.0
OUTPUT = "u/test/bright"
# the stamp mosaics only: `--debug` would also draw characterizeImage's 8 pictures per quantum
# (half the run's time); `pipetask run --debug` is tested in test_simulated_repo_pipelines.py
STAMP_PICTURES = ("-c", "processBrightStars:debugStages=[stamps]")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    base = tmp_path_factory.mktemp("bright")
    camera = make_camera(4, detector_size=400)
    visits = [
        Visit(id=200 + i, band="r", ra=150.0 + 0.02 * i, dec=2.0, mjd=60000.0 + i)
        for i in range(2)
    ]
    sky = SkyModel(star_density=20000, bright_star_density=3000, galaxy_density=500)
    raws = write_simulated_observations(
        base / "staging",
        camera,
        visits,
        seed=21,
        sky=sky,
        options=SimOptions(halo_threshold=0.0, cr_rate=0.3, n_bad_columns=1),
    )
    for raw in raws:  # a user's raws: no detector geometry in the header
        with fits.open(raw, mode="update") as hdul:
            for key in ("DETORIEN", "DETFPX", "DETFPY"):
                del hdul[0].header[key]
    root = base / "repo"
    Butler.create(root)
    butler = Butler(root)
    register_instrument(butler, camera)
    register_instrument(butler, camera)  # idempotent
    ingest_raws(butler, raws, transfer="copy")
    ingest_refcat(butler, REFCAT, base / "staging" / "refcat.fits")
    return root, camera


def _pipetask(repo, *extra, jobs="2"):
    return [
        str(BIN / "pipetask"),
        "--log-level",
        "WARNING",
        "run",
        "-b",
        str(repo),
        "-p",
        # the bright-star steps only: this test is about their stamps and their resume
        f"{ROOT / 'pipelines.yaml'}#brightStars",
        "-o",
        OUTPUT,
        "-j",
        jobs,
        "--no-progress",
        "-c",
        f"processBrightStars:magLimit={MAG_LIMIT}",
        *extra,
    ]


def _expected(butler, exposure):
    refcat = [butler.get(ref) for ref in butler.query_datasets(REFCAT, collections="refcats")]
    epoch = 2000.0 + (exposure.visit.mjd - 51544.5) / 365.25
    ids = set()
    for table in refcat:
        ra, dec = propagate_positions(table, epoch)
        x, y = exposure.wcs.all_world2pix(ra, dec, 0)
        for i in np.nonzero(np.asarray(table["phot_g_mean_mag"]) < MAG_LIMIT)[0]:
            nx, ny = math.floor(x[i] + 0.5), math.floor(y[i] + 0.5)
            if not exposure.bbox.intersection(Box(nx - 125, ny - 125, 250, 250)).is_empty():
                ids.add(int(table["id"][i]))
    return ids


def test_pipeline_killed_then_resumed(repo):
    root, camera = repo
    inputs = ["-i", "SimCam/raw/all,SimCam/calib,refcats"]
    proc = subprocess.Popen(
        _pipetask(root, *inputs, *STAMP_PICTURES),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            done = [p for p in root.rglob("*") if "characterizeImage_metadata" in p.as_posix()]
            if len(done) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # the client and the workers it started
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    butler = Butler(root, collections=OUTPUT)
    assert len(butler.query_datasets("processBrightStars_metadata")) < 8
    resumed = subprocess.run(  # in-process this time: no second cluster start-up
        _pipetask(root, "--resume", *STAMP_PICTURES, "--executor", "sync", jobs="1"),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    butler = Butler(root, collections=OUTPUT)
    for name in ("icExp", "icSrc", "characterizeImage_metadata", "processBrightStars_metadata"):
        assert len(butler.query_datasets(name)) == 8, name
    with_stamps = without = 0
    for visit in (200, 201):
        for det in camera.detectors:
            data_id = {"instrument": "SimCam", "visit": visit, "detector": det.id}
            exposure = butler.get("icExp", data_id)
            # geometry from the registered camera, not from the (stripped) header
            assert exposure.detector.orientation == det.orientation
            assert exposure.detector.focal_plane_position == det.focal_plane_position
            expected = _expected(butler, exposure)
            # stars beside the detector whose warped stamp kept no valid pixel: dropped
            metadata = butler.get("processBrightStars_metadata", data_id)
            empty = metadata.getScalar("processBrightStars.noDataStarCount")
            found = butler.query_datasets("brightStarStamps", data_id=data_id)
            if len(expected) == empty:
                assert not found, data_id  # no star qualifies: no dataset, quantum done
                without += 1
                continue
            stamps = butler.get(found[0])
            ids = set(stamps.getGaiaIds())
            assert ids <= expected and len(expected - ids) == empty, data_id
            for stamp in stamps:
                image, mask = stamp.stamp_im.image, stamp.stamp_im.mask
                assert (np.isfinite(image) & ~mask.is_set("NO_DATA")).any(), data_id
            assert stamps.nb90Rots == int(det.orientation) // 90
            assert stamps[0].stamp_im.image.shape == (275, 275)
            with_stamps += 1
    assert with_stamps >= 2 and without >= 1, (with_stamps, without)
    mosaics = list(root.rglob("debug/*brightStarStamps.png"))
    assert len(mosaics) >= with_stamps
