"""What a run shows while it runs: progress lines without a terminal, running vs queued,
the summary with --no-progress, and no dashboard link without bokeh."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from _exec_repo import make_graph, make_repo, pipeline_yaml

from pipeline.execution.progress import Progress
from pipeline.execution.progress_lines import ProgressLines

HERE = Path(__file__).parent
PIPETASK = str(Path(sys.executable).parent / "pipetask")


def _pipetask(*args, env_extra=None):
    env = dict(os.environ, PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env.update(env_extra or {})
    return subprocess.run([PIPETASK, *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)


def test_progress_lines_without_a_terminal(tmp_path):
    repo = make_repo(tmp_path / "repo", n_visits=1, n_detectors=4)
    pipe = tmp_path / "slow.yaml"
    pipe.write_text(pipeline_yaml(a_config={"sleep": 0.4}, tasks=("a", "b")))
    out = _pipetask("run", "-b", repo, "-p", pipe, "-i", "raw/all", "-o", "u/p",
                    "--executor", "sync", env_extra={"SKYQUANTA_PROGRESS_INTERVAL": "0.3"})
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("progress ")]
    assert len(lines) >= 3, out.stderr  # every 0.3 s over >= 1.6 s, plus the final line
    assert "\x1b[" not in out.stderr.split("execution")[0]  # no terminal redraws
    final = lines[-1]
    assert re.search(r"\| 8/8 done \(100%\)", final), final
    assert "quanta/s" in final and "ETA 0:00:00" in final and "a 4/4" in final and "b 4/4" in final
    middle = [line for line in lines if "/8 done" in line and "8/8" not in line]
    assert middle and re.search(r"ETA (\d+:\d\d:\d\d|\?)", middle[0])


def test_no_progress_still_prints_summary_and_failures(tmp_path):
    repo = make_repo(tmp_path / "repo", n_visits=1, n_detectors=2)
    fail = tmp_path / "fail.txt"
    fail.write_text("0,1\n")
    pipe = tmp_path / "fail.yaml"
    pipe.write_text(pipeline_yaml(a_config={"failFile": str(fail)}, tasks=("a",)))
    out = _pipetask("run", "-b", repo, "-p", pipe, "-i", "raw/all", "-o", "u/f",
                    "--executor", "sync", "--no-progress")
    assert out.returncode == 1
    assert "progress " not in out.stderr  # the live display is off
    assert "succeeded" in out.stderr and "injected failure for 0,1" in out.stderr


class _Graph:
    """The two things `Progress` reads of a quantum graph: its task labels and their counts."""

    tasks = {"a": None, "b": None}

    def count(self, label):
        return 6 if label == "a" else 4


def test_running_is_at_most_the_parallelism():
    label_of = {n: ("a" if n < 6 else "b") for n in range(10)}.__getitem__
    progress = Progress(_Graph(), False, None, label_of, parallelism=2)
    for node in range(10):
        progress.set(node, "running")
    rows, totals = progress.snapshot()
    assert totals["running"] == 2 and totals["queued"] == 8
    assert rows["a"]["running"] == 2 and rows["b"]["running"] == 0 and rows["b"]["queued"] == 4
    progress.set(0, "succeeded")
    progress.set(1, "failed")
    rows, totals = progress.snapshot()
    assert (totals["done"], totals["failed"], totals["running"], totals["queued"]) == (1, 1, 2, 6)
    line = ProgressLines(progress, 1.0).line()
    assert "1/10 done (10%)" in line and "running 2, queued 6, failed 1" in line


def test_dashboard_link_only_with_bokeh():
    progress = Progress(_Graph(), False, "http://127.0.0.1:8787/status", str)
    has_bokeh = importlib.util.find_spec("bokeh") is not None
    assert (progress.dashboard is not None) == has_bokeh


def test_progress_with_a_real_graph_counts_every_quantum(tmp_path):
    root = make_repo(tmp_path / "repo", n_visits=1, n_detectors=3)
    graph = make_graph(root, tasks=("a", "b"))
    nodes = list(graph.node_ids())
    progress = Progress(graph, False, None, graph.task_label_of, parallelism=1)
    for node in nodes:
        progress.set(node, "running")
    assert progress.snapshot()[1] == {
        "done": 0, "running": 1, "queued": 5, "failed": 0, "blocked": 0, "total": 6
    }


def test_running_counts_what_workers_report():
    label_of = {n: ("a" if n < 6 else "b") for n in range(10)}.__getitem__
    progress = Progress(_Graph(), False, None, label_of, parallelism=2)
    progress.reported = True
    for node in range(10):
        progress.set(node, "running")
    assert progress.snapshot()[1]["running"] == 0  # submitted, not started: queued
    progress.quantum_event(7, "start")
    rows, totals = progress.snapshot()
    assert (totals["running"], totals["queued"]) == (1, 9) and rows["b"]["running"] == 1
    progress.quantum_event(7, "end")
    progress.set(7, "succeeded")
    progress.quantum_event(7, "start")  # a late report of a finished quantum is ignored
    assert progress.snapshot()[1]["running"] == 0


class _TimedLines:
    """Standard error that keeps each progress line with the time it was written."""

    def __init__(self):
        self.lines = []

    def write(self, text):
        for line in text.splitlines():
            if line.startswith("progress "):
                self.lines.append((time.monotonic(), line))
        return len(text)

    def flush(self):
        pass


def test_running_is_what_runs_on_a_real_local_cluster(tmp_path, monkeypatch):
    """-j 2 with one worker thread kept busy by another dask task: at most one quantum runs
    then, and "running" says 1 (the estimate said 2); never more than the 2 worker threads."""
    from butler import Butler
    from pipeline.execution.executors.dask import DaskExecutor
    from pipeline.execution.run import execute_graph

    repo = make_repo(tmp_path / "repo", n_visits=1, n_detectors=8)
    graph = make_graph(repo, run="u/running", a_config={"sleep": 0.3}, tasks=("a",))
    monkeypatch.setenv("SKYQUANTA_PROGRESS_INTERVAL", "0.1")
    stderr = _TimedLines()
    with DaskExecutor(jobs=2, dashboard_address=None) as executor:
        assert executor.parallelism() == 2
        busy = executor.client.submit(time.sleep, 5.0, pure=False)
        while not any(executor.client.processing().values()):
            time.sleep(0.02)
        busy_until = time.monotonic() + 4.5  # it started no later than now
        monkeypatch.setattr(sys, "stderr", stderr)
        summary = execute_graph(Butler(repo), graph, executor=executor, progress=True)
        monkeypatch.undo()
        busy.result()
    assert summary.exit_code == 0
    running = [(t, int(re.search(r"running (\d+),", line).group(1))) for t, line in stderr.lines]
    assert max(n for _, n in running) <= 2
    while_busy = [n for t, n in running if t < busy_until]
    assert len(while_busy) >= 5, running
    assert max(while_busy) == 1, running
