"""The shipped LocalCluster spec works through cluster.get_client and execute_graph."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "pipeline"))
from _exec_repo import make_graph, make_repo, registered  # noqa: E402

from butler import Butler  # noqa: E402
from cluster import close_client, get_client, load_spec  # noqa: E402
from pipeline.execution.run import execute_graph  # noqa: E402


def test_local_spec_runs_a_graph(tmp_path):
    repo = make_repo(tmp_path / "repo", n_visits=1, n_detectors=4)
    qg = make_graph(repo, run="out/local")
    summary = execute_graph(Butler(repo), qg, cluster_config="local", progress=False)
    assert summary.exit_code == 0
    assert len(registered(Butler(repo), "out/local")["ea_out"]) == 4


def test_missing_plugin_and_bad_spec(tmp_path, monkeypatch):
    # dask-jobqueue is installed with the test extra: make its import fail as if it were not
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)
    with pytest.raises(ImportError, match="pip install dask-jobqueue"):
        get_client("slurm")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: nope\n")
    with pytest.raises(ValueError, match="kind"):
        load_spec(bad)
    client = get_client("local")
    try:
        assert client.submit(sum, [1, 2]).result() == 3
    finally:
        close_client(client)


def _worker_settings():
    import os

    import dask

    return (
        dask.config.get("distributed.worker.profile.enabled"),
        os.environ.get("MALLOC_TRIM_THRESHOLD_"),
        dask.config.get("distributed.admin.tick.interval"),
    )


@pytest.mark.timeout(120)
def test_local_workers_skip_profiler_heap_trimming_and_fast_ticks(tmp_path):
    import os

    # dask's own default would hand workers MALLOC_TRIM_THRESHOLD_=65536; ours leaves what
    # this process has (normally nothing) to glibc.
    inherited = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    client = get_client("local")
    try:
        settings = set(client.run(_worker_settings).values())
        assert settings == {(False, inherited, "1s")}
    finally:
        close_client(client)
    spec = tmp_path / "profiled.yaml"
    spec.write_text(
        "kind: local\n"
        "options: {n_workers: 1, threads_per_worker: 1, dashboard_address: null}\n"
        "dask_config: {distributed.worker.profile.enabled: true}\n"
    )
    client = get_client(spec)
    try:
        assert {v[0] for v in client.run(_worker_settings).values()} == {True}
    finally:
        close_client(client)
