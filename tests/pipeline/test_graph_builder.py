"""Quantum graph building over a real SQLite repository, and graph files."""

from __future__ import annotations

import numpy as np
import pytest

from butler import Butler, DatasetType, StorageClass
from pipeline import Pipeline, TaskMetadata
from pipeline.graph.builder import EmptyGraphError, build_quantum_graph
from pipeline.graph.quantum_graph import QuantumGraph, QuantumGraphFileError

PIPELINE = """
description: three trivial tasks
tasks:
  a: trivial_tasks.TaskA
  b: trivial_tasks.TaskB
  c: trivial_tasks.TaskC
"""

N_VISITS = 3
N_DETECTORS = 4


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    Butler.create(root)
    butler = Butler(root, run="raw/all")
    reg = butler.registry
    reg.insert_dimension_records(
        "instrument", [{"name": "Sim", "detector_max": 9, "visit_max": 99}]
    )
    reg.insert_dimension_records("band", [{"name": "r"}])
    reg.insert_dimension_records(
        "physical_filter", [{"instrument": "Sim", "name": "r_sim", "band": "r"}]
    )
    reg.insert_dimension_records(
        "detector",
        [{"instrument": "Sim", "id": d, "full_name": f"D{d}"} for d in range(N_DETECTORS)],
    )
    reg.insert_dimension_records(
        "visit",
        [
            {"instrument": "Sim", "id": v, "physical_filter": "r_sim", "exposure_time": 30.0 + v}
            for v in range(N_VISITS)
        ],
    )
    reg.register_dataset_type(
        DatasetType.make("raw", ["instrument", "visit", "detector"], "NumpyArray", butler.universe)
    )
    for v in range(N_VISITS):
        for d in range(N_DETECTORS):
            if (v, d) == (2, 3):
                continue  # one missing raw
            butler.put(
                np.full((4, 4), v * 10 + d, dtype=np.float32),
                "raw",
                instrument="Sim",
                visit=v,
                detector=d,
            )
    return root


def _graph(pipeline_text: str = PIPELINE):
    return Pipeline.from_string(pipeline_text).graph()


def test_build_counts_and_edges(repo):
    butler = Butler(repo)
    qg = build_quantum_graph(butler, _graph(), input_collections=["raw/all"], output_run="out/1")
    assert qg.count("a") == N_VISITS * N_DETECTORS - 1
    assert qg.count("b") == N_VISITS * N_DETECTORS - 1
    assert qg.count("c") == N_VISITS
    assert len(qg) == qg.count("a") + qg.count("b") + qg.count("c")
    # every b depends on exactly the a of its data ID
    for node in qg.node_ids("b"):
        preds = qg.predecessors(node)
        assert len(preds) == 1
        assert qg.task_label_of(preds[0]) == "a"
        assert qg.data_id(preds[0]) == qg.data_id(node)
    # the gather of visit 2 reads the 3 detectors that exist
    c_nodes = {qg.data_id(n)["visit"]: n for n in qg.node_ids("c")}
    quantum = qg.get_quantum(c_nodes[2])
    assert len(quantum.inputs["inp"]) == N_DETECTORS - 1
    assert len(qg.predecessors(c_nodes[2])) == N_DETECTORS - 1
    # inputs from the butler carry their stored-file records
    a0 = qg.get_quantum(next(iter(qg.node_ids("a"))))
    (raw_ref,) = a0.inputs["inp"]
    assert qg.stored_info(raw_ref) is not None
    assert raw_ref == butler.find_dataset("raw", raw_ref.data_id, collections="raw/all")
    # outputs are predicted with deterministic IDs in the output run
    assert a0.metadata_ref.run == "out/1"
    assert a0.all_outputs()[-1].dataset_type.name == "a_metadata"


def test_where_and_empty_graph(repo):
    butler = Butler(repo)
    qg = build_quantum_graph(
        butler,
        _graph(),
        input_collections=["raw/all"],
        output_run="o",
        where="visit = 1 AND detector IN (0..2)",
    )
    assert qg.count("a") == 3 and qg.count("c") == 1
    with pytest.raises(EmptyGraphError, match="selects no data IDs"):
        build_quantum_graph(
            butler, _graph(), input_collections=["raw/all"], output_run="o", where="visit = 42"
        )


def test_save_load_roundtrip_and_partial(repo, tmp_path):
    butler = Butler(repo)
    qg = build_quantum_graph(butler, _graph(), input_collections=["raw/all"], output_run="out/1")
    path = tmp_path / "g.qgraph"
    qg.save(path)
    loaded = QuantumGraph.load(path)
    assert len(loaded) == len(qg)
    for node in qg.node_ids():
        assert loaded.get_quantum(node) == qg.get_quantum(node)
        assert loaded.predecessors(node) == qg.predecessors(node)
    c_node = next(iter(qg.node_ids("c")))
    partial = QuantumGraph.load(path, nodes=[c_node])
    assert partial.loaded_labels == ["c"]
    assert partial.get_quantum(c_node) == qg.get_quantum(c_node)
    with pytest.raises(KeyError, match="not loaded"):
        partial.get_quantum(0)


def test_truncated_and_foreign_files(repo, tmp_path):
    butler = Butler(repo)
    qg = build_quantum_graph(butler, _graph(), input_collections=["raw/all"], output_run="out/1")
    path = tmp_path / "g.qgraph"
    qg.save(path)
    data = path.read_bytes()
    (tmp_path / "t.qgraph").write_bytes(data[: len(data) - 10])
    with pytest.raises(QuantumGraphFileError, match="truncated"):
        QuantumGraph.load(tmp_path / "t.qgraph")
    (tmp_path / "v.qgraph").write_bytes(data[:10] + b"\x63\x00\x00\x00" + data[14:])
    with pytest.raises(QuantumGraphFileError, match="format version 99"):
        QuantumGraph.load(tmp_path / "v.qgraph")
    (tmp_path / "x.qgraph").write_bytes(b"not a graph at all, sorry")
    with pytest.raises(QuantumGraphFileError, match="not a skyquanta"):
        QuantumGraph.load(tmp_path / "x.qgraph")


def test_skip_existing_in(repo):
    butler = Butler(repo, run="out/1")
    butler.storage_classes.register(
        StorageClass("Image", "numpy.ndarray", "butler.datastore.formatters.NpyFormatter")
    )
    qg = build_quantum_graph(butler, _graph(), input_collections=["raw/all"], output_run="out/1")
    # pretend a(visit=0, detector=0) finished: register its output and metadata
    quantum = next(
        q for q in qg.iter_quanta("a") if q.data_id["visit"] == 0 and q.data_id["detector"] == 0
    )
    for ref in quantum.all_outputs():
        butler.registry.register_dataset_type(ref.dataset_type)
    butler.put(np.zeros((4, 4), np.float32), quantum.outputs["out"][0])
    butler.put(TaskMetadata(), quantum.metadata_ref)
    qg2 = build_quantum_graph(
        butler,
        _graph(),
        input_collections=["raw/all"],
        output_run="out/1",
        skip_existing_in=["out/1"],
    )
    assert qg2.count("a") == qg.count("a") - 1
    assert qg2.count("b") == qg.count("b")
    b_node = next(
        n
        for n in qg2.node_ids("b")
        if qg2.data_id(n)["visit"] == 0 and qg2.data_id(n)["detector"] == 0
    )
    assert qg2.predecessors(b_node) == []  # its input now comes from the butler
