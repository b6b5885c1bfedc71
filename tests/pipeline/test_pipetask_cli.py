"""The ``pipetask`` command line end to end, as a user runs it (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _exec_repo import make_repo, pipeline_yaml, registered

from butler import Butler

HERE = Path(__file__).parent
PIPETASK = str(Path(sys.executable).parent / "pipetask")


def _pipetask(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.run(
        [PIPETASK, "--log-level", "WARNING", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture
def setup(tmp_path):
    repo = make_repo(tmp_path / "repo", n_visits=2, n_detectors=3)
    fail = tmp_path / "fail.txt"
    fail.write_text("1,2\n")
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(pipeline_yaml(a_config={"failFile": str(fail)}))
    return repo, pipe, fail


def test_build_show_and_bad_pipeline(setup, tmp_path):
    repo, pipe, _ = setup
    out = _pipetask("build", "-p", str(pipe), "--show", "config=b", "-c", "b:offset=7")
    assert out.returncode == 0, out.stderr
    assert "offset: 7" in out.stdout
    out = _pipetask("build", "-p", str(pipe), "-c", "b:ofset=7")
    assert out.returncode == 2 and "offset" in out.stderr and "Traceback" not in out.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  a: [unclosed\n")
    out = _pipetask("build", "-p", str(bad))
    assert out.returncode == 2 and "bad.yaml" in out.stderr and "Traceback" not in out.stderr


def test_qgraph_save_and_empty_where(setup, tmp_path):
    repo, pipe, _ = setup
    graph = tmp_path / "g.qgraph"
    out = _pipetask(
        "qgraph",
        "-b",
        str(repo),
        "-p",
        str(pipe),
        "-i",
        "raw/all",
        "-o",
        "out",
        "--save-qgraph",
        str(graph),
        "-d",
        "visit = 1",
    )
    assert out.returncode == 0, out.stderr
    assert "7 quanta" in out.stdout and graph.exists()  # 3 a + 3 b + 1 c
    out = _pipetask(
        "qgraph", "-b", str(repo), "-p", str(pipe), "-i", "raw/all", "-o", "out", "-d", "visit = 9"
    )
    assert out.returncode == 2 and "selects no data IDs" in (out.stdout + out.stderr)


def test_run_fail_resume_report(setup, tmp_path):
    repo, pipe, fail = setup
    args = ["-b", str(repo), "-p", str(pipe), "-i", "raw/all", "-o", "u/test", "--no-progress"]
    out = _pipetask("run", *args, "--executor", "sync")
    assert out.returncode == 1, (
        out.stdout + out.stderr
    )  # one quantum failed, its dependents blocked
    report_file = tmp_path / "report.json"
    out = _pipetask("report", "-b", str(repo), "u/test", "--full-output-filename", str(report_file))
    assert out.returncode == 0, out.stderr
    report = json.loads(report_file.read_text())
    text = json.dumps(report)
    assert "a" in report["tasks"] and report["tasks"]["a"]["failed"] == 1
    assert "visit" in text
    # fix the cause and resume: only the failed and blocked quanta run, then nothing is left
    fail.write_text("")
    out = _pipetask(
        "run",
        "-b",
        str(repo),
        "-p",
        str(pipe),
        "-o",
        "u/test",
        "--resume",
        "--no-progress",
        "--executor",
        "sync",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    butler = Butler(repo)
    run = butler.registry.get_collection_chain("u/test")[0]
    got = registered(butler, run)
    assert (
        len(got["a_metadata"]) == 6 and len(got["b_metadata"]) == 6 and len(got["c_metadata"]) == 2
    )
    out = _pipetask(
        "run",
        "-b",
        str(repo),
        "-p",
        str(pipe),
        "-o",
        "u/test",
        "--resume",
        "--no-progress",
        "--executor",
        "sync",
    )
    assert out.returncode == 0 and "othing to do" in out.stdout, out.stdout + out.stderr


def test_run_on_local_dask_cluster(setup):
    repo, pipe, fail = setup
    fail.write_text("")
    out = _pipetask(
        "run",
        "-b",
        str(repo),
        "-p",
        str(pipe),
        "-i",
        "raw/all",
        "--output-run",
        "dask/run",
        "-j",
        "2",
        "--no-progress",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    got = registered(Butler(repo), "dask/run")
    assert len(got["eb_out"]) == 6 and len(got["ec_out"]) == 2


def test_changed_config_is_refused_with_diff(setup):
    repo, pipe, fail = setup
    fail.write_text("")
    base = [
        "-b",
        str(repo),
        "-p",
        str(pipe),
        "-i",
        "raw/all",
        "--output-run",
        "cfg/run",
        "--no-progress",
        "--executor",
        "sync",
    ]
    assert _pipetask("run", *base).returncode == 0
    out = _pipetask("run", *base, "--extend-run", "--skip-existing", "-c", "b:offset=5")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "offset" in (out.stdout + out.stderr)


def test_qgraph_show_and_drawings(setup, tmp_path):
    repo, pipe, _ = setup
    dot, mermaid = tmp_path / "g.dot", tmp_path / "g.mmd"
    out = _pipetask(
        "qgraph",
        "-b",
        str(repo),
        "-p",
        str(pipe),
        "-i",
        "raw/all",
        "--output-run",
        "o/1",
        "-d",
        "visit = 0 AND detector IN (0, 1)",
        "--show",
        "graph",
        "--show",
        "workflow",
        "--show",
        "uri",
        "--qgraph-dot",
        str(dot),
        "--qgraph-mermaid",
        str(mermaid),
    )
    assert out.returncode == 0, out.stderr
    # 2 a + 2 b + 1 c; workflow lines are "pred -> node" edges: a->b twice, b->c twice
    assert "5 quanta" in out.stdout
    edges = [line for line in out.stdout.splitlines() if "->" in line and "node" not in line]
    assert len(edges) == 4
    assert "eb_out" in out.stdout and "o/1" in out.stdout  # predicted output URIs
    assert dot.read_text().count("->") == 4 and mermaid.read_text().startswith("flowchart")
    saved = tmp_path / "pipe_saved.yaml"
    dots = tmp_path / "pipe.dot"
    out = _pipetask("build", "-p", str(pipe), "-s", str(saved), "--pipeline-dot", str(dots))
    assert out.returncode == 0, out.stderr
    assert "exec_tasks.ExecA" in saved.read_text() and "digraph" in dots.read_text()


def test_where_out_of_range_is_bad_input(setup):
    """An integer the registry cannot hold is exit 2 with one line, for qgraph and run -d."""
    repo, pipe, _ = setup
    base = ["-b", str(repo), "-p", str(pipe), "-i", "raw/all", "-o", "u/big"]
    for command in ("qgraph", "run"):
        out = _pipetask(command, *base, "-d", "visit = 99999999999999999999999")
        assert out.returncode == 2, (out.returncode, out.stderr)
        assert "out of range" in out.stderr and "Traceback" not in out.stderr
