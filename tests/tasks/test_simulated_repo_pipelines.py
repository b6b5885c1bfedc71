"""Pipelines on a simulated, ingested repository: characterizeImage through ``pipetask run``,
and reference-catalog shards found as spatial prerequisites."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("galsim")

from click.testing import CliRunner  # noqa: E402

from butler import Butler  # noqa: E402
from butler.cli import main as butler_main  # noqa: E402
from pipeline import Pipeline  # noqa: E402
from pipeline.graph.builder import build_quantum_graph  # noqa: E402

BIN = Path(sys.executable).parent
REFCAT = "gaia_dr2_20200414"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim") / "repo"
    png = root.parent / "detector0.png"
    result = CliRunner().invoke(
        butler_main,
        [
            "simulate",
            str(root),
            "--detectors",
            "4",
            "--size",
            "512",
            "--visits",
            "1",
            "-j",
            "1",
            "--star-density",
            "40000",
            "--png",
            str(png),
        ],
    )
    assert result.exit_code == 0, result.output
    assert png.stat().st_size > 20_000  # a picture a person can look at
    return root


PREREQ_PIPELINE = """
description: a task that reads the refcat shards overlapping each detector
tasks:
  shards: refcat_tasks.CountShards
"""


def test_refcat_shards_are_spatial_prerequisites(repo, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    butler = Butler(repo)
    graph = Pipeline.from_string(PREREQ_PIPELINE).graph()
    qg = build_quantum_graph(
        butler, graph, input_collections=["SimCam/raw/all", "refcats"], output_run="t"
    )
    assert qg.count("shards") == 4
    for quantum in qg.iter_quanta():
        shards = quantum.inputs["refcat"]
        assert shards, f"no refcat shard for {quantum.data_id}"
        expected = {
            r["healpix7"]
            for r in butler.query_data_ids(
                ["visit", "detector", "healpix7"], data_id=quantum.data_id.required
            )
        }
        assert {ref.data_id["healpix7"] for ref in shards} <= expected
        # the stars inside the detector's region are in the shards the quantum reads
        region = butler.registry.get_region("visit_detector_region", quantum.data_id.required)
        stars = np.concatenate([np.asarray(butler.get(ref)["id"]) for ref in shards])
        all_stars = [
            butler.get(ref) for ref in butler.query_datasets(REFCAT, collections="refcats")
        ]
        inside = [
            int(star_id)
            for table in all_stars
            for star_id, inside_flag in zip(
                table["id"],
                region.contains(np.asarray(table["ra"]), np.asarray(table["dec"])),
                strict=True,
            )
            if inside_flag
        ]
        assert set(inside) <= set(stars.tolist())


def test_characterize_through_pipetask_run(repo):
    """The default pipeline with ``--debug`` through ``pipetask run -j 2``, on 2 of the 4
    detectors (``-d``; with the debug pictures a detector's chain costs ~7 CPU s)."""
    out = subprocess.run(
        [
            str(BIN / "pipetask"),
            "--log-level",
            "WARNING",
            "run",
            "-b",
            str(repo),
            "-p",
            str(ROOT / "pipelines.yaml"),
            "-i",
            "SimCam/raw/all,SimCam/calib,refcats",
            "-o",
            "u/test/char",
            "-d",
            "detector IN (0, 1)",
            "-j",
            "2",
            "--no-progress",
            "--debug",
        ],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    butler = Butler(repo, collections="u/test/char")
    for name in (
        "icExp",
        "icSrc",
        "icExpBackground",
        "characterizeImage_metadata",
        "processBrightStars_metadata",
    ):
        assert len(butler.query_datasets(name)) == 2, name
    exposure = butler.get("icExp", instrument="SimCam", visit=100, detector=0)
    catalog = butler.get("icSrc", instrument="SimCam", visit=100, detector=0)
    assert exposure.psf is not None and exposure.mask.is_set("DETECTED").any()
    assert catalog["calib_psf_used"].sum() >= 3
    metadata = butler.get("characterizeImage_metadata", instrument="SimCam", visit=100, detector=0)
    assert metadata is not None
    pictures = list(Path(repo).rglob("debug/*.png"))
    assert len(pictures) >= 2 * 2  # every quantum wrote its debug stages
    report = subprocess.run(
        [str(BIN / "pipetask"), "report", "-b", str(repo), "u/test/char"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0 and "characterizeImage" in report.stdout


def test_default_pipeline_mocked_with_a_failure(repo):
    """--mock on the default pipeline: its whole graph wired (spatial refcat prerequisites, a
    gather by band) with no science; --mock-failure fails one detector and blocks the rest."""
    from pipeline.cli import main as pipetask_main

    base = ["run", "-b", str(repo), "-p", str(ROOT / "pipelines.yaml"), "-i",
            "SimCam/raw/all,SimCam/calib,refcats", "--no-progress", "--mock"]
    result = CliRunner().invoke(pipetask_main, [*base, "-o", "u/test/mock"])
    assert result.exit_code == 0, result.output
    butler = Butler(repo, writeable=False)
    run = butler.registry.get_collection_chain("u/test/mock")[0]
    names = {t.name for t in butler.registry.query_dataset_types()
             if butler.registry.query_datasets(t, collections=[run])}
    assert names - {"packages", "quantum_graph", "run_status"} == {
        n for n in names if n.startswith("_mock_")}
    assert not {"icExp", "brightStarStamps", "extended_psf"} & names
    for name, count in (("_mock_icExp", 4), ("_mock_brightStarStamps", 4),
                        ("_mock_extended_psf", 1), ("_mock_brightStarSubtracted_calexp", 4)):
        assert len(butler.query_datasets(name, collections=[run])) == count, name
    stamps = butler.get("_mock_brightStarStamps", instrument="SimCam", visit=100, detector=2,
                        collections=[run])
    read = {i["dataset_type"] for i in stamps["inputs"]}
    assert "_mock_icExp" in read and REFCAT in read  # the real refcat shards were read
    failed = CliRunner().invoke(pipetask_main, [
        *base, "-o", "u/test/mockfail", "--mock-failure",
        "processBrightStars:detector = 1:RuntimeError"])
    assert failed.exit_code == 1, failed.output
    assert "failed _mock_processBrightStars" in failed.output
    run = butler.registry.get_collection_chain("u/test/mockfail")[0]
    assert len(butler.query_datasets("_mock_brightStarStamps", collections=[run])) == 3
    assert not butler.query_datasets("_mock_extended_psf", collections=[run])  # blocked
