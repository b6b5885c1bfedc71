"""The shipped LocalCluster spec works through cluster.get_client and execute_graph."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "pipeline"))
from _exec_repo import make_graph, make_repo, registered  # noqa: E402

from butler import Butler  # noqa: E402
from cluster import close_client, get_client, load_spec  # noqa: E402
from pipeline.run import execute_graph  # noqa: E402


def test_local_spec_runs_a_graph(tmp_path):
    repo = make_repo(tmp_path / "repo", n_visits=1, n_detectors=4)
    qg = make_graph(repo, run="out/local")
    summary = execute_graph(Butler(repo), qg, cluster_config="local", progress=False)
    assert summary.exit_code == 0
    assert len(registered(Butler(repo), "out/local")["ea_out"]) == 4


def test_missing_plugin_and_bad_spec(tmp_path):
    with pytest.raises(ImportError, match="dask-jobqueue"):
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
