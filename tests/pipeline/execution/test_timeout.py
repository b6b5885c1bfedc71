"""``pipetask run --timeout``: a quantum running too long fails, naming its task and data ID;
the others run, and the exit code is 1. Real tasks that sleep, on the pool of local worker
processes of ``-j 2`` and on a real local dask cluster."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from _exec_repo import make_graph, make_repo, pipeline_yaml, registered
from _faults import run_pipetask

from butler import Butler
from pipeline.execution.run import execute_graph


def _ids(butler, run, dataset_type):
    return {
        (dict(k)["visit"], dict(k)["detector"])
        for k in registered(butler, run).get(dataset_type, set())
    }


@pytest.mark.parametrize("executor", ["auto", "dask"])  # -j 2: the pool; a dask cluster
def test_a_quantum_over_the_timeout_fails_and_the_others_run(tmp_path, executor):
    repo = make_repo(tmp_path / "repo", n_visits=2, n_detectors=3)
    slow = tmp_path / "slow.txt"
    slow.write_text("1,2\n")
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(
        pipeline_yaml(a_config={"sleep": 60.0, "sleepFile": str(slow)}, tasks=("a", "b"))
    )
    start = time.monotonic()
    out = run_pipetask(
        "run", "-b", str(repo), "-p", str(pipe), "-i", "raw/all", "-o", "u/t", "-j", "2",
        "--timeout", "2", "--no-progress", "--executor", executor, timeout=120,
    )
    elapsed = time.monotonic() - start
    assert out.returncode == 1, out.stdout + out.stderr
    assert elapsed < 40, elapsed  # the 60 s quantum was stopped
    failed = " ".join(" ".join(out.stderr.split("\nfailed ")[1:]).split())  # rich wraps
    assert out.stderr.count("\nfailed ") == 1, out.stderr
    assert "QuantumTimeoutError: ran longer than --timeout 2 s: task 'a'" in failed
    assert "'visit': 1" in failed and "'detector': 2" in failed
    butler = Butler(repo, writeable=False)
    run = butler.registry.get_collection_chain("u/t")[0]
    everything = {(v, d) for v in range(2) for d in range(3)}
    assert _ids(butler, run, "ea_out") == everything - {(1, 2)}
    assert _ids(butler, run, "eb_out") == everything - {(1, 2)}  # b of (1, 2) is blocked
    assert (1, 2) in _ids(butler, run, "a_log")  # the failed quantum's log says why
    stored = [p.name for p in Path(repo).rglob("*") if "ea_out" in str(p) and "1_2" in p.name]
    assert not any("visit_1" in p and "detector_2" in p for p in stored)


def test_a_quantum_stuck_in_one_call_is_given_up_and_writes_nothing(tmp_path):
    """time.sleep(3) cannot be interrupted: after the grace period the quantum is abandoned,
    and when its thread wakes up (in this process: the in-process executor) nothing it
    writes is kept."""
    repo = make_repo(tmp_path / "repo", n_visits=1, n_detectors=2)
    slow = tmp_path / "slow.txt"
    slow.write_text("0,1\n")
    config = {"sleep": 3.0, "sleepFile": str(slow), "sleepBlocking": True}
    graph = make_graph(repo, run="u/stuck", a_config=config, tasks=("a",))
    start = time.monotonic()
    summary = execute_graph(Butler(repo), graph, executor="sync", timeout=0.3, progress=False)
    assert summary.exit_code == 1
    (failure,) = summary.failures
    assert failure["label"] == "a" and failure["data_id"]["detector"] == 1
    assert "did not stop" in failure["message"] and failure["error_type"].endswith("TimeoutError")
    butler = Butler(repo, writeable=False)
    assert _ids(butler, "u/stuck", "ea_out") == {(0, 0)}
    files = {p for p in Path(repo).rglob("*") if p.is_file()}
    time.sleep(max(0.0, 3.5 - (time.monotonic() - start)))  # the sleeper has woken up by now
    assert {p for p in Path(repo).rglob("*") if p.is_file()} == files
