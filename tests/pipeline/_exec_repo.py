"""Shared fixture code of the execution tests: a small repository and graph builder."""

from __future__ import annotations

import hashlib
from pathlib import Path

from butler import Butler, DatasetType
from pipeline import Pipeline
from pipeline.graph.builder import build_quantum_graph

HERE = Path(__file__).parent


def make_repo(root, n_visits=4, n_detectors=8, *, registry_url=None, checksums=False):
    Butler.create(root, registry_url=registry_url, checksums=checksums)
    butler = Butler(root, run="raw/all")
    reg = butler.registry
    reg.insert_dimension_records(
        "instrument", [{"name": "Sim", "detector_max": 99, "visit_max": 999}]
    )
    reg.insert_dimension_records("band", [{"name": "r"}])
    reg.insert_dimension_records(
        "physical_filter", [{"instrument": "Sim", "name": "r_sim", "band": "r"}]
    )
    reg.insert_dimension_records(
        "detector",
        [{"instrument": "Sim", "id": d, "full_name": f"D{d}"} for d in range(n_detectors)],
    )
    reg.insert_dimension_records(
        "visit",
        [
            {"instrument": "Sim", "id": v, "physical_filter": "r_sim", "exposure_time": 30.0}
            for v in range(n_visits)
        ],
    )
    reg.register_dataset_type(
        DatasetType.make(
            "raw", ["instrument", "visit", "detector"], "StructuredDataDict", butler.universe
        )
    )
    for v in range(n_visits):
        for d in range(n_detectors):
            butler.put({"value": v * 100 + d}, "raw", instrument="Sim", visit=v, detector=d)
    return root


def pipeline_yaml(a_config=None, b_config=None, c_config=None, tasks=("a", "b", "c")):
    classes = {"a": "exec_tasks.ExecA", "b": "exec_tasks.ExecB", "c": "exec_tasks.ExecC"}
    configs = {"a": a_config, "b": b_config, "c": c_config}
    lines = ["description: execution tests", "tasks:"]
    for label in tasks:
        lines.append(f"  {label}:")
        lines.append(f"    class: {classes[label]}")
        if configs[label]:
            lines.append("    config:")
            items = ", ".join(f"{k}: {v!r}" for k, v in configs[label].items())
            lines.append("      - {" + items + "}")
    return "\n".join(lines) + "\n"


def make_graph(root, run="out/1", where="", **kwargs):
    butler = Butler(root)
    pipeline = Pipeline.from_string(pipeline_yaml(**kwargs))
    return build_quantum_graph(
        butler, pipeline.graph(), input_collections=["raw/all"], output_run=run, where=where
    )


def registered(butler, run):
    """Return {dataset type name: {data ID tuple}} of everything registered in ``run``."""
    out = {}
    for dtype in butler.registry.query_dataset_types():
        refs = butler.registry.query_datasets(dtype, collections=[run])
        if refs:
            out[dtype.name] = {tuple(sorted(r.data_id.required.items())) for r in refs}
    return out


def output_digests(butler, run, skip_suffixes=("_metadata", "_log")):
    out = {}
    for dtype in butler.registry.query_dataset_types():
        run_level = ("run_status", "packages", "quantum_graph")
        if dtype.name.endswith(skip_suffixes) or dtype.name in run_level:
            continue
        for ref in butler.registry.query_datasets(dtype, collections=[run]):
            path = butler.get_uri(ref)
            out[(dtype.name, tuple(sorted(ref.data_id.required.items())))] = hashlib.sha256(
                Path(path).read_bytes()
            ).hexdigest()
    return out
