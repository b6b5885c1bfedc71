"""LSST's butler commands on real repositories: prune-datasets, remove-collections,
remove-dataset-type, associate/disassociate, export/import, transfer-datasets, config-dump,
config-validate."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from butler import Butler
from butler.cli import main
from butler.registry import CollectionType
from butler.registry.regions import Region


def _run(*args, code: int = 0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    _run("create", root)
    butler = Butler(root, run="r1")
    reg = butler.registry
    reg.insert_dimension_records("instrument", [{"name": "Cam"}])
    reg.insert_dimension_records(
        "detector", [{"instrument": "Cam", "id": d, "full_name": f"S{d}"} for d in range(3)]
    )
    reg.insert_dimension_records("band", [{"name": "r"}])
    reg.insert_dimension_records(
        "physical_filter", [{"instrument": "Cam", "name": "r1", "band": "r"}]
    )
    reg.insert_dimension_records(
        "visit", [{"instrument": "Cam", "id": v, "physical_filter": "r1"} for v in (1, 2)]
    )
    reg.set_region(
        "visit", {"instrument": "Cam", "visit": 1},
        Region.polygon([(10, 0), (10.1, 0), (10.1, 0.1), (10, 0.1)]),
    )
    _run("register-dataset-type", root, "img", "NumpyArray", "visit", "detector")
    _run("register-dataset-type", root, "meta", "StructuredDataDict", "visit")
    for v in (1, 2):
        for d in range(3):
            butler.put(np.full((3, 3), 10 * v + d, np.float32), "img",
                       instrument="Cam", visit=v, detector=d)
    other = Butler(root, run="r2")
    other.put({"visit": 1, "note": "second run"}, "meta", instrument="Cam", visit=1)
    reg.register_collection("chain", CollectionType.CHAINED)
    reg.set_collection_chain("chain", ["r2", "r1"])
    return root


def _digest(path: Path) -> str:
    """sha256 of a file, or of a directory's files (zarr) with their relative paths."""
    sha = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for item in files:
        sha.update(str(item.relative_to(path) if path.is_dir() else "").encode())
        sha.update(item.read_bytes())
    return sha.hexdigest()


def _contents(root) -> dict[tuple, str]:
    """{(type, run, id, data ID): sha256 of the file's bytes} of every dataset."""
    butler = Butler(root, writeable=False)
    out = {}
    runs = [n for n, _ in butler.registry.query_collections(types=[CollectionType.RUN])]
    for dtype in butler.registry.query_dataset_types():
        for ref in butler.registry.query_datasets(dtype, collections=runs):
            digest = _digest(Path(butler.get_uri(ref).removeprefix("file://")))
            key = (dtype.name, ref.run, str(ref.id), tuple(sorted(ref.data_id.required.items())))
            out[key] = digest
    return out


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_export_import_gives_the_same_datasets_and_bytes(repo, tmp_path, fmt):
    out = tmp_path / "exported"
    _run("export", repo, out, "--collections", "r1,r2", "--format", fmt)
    description = (json.loads if fmt == "json" else yaml.safe_load)(
        (out / f"export.{fmt}").read_text()
    )
    assert len(description["datasets"]) == 7
    fresh = tmp_path / "fresh"
    _run("create", fresh)
    _run("import", fresh, out)
    assert _contents(fresh) == _contents(repo)
    imported = Butler(fresh, writeable=False)
    assert imported.registry.get_region("visit", {"instrument": "Cam", "visit": 1}) is not None
    ref = imported.registry.query_datasets("img", collections=["r1"], where="visit = 2")[0]
    assert np.all(imported.get(ref) == 20 + ref.data_id["detector"])
    again = _run("import", fresh, out)  # the same bytes again: nothing new, no error
    assert "Imported 0 dataset(s)" in again.output


def test_transfer_datasets_between_sqlite_repositories(repo, tmp_path):
    dest = tmp_path / "dest"
    _run("create", dest)
    _run("transfer-datasets", repo, dest, "--collections", "r1", "--datasets", "img",
         "--where", "detector = 2")
    moved = _contents(dest)
    assert len(moved) == 2 and set(moved.items()) <= set(_contents(repo).items())


def test_prune_datasets(repo):
    dry = _run("prune-datasets", repo, "r1", "--datasets", "img", "--where", "visit = 1",
               "--dry-run")
    assert "Would remove 3 dataset(s)" in dry.output
    assert len(_contents(repo)) == 7
    before = Butler(repo, writeable=False)
    uris = [before.get_uri(r) for r in
            before.registry.query_datasets("img", collections=["r1"], where="visit = 1")]
    _run("prune-datasets", repo, "r1", "--datasets", "img", "--where", "visit = 1", "--no-confirm")
    left = _contents(repo)
    assert len(left) == 4 and all(dict(k[3])["visit"] == 2 for k in left if k[0] == "img")
    assert not any(Path(u.removeprefix("file://")).exists() for u in uris)  # files gone too
    _run("prune-datasets", repo, code=2)  # no collection named: usage error


