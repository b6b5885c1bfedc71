"""Gathers over an implied dimension: a (band, instrument) quantum reads the visits of its band."""

from __future__ import annotations

import numpy as np
import pytest

from butler import Butler, DatasetType
from pipeline import Pipeline
from pipeline.graph.builder import build_quantum_graph

PIPELINE = """
description: per-detector tasks, then one gather per band
tasks:
  a: trivial_tasks.TaskA
  b: trivial_tasks.TaskB
  perBand: band_gather_tasks.BandGather
"""

VISIT_BANDS = {0: "r", 1: "g", 2: "r", 3: "g", 4: "r"}
N_DETECTORS = 2


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    Butler.create(root)
    butler = Butler(root, run="raw/all")
    reg = butler.registry
    reg.insert_dimension_records(
        "instrument", [{"name": "Sim", "detector_max": 9, "visit_max": 99}]
    )
    reg.insert_dimension_records("band", [{"name": "r"}, {"name": "g"}, {"name": "i"}])
    reg.insert_dimension_records(
        "physical_filter",
        [{"instrument": "Sim", "name": f"{b}_sim", "band": b} for b in ("r", "g", "i")],
    )
    reg.insert_dimension_records(
        "detector",
        [{"instrument": "Sim", "id": d, "full_name": f"D{d}"} for d in range(N_DETECTORS)],
    )
    reg.insert_dimension_records(
        "visit",
        [
            {"instrument": "Sim", "id": v, "physical_filter": f"{b}_sim", "band": b}
            for v, b in VISIT_BANDS.items()
        ],
    )
    reg.register_dataset_type(
        DatasetType.make("raw", ["instrument", "visit", "detector"], "NumpyArray", butler.universe)
    )
    for v in VISIT_BANDS:
        for d in range(N_DETECTORS):
            butler.put(np.zeros((2, 2), np.float32), "raw", instrument="Sim", visit=v, detector=d)
    return root


def test_band_gather_reads_only_its_band(repo):
    butler = Butler(repo)
    qg = build_quantum_graph(
        butler,
        Pipeline.from_string(PIPELINE).graph(),
        input_collections=["raw/all"],
        output_run="out/1",
    )
    nodes = {qg.data_id(n)["band"]: n for n in qg.node_ids("perBand")}
    assert set(nodes) == {"r", "g"}  # no visit in band i: no quantum
    for band, node in nodes.items():
        quantum = qg.get_quantum(node)
        visits = sorted({ref.data_id["visit"] for ref in quantum.inputs["inp"]})
        assert visits == sorted(v for v, b in VISIT_BANDS.items() if b == band)
        assert len(quantum.inputs["inp"]) == len(visits) * N_DETECTORS
        assert len(qg.predecessors(node)) == len(visits) * N_DETECTORS


def test_band_gather_with_where(repo):
    butler = Butler(repo)
    qg = build_quantum_graph(
        butler,
        Pipeline.from_string(PIPELINE).graph(),
        input_collections=["raw/all"],
        output_run="out/1",
        where="visit IN (0, 1, 2) AND detector = 1",
    )
    nodes = {qg.data_id(n)["band"]: n for n in qg.node_ids("perBand")}
    refs = qg.get_quantum(nodes["r"]).inputs["inp"]
    assert sorted((r.data_id["visit"], r.data_id["detector"]) for r in refs) == [(0, 1), (2, 1)]
