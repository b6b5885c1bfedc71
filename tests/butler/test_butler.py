"""The full Butler on a real repository: put/get, collections, runs, ingest, bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from butler import (
    Butler,
    CollectionType,
    DataIdError,
    DatasetNotFoundError,
    DatasetType,
    DuplicateDatasetError,
    InvalidNameError,
    MissingCollectionError,
    RepositoryNotFoundError,
    RepositoryVersionError,
)


def _populate(butler: Butler) -> None:
    reg = butler.registry
    reg.insert_dimension_records("instrument", [{"name": "Cam"}])
    reg.insert_dimension_records("band", [{"name": "g"}])
    reg.insert_dimension_records(
        "physical_filter", [{"instrument": "Cam", "name": "g1", "band": "g"}]
    )
    reg.insert_dimension_records("detector", [{"instrument": "Cam", "id": d} for d in range(3)])
    reg.insert_dimension_records(
        "visit", [{"instrument": "Cam", "id": v, "physical_filter": "g1"} for v in (10, 11)]
    )
    reg.register_dataset_type(
        DatasetType.make("img", ["visit", "detector"], "NumpyArray", butler.universe)
    )
    reg.register_dataset_type(
        DatasetType.make("summary", ["visit"], "StructuredDataDict", butler.universe)
    )


@pytest.fixture
def butler(tmp_path) -> Butler:
    Butler.create(tmp_path / "repo")
    b = Butler(tmp_path / "repo", run="run1")
    _populate(b)
    return b


def test_put_get_roundtrip_and_bbox(butler):
    image = np.arange(64 * 48, dtype=np.float32).reshape(48, 64)
    ref = butler.put(image, "img", instrument="Cam", visit=10, detector=1)
    np.testing.assert_array_equal(butler.get("img", instrument="Cam", visit=10, detector=1), image)
    cut = butler.get(
        "img", {"instrument": "Cam", "visit": 10, "detector": 1}, parameters={"bbox": (8, 4, 10, 6)}
    )
    np.testing.assert_array_equal(cut, image[4:10, 8:18])
    assert butler.get(ref).shape == image.shape
    # the file is where the datastore says, under the repository root
    uri = butler.get_uri(ref)
    assert uri.startswith(str(Path(butler.config.root)))


def test_duplicate_put_is_refused_and_nothing_changes(butler):
    butler.put({"n": 1}, "summary", instrument="Cam", visit=10)
    with pytest.raises(DuplicateDatasetError, match="already has a 'summary'"):
        butler.put({"n": 2}, "summary", instrument="Cam", visit=10)
    assert butler.get("summary", instrument="Cam", visit=10) == {"n": 1}


def test_deterministic_ids_across_runs(butler, tmp_path):
    ref1 = butler.put({"a": 1}, "summary", instrument="Cam", visit=11)
    other = Butler(butler.config.root, run="run2")
    ref2 = other.put({"a": 1}, "summary", instrument="Cam", visit=11)
    assert ref1.id != ref2.id  # run is part of the identity
    butler.remove_runs(["run2"])
    again = Butler(butler.config.root, run="run2").put(
        {"a": 1}, "summary", instrument="Cam", visit=11
    )
    assert again.id == ref2.id


def test_chained_collection_search_order(butler):
    butler.put({"v": "old"}, "summary", instrument="Cam", visit=10)
    new = Butler(butler.config.root, run="run2")
    new.put({"v": "new"}, "summary", instrument="Cam", visit=10)
    reg = butler.registry
    reg.register_collection("chain", CollectionType.CHAINED)
    reg.set_collection_chain("chain", ["run2", "run1"])
    assert butler.get("summary", instrument="Cam", visit=10, collections="chain") == {"v": "new"}
    reg.set_collection_chain("chain", ["run1", "run2"])
    assert butler.get("summary", instrument="Cam", visit=10, collections="chain") == {"v": "old"}
    refs = butler.query_datasets("summary", collections="chain", find_first=False)
    assert {r.run for r in refs} == {"run1", "run2"}


def test_query_datasets_where(butler):
    for v in (10, 11):
        for d in range(3):
            butler.put(np.zeros((2, 2), np.float32), "img", instrument="Cam", visit=v, detector=d)
    refs = butler.query_datasets("img", where="visit = 11 AND detector IN (0, 2)")
    assert sorted((r.data_id["visit"], r.data_id["detector"]) for r in refs) == [(11, 0), (11, 2)]
    refs = butler.query_datasets("img", where="detector > d", bind={"d": 0})
    assert len(refs) == 4


def test_remove_runs_removes_records_then_files(butler):
    ref = butler.put(np.ones((3, 3), np.float32), "img", instrument="Cam", visit=10, detector=0)
    path = butler.get_uri(ref)
    assert os.path.exists(path)
    assert butler.remove_runs(["run1"]) == 1
    assert not os.path.exists(path)
    with pytest.raises(MissingCollectionError):
        butler.registry.get_collection_type("run1")


def test_get_missing(butler):
    with pytest.raises(DatasetNotFoundError, match="no 'summary' dataset"):
        butler.get("summary", instrument="Cam", visit=11)


def test_data_id_errors_name_the_key(butler):
    with pytest.raises(DataIdError, match="detector"):
        butler.put(np.ones((2, 2), np.float32), "img", instrument="Cam", visit=10)
    with pytest.raises(DataIdError, match="did you mean 'visit'"):
        butler.put({"x": 1}, "summary", instrument="Cam", vist=10)


def test_names_escaping_the_datastore_are_refused(tmp_path):
    Butler.create(tmp_path / "r")
    with pytest.raises(InvalidNameError, match=r"\.\."):
        Butler(tmp_path / "r", run="../escape")
    with pytest.raises(InvalidNameError):
        Butler(tmp_path / "r", run="/abs/path")
    b = Butler(tmp_path / "r")
    with pytest.raises(InvalidNameError):
        DatasetType.make("../../x", [], "JsonDict", b.universe)


def test_unknown_repository_and_newer_version(tmp_path):
    with pytest.raises(RepositoryNotFoundError, match="no butler repository"):
        Butler(tmp_path / "nothing")
    Butler.create(tmp_path / "r")
    config = yaml.safe_load((tmp_path / "r" / "butler.yaml").read_text())
    config["version"] = 99
    (tmp_path / "r" / "butler.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(RepositoryVersionError, match="newer"):
        Butler(tmp_path / "r")


def test_failed_write_registers_nothing(butler):
    # an object of the wrong type fails in the datastore before anything is registered
    with pytest.raises(Exception, match="summary|dict|StructuredDataDict"):
        butler.put(np.zeros(3), "summary", instrument="Cam", visit=10)
    assert butler.query_datasets("summary") == []
    leftovers = [p for p in Path(butler.config.root).rglob("*") if ".tmp-" in p.name]
    assert leftovers == []


def test_ingest_all_or_nothing(butler, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("a: 1\n")
    missing = tmp_path / "missing.yaml"
    dtype = butler.registry.get_dataset_type("summary")
    from butler import DatasetRef

    items = [
        (DatasetRef.make(dtype, {"instrument": "Cam", "visit": 10}, "ingested"), str(good)),
        (DatasetRef.make(dtype, {"instrument": "Cam", "visit": 11}, "ingested"), str(missing)),
    ]
    with pytest.raises(Exception, match="missing"):
        butler.ingest(items, transfer="copy")
    assert butler.query_datasets("summary", collections=["run1"]) == []
    refs = butler.ingest(items[:1], transfer="copy")
    assert butler.get(refs[0]) == {"a": 1}
    assert good.exists()  # copied, not moved


def test_retrieve_artifacts(butler, tmp_path):
    ref = butler.put({"k": "v"}, "summary", instrument="Cam", visit=10)
    paths = butler.retrieve_artifacts([ref], tmp_path / "out")
    assert len(paths) == 1 and yaml.safe_load(Path(paths[0]).read_text()) == {"k": "v"}


@pytest.mark.parametrize(
    ("dataset_type", "data_id", "obj"),
    [
        ("summary", {"instrument": "Cam", "visit": 10}, {"n": 2}),  # a file
        ("img", {"instrument": "Cam", "visit": 10, "detector": 0}, np.ones((4, 5))),  # zarr dir
    ],
)
def test_put_never_replaces_an_unregistered_artifact(butler, dataset_type, data_id, obj):
    # What a concurrent put of the same dataset (or an interrupted one) leaves at the path.
    from butler import ArtifactExistsError, DatasetRef

    ref = DatasetRef.make(butler.registry.get_dataset_type(dataset_type), data_id, "run1")
    butler.registry.register_run("run1")
    theirs = butler.datastore.put({"n": 1} if dataset_type == "summary" else np.zeros((4, 5)), ref)
    path = Path(butler.datastore.uri(theirs))
    before = sorted((p.relative_to(path.parent), p.read_bytes()) for p in _files(path))
    with pytest.raises(ArtifactExistsError, match="already exists but is not registered"):
        butler.put(obj, dataset_type, data_id)
    after = sorted((p.relative_to(path.parent), p.read_bytes()) for p in _files(path))
    assert after == before  # their bytes untouched
    assert butler.registry.find_dataset(dataset_type, data_id, collections="run1") is None
    assert [p for p in path.parent.iterdir() if ".tmp-" in p.name] == []
    butler.datastore.remove(theirs)  # once it is gone, the put goes through
    butler.put(obj, dataset_type, data_id)
    np.testing.assert_equal(butler.get(dataset_type, data_id), obj)


def _files(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