def test_remove_collections_and_dataset_type(repo):
    result = _run("remove-collections", repo, "r1", "--no-confirm", code=1)
    assert "remove-runs" in result.output
    _run("remove-collections", repo, "chain", "--no-confirm")
    names = {n for n, _ in Butler(repo, writeable=False).registry.query_collections()}
    assert names == {"r1", "r2"}
    used = _run("remove-dataset-type", repo, "meta", code=1)
    assert "still has 1 dataset" in used.output
    _run("remove-runs", repo, "r2", "--no-confirm")
    _run("remove-dataset-type", repo, "meta")
    types = {t.name for t in Butler(repo, writeable=False).registry.query_dataset_types()}
    assert types == {"img"}
    _run("remove-dataset-type", repo, "meta", code=1)  # not registered any more


def test_associate_and_disassociate_tagged_collection(repo):
    """Real datasets of two runs tagged, read back through the tag and a chain, untagged."""
    newer = Butler(repo, run="r3")
    newer.put(np.full((3, 3), -1, np.float32), "img", instrument="Cam", visit=1, detector=0)
    clash = _run("associate", repo, "best", "img", "--collections", "r3,r1", code=2)
    assert "--find-first" in clash.output
    _run("associate", repo, "best", "img", "-t", "meta", "--collections", "r3,r2,r1",
         "--where", "visit = 1", "--find-first")
    butler = Butler(repo, writeable=False)
    registry = butler.registry
    assert registry.get_collection_type("best") is CollectionType.TAGGED
    expected = [
        *registry.query_datasets("img", collections=["r3", "r1"], where="visit = 1"),
        *registry.query_datasets("meta", collections=["r2"]),
    ]
    tagged = [
        *registry.query_datasets("img", collections=["best"]),
        *registry.query_datasets("meta", collections=["best"]),
    ]
    assert tagged == expected and {r.run for r in tagged} == {"r1", "r2", "r3"}
    assert np.all(butler.get(tagged[0]) == -1)  # visit 1 detector 0 comes from r3
    assert butler.get("meta", instrument="Cam", visit=1, collections="best")["note"] == "second run"
    _run("collection-chain", repo, "view", "best,r1")
    through_chain = Butler(repo, writeable=False).registry.query_datasets(
        "img", collections=["view"]
    )
    assert [r.id for r in through_chain if r.data_id["visit"] == 1] == [r.id for r in tagged[:3]]
    assert {r.run for r in through_chain if r.data_id["visit"] == 2} == {"r1"}
    listed = _run("query-collections", repo, "best", "--format", "csv").output
    assert "best,TAGGED" in listed
    again = _run("associate", repo, "best", "img", "--collections", "r3,r1", "--find-first",
                 "--where", "visit = 1")
    assert "Associated 0 dataset(s)" in again.output
    out = _run("disassociate", repo, "best", "-t", "img", "--collections", "best",
               "--where", "detector = 0")
    assert "Disassociated 1 dataset(s)" in out.output
    left = Butler(repo, writeable=False).registry.query_datasets("img", collections=["best"])
    assert [r.data_id["detector"] for r in left] == [1, 2]
    assert _all_datasets(repo) == 8  # nothing removed from the runs
    _run("associate", repo, "r1", "img", "--collections", "r3", code=1)  # a RUN is not TAGGED
    _run("remove-collections", repo, "view,best", "--no-confirm")
    assert _all_datasets(repo) == 8


def _all_datasets(root) -> int:
    registry = Butler(root, writeable=False).registry
    return sum(
        len(registry.query_datasets(t, collections=["r1", "r2", "r3"], find_first=False))
        for t in registry.query_dataset_types()
    )


def test_config_dump_and_validate(repo, tmp_path):
    dumped = yaml.safe_load(_run("config-dump", repo).output)
    assert dumped["registry"]["db"].startswith("sqlite:///")
    assert yaml.safe_load(_run("config-dump", repo, "--subset", "datastore").output).keys() == {
        "datastore"
    }
    assert "No problems found." in _run("config-validate", repo).output
    config = yaml.safe_load((repo / "butler.yaml").read_text())
    config["datastore"]["formatters"] = {"img": "butler.no_such_module.Formatter"}
    (repo / "butler.yaml").write_text(yaml.safe_dump(config))
    bad = _run("config-validate", repo, code=1)
    assert "butler.no_such_module.Formatter" in bad.output


def test_transfer_datasets_sqlite_to_postgres_and_s3(repo, tmp_path, postgres_server,
                                                     postgres_url, s3_server, s3_bucket,
                                                     monkeypatch):
    """From a local SQLite repository into one with its registry on PostgreSQL and its files on
    an object store (real servers): same IDs, same data IDs, same values read back."""
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)  # never stored in butler.yaml
    dest = tmp_path / "remote"
    Butler.create(dest, registry_url=postgres_url, datastore_root=f"s3://{s3_bucket}/files",
                  storage_options={"endpoint_url": s3_server.endpoint_url})
    _run("transfer-datasets", repo, dest, "--collections", "r1,r2")
    source, target = Butler(repo, writeable=False), Butler(dest, writeable=False)
    for name, runs in (("img", ["r1"]), ("meta", ["r2"])):
        theirs = {r.id: r for r in source.registry.query_datasets(name, collections=runs)}
        ours = {r.id: r for r in target.registry.query_datasets(name, collections=runs)}
        assert ours.keys() == theirs.keys() and ours
        for dataset_id, ref in ours.items():
            assert ref.data_id == theirs[dataset_id].data_id
            assert target.get_uri(ref).startswith("s3://")
            assert np.all(np.asarray(target.get(ref)) == np.asarray(source.get(theirs[dataset_id])))
