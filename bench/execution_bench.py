"""Execution benchmark (draft)."""

from __future__ import annotations

from pathlib import Path

PIPELINE_AB = """
description: execution benchmark (A -> B per visit+detector)
tasks:
  a: bench._tasks.BenchA
  b: bench._tasks.BenchB
"""
N_DETECTORS = 100


def _make_repo(root: Path, n_data_ids: int) -> None:
    from butler import Butler, DatasetRef, DatasetType

    Butler.create(root)
    butler = Butler(root)
    reg = butler.registry
    n_visits = -(-n_data_ids // N_DETECTORS)
    reg.insert_dimension_records("instrument", [{"name": "Sim"}])
    reg.insert_dimension_records("band", [{"name": "r"}])
    reg.insert_dimension_records(
        "physical_filter", [{"instrument": "Sim", "name": "r_sim", "band": "r"}]
    )
    reg.insert_dimension_records(
        "detector", [{"instrument": "Sim", "id": d} for d in range(N_DETECTORS)]
    )
    reg.insert_dimension_records(
        "visit", [{"instrument": "Sim", "id": v, "physical_filter": "r_sim"} for v in range(n_visits)]
    )
    dtype = DatasetType.make("raw", ["visit", "detector"], "StructuredDataDict", butler.universe)
    reg.register_dataset_type(dtype)
    reg.register_run("raw")
    refs = [
        DatasetRef.make(dtype, {"instrument": "Sim", "visit": i // N_DETECTORS, "detector": i % N_DETECTORS}, "raw")
        for i in range(n_data_ids)
    ]
    infos = [butler.datastore.put({"v": i}, ref) for i, ref in enumerate(refs)]
    reg.insert_datasets(refs, infos)


def _build_graph(root: Path, run: str, yaml: str = PIPELINE_AB):
    from butler import Butler
    from pipeline import Pipeline
    from pipeline.graph_builder import build_quantum_graph

    graph = Pipeline.from_string(yaml).graph()
    return build_quantum_graph(Butler(root), graph, input_collections=["raw"], output_run=run)
