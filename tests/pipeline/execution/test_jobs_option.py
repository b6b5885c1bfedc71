"""``-j 0`` and ``-j -1`` are refused at once (they used to start no worker and hang)."""

from __future__ import annotations

import pytest
from _exec_repo import make_graph, make_repo, pipeline_yaml
from _faults import run_pipetask

from butler import Butler
from pipeline.execution.run import execute_graph


@pytest.mark.parametrize("jobs", ["0", "-1"])
def test_pipetask_run_refuses_no_workers(tmp_path, jobs):
    repo = make_repo(tmp_path / "repo", n_visits=1, n_detectors=1)
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(pipeline_yaml())
    out = run_pipetask(
        "run",
        "-b",
        str(repo),
        "-p",
        str(pipe),
        "-i",
        "raw/all",
        "-o",
        "u/j",
        "-j",
        jobs,
        timeout=60,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "-j" in lines[0] and jobs in lines[0], out.stderr


def test_execute_graph_refuses_no_workers(tmp_path):
    repo = make_repo(tmp_path / "repo", n_visits=1, n_detectors=1)
    summary = execute_graph(Butler(repo), make_graph(repo), jobs=0, progress=False)
    assert summary.exit_code == 2 and "jobs" in summary.error
