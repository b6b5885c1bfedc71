"""The ``butler`` command line, run in-process through click and once as a real console script."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from butler import Butler
from butler.cli import main


def _run(*args: str, ok: bool = True):
    result = CliRunner().invoke(main, list(args))
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def repo(tmp_path):
    return make_cli_repo(str(tmp_path / "repo"))


def make_cli_repo(root: str) -> str:
    """Create a repository at ``root`` with run r1: img of visits 1, 2 x detectors 0-3."""
    _run("create", root)
    butler = Butler(root, run="r1")
    reg = butler.registry
    reg.insert_dimension_records("instrument", [{"name": "Cam"}])
    reg.insert_dimension_records(
        "detector", [{"instrument": "Cam", "id": d, "full_name": f"S{d}"} for d in range(4)]
    )
    reg.insert_dimension_records("band", [{"name": "r"}])
    reg.insert_dimension_records(
        "physical_filter", [{"instrument": "Cam", "name": "r1", "band": "r"}]
    )
    reg.insert_dimension_records(
        "visit", [{"instrument": "Cam", "id": v, "physical_filter": "r1"} for v in (1, 2)]
    )
    _run("register-dataset-type", root, "img", "NumpyArray", "visit", "detector")
    for v in (1, 2):
        for d in range(4):
            butler.put(np.full((2, 2), d, np.float32), "img", instrument="Cam", visit=v, detector=d)
    return root


def test_query_datasets_json_and_where(repo):
    result = _run(
        "query-datasets",
        repo,
        "img",
        "--collections",
        "r1",
        "--where",
        "visit = 2 AND detector >= 2",
        "--format",
        "json",
    )
    rows = json.loads(result.output)
    assert sorted((r["visit"], r["detector"]) for r in rows) == [(2, 2), (2, 3)]


def test_query_data_ids_and_records_csv(repo):
    result = _run(
        "query-data-ids",
        repo,
        "detector",
        "--where",
        "detector.full_name = 'S3'",
        "--format",
        "csv",
    )
    rows = list(csv.DictReader(result.output.splitlines()))
    assert rows == [{"instrument": "Cam", "detector": "3"}]
    result = _run("query-dimension-records", repo, "visit", "--format", "json")
    assert sorted(r["id"] for r in json.loads(result.output)) == [1, 2]


def test_where_syntax_error_shows_caret_and_exit_2(repo):
    result = _run(
        "query-datasets", repo, "img", "--collections", "r1", "--where", "visit = = 2", ok=False
    )
    assert result.exit_code == 2
    assert "^" in result.output and "Traceback" not in result.output


def test_injection_through_where_is_data(repo):
    result = _run(
        "query-datasets",
        repo,
        "img",
        "--collections",
        "r1",
        "--where",
        "detector.full_name = 'x'' OR 1=1 --'",
        "--format",
        "json",
    )
    assert json.loads(result.output) == []
    assert len(Butler(repo).query_datasets("img", collections="r1")) == 8


def test_collection_chain_and_query_collections(repo):
    _run("collection-chain", repo, "all", "r1")
    result = _run("query-collections", repo, "--format", "json")
    rows = {r["Name"]: r for r in json.loads(result.output)}
    assert rows["all"]["Type"] == "CHAINED" and rows["all"]["Children"] == "r1"


def test_remove_runs_and_unknown_collection(repo):
    _run("remove-runs", repo, "r1", "--no-confirm")
    result = _run("query-datasets", repo, "img", "--collections", "r1", ok=False)
    assert result.exit_code == 1 and "r1" in result.output


def test_ingest_files_and_retrieve(repo, tmp_path):
    for d in range(2):
        np.save(tmp_path / f"f{d}.npy", np.full((3, 3), d, np.float32))
    table = tmp_path / "files.csv"
    table.write_text(
        "file,visit,detector\n" + "".join(f"{tmp_path}/f{d}.npy,1,{d}\n" for d in range(2))
    )
    _run(
        "ingest-files",
        repo,
        "img",
        "ingested",
        str(table),
        "--data-id",
        "instrument=Cam",
        "--formatter",
        "butler.datastore.formatters.NpyFormatter",
    )
    data = Butler(repo).get("img", instrument="Cam", visit=1, detector=1, collections="ingested")
    assert data[0, 0] == 1
    _run("retrieve-artifacts", repo, str(tmp_path / "out"), "--collections", "ingested")
    assert len(list((tmp_path / "out").rglob("*.npy"))) == 2


def test_ingest_files_bad_row_names_line(repo, tmp_path):
    table = tmp_path / "bad.csv"
    table.write_text(f"file,visit\n{tmp_path}/x.npy,1\n")
    result = _run(
        "ingest-files", repo, "img", "ingested", str(table), "--data-id", "instrument=Cam", ok=False
    )
    assert result.exit_code == 1 and "bad.csv:2" in result.output and "detector" in result.output


def test_console_script(tmp_path):
    exe = shutil.which("butler") or str(
        __import__("pathlib").Path(__import__("sys").executable).parent / "butler"
    )
    out = subprocess.run(
        [exe, "create", str(tmp_path / "r")], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    out = subprocess.run(
        [exe, "query-collections", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        out.returncode == 1
        and "no butler repository" in out.stderr
        and "Traceback" not in out.stderr
    )


@pytest.mark.parametrize("transfer", ["move", "symlink", "hardlink", "direct"])
def test_ingest_files_from_inside_the_datastore_is_refused(repo, tmp_path, transfer):
    butler = Butler(repo)
    ref = butler.find_dataset("img", instrument="Cam", visit=1, detector=2, collections="r1")
    stored = butler.get_uri(ref)
    table = tmp_path / "files.csv"
    table.write_text(f"file,visit,detector\n{stored},1,2\n")
    result = _run(
        "ingest-files", repo, "img", "other", str(table), "--data-id", "instrument=Cam",
        "--transfer", transfer, ok=False,
    )  # fmt: skip
    assert result.exit_code == 1 and "inside the datastore root" in result.output
    assert "Traceback" not in result.output
    assert Butler(repo).get(ref)[0, 0] == 2  # still where its dataset says


def test_ingest_files_again_is_a_no_op(repo, tmp_path):
    np.save(tmp_path / "f.npy", np.full((3, 3), 7, np.float32))
    table = tmp_path / "files.csv"
    table.write_text(f"file,visit,detector\n{tmp_path}/f.npy,1,0\n")
    npy = "butler.datastore.formatters.NpyFormatter"
    args = ["ingest-files", repo, "img", "ingested", str(table), "--data-id", "instrument=Cam",
            "--formatter", npy, "--transfer", "move"]  # fmt: skip
    _run(*args)
    np.save(tmp_path / "f.npy", np.full((3, 3), 7, np.float32))
    result = _run(*args)
    assert "Ingested 0" in result.output and "1 file(s) already ingested" in result.output
    assert (tmp_path / "f.npy").exists()
    data = Butler(repo).get("img", instrument="Cam", visit=1, detector=0, collections="ingested")
    assert data[0, 0] == 7


@pytest.mark.parametrize("name", ["repo?x=1", "repo%3Fy", "a repo#1&b=2"])
def test_repository_path_is_a_path_whatever_its_characters(tmp_path, name):
    root = tmp_path / name
    result = _run("create", str(root))
    assert "Traceback" not in result.output
    assert (root / "registry.sqlite3").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing written beside it
    butler = Butler(root, run="r")
    butler.registry.insert_dimension_records("instrument", [{"name": "Cam"}])
    _run("register-dataset-type", str(root), "summary", "StructuredDataDict", "instrument")
    butler.put({"a": 1}, "summary", instrument="Cam")
    assert Butler(root).get("summary", instrument="Cam", collections="r") == {"a": 1}
    result = _run("query-datasets", str(root), "summary", "--collections", "r")
    assert "summary" in result.output
