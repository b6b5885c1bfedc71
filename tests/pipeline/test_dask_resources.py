"""Task resource hints on a real local dask cluster: honoured when possible, never a hang."""

from __future__ import annotations

import pytest
from _exec_repo import make_repo, registered

from butler import Butler
from pipeline import Pipeline
from pipeline.execution.executors.dask import DaskExecutor
from pipeline.execution.run import execute_graph
from pipeline.graph.builder import build_quantum_graph


@pytest.mark.timeout(120)
def test_resource_hints_run_and_are_capped(tmp_path, caplog):
    repo = make_repo(tmp_path / "repo", n_visits=1, n_detectors=4)
    pipeline = Pipeline.from_string(
        "tasks:\n"
        "  hungry:\n"
        "    class: resource_tasks.Hungry\n"
        "    config:\n"
        "      resources.numberOfCores: 4\n"
        "      resources.minMemoryMB: 64\n"
    )
    butler = Butler(repo)
    qg = build_quantum_graph(
        butler, pipeline.graph(), input_collections=["raw/all"], output_run="res"
    )
    executor = DaskExecutor(jobs=2, dashboard_address=None)
    try:
        advertised = [w["resources"] for w in executor.client.scheduler_info()["workers"].values()]
        assert all(r["cpus"] == 1.0 and r["memory_mb"] > 64 for r in advertised)
        with caplog.at_level("WARNING", logger="pipeline.execution.executors.dask"):
            summary = execute_graph(butler, qg, executor=executor, progress=False)
    finally:
        executor.close()
    assert summary.exit_code == 0
    assert len(registered(Butler(repo), "res")["hungry_out"]) == 4
    assert "'cpus'=4.0 exceeds every worker" in caplog.text  # capped to the workers' 1 core
