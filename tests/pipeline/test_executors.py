"""The scheduling loop on literal graphs, and executions on a real dask LocalCluster."""

from __future__ import annotations

import concurrent.futures

import pytest
from _exec_repo import make_graph, make_repo, registered

from butler import Butler
from pipeline.execution.executors import DaskExecutor, schedule
from pipeline.execution.executors.pool import PoolExecutor
from pipeline.execution.report import make_report
from pipeline.execution.run import execute_graph
from pipeline.execution.worker import QuantumOutcome

# -- the loop on a literal graph: 0 -> 1 -> 3, 0 -> 2 -> 3, 4 alone -----------------------------

PRED = {0: [], 1: [0], 2: [0], 3: [1, 2], 4: []}
SUCC = {0: [1, 2], 1: [3], 2: [3], 3: [], 4: []}


def _run(clusters, fail, retries=0, repeatable=False):
    calls = []

    def submit(nodes, attempt):
        calls.append((nodes, attempt))
        out, dead = [], False
        for n in nodes:
            if dead:
                out.append(QuantumOutcome(n, "blocked", attempt=attempt))
            elif fail.get(n, 0) >= attempt:
                out.append(QuantumOutcome(n, "failed", repeatable=repeatable, attempt=attempt))
                dead = True
            else:
                out.append(QuantumOutcome(n, "succeeded", attempt=attempt))
        f = concurrent.futures.Future()
        f.set_result(out)
        return f

    result = schedule(clusters, PRED, SUCC, submit=submit, wait=list, retries=retries)
    return result, calls


def test_loop_order_and_blocking():
    result, calls = _run([(0,), (1,), (2,), (3,), (4,)], fail={1: 1})
    assert result.status == {
        0: "succeeded", 1: "failed", 2: "succeeded", 3: "blocked", 4: "succeeded"
    }
    assert result.blocked_by == {3: 1}
    assert (3,) not in [c for c, _ in calls]
    done_before = [c[0][0] for c in calls]
    assert done_before.index(0) < done_before.index(1)


def test_loop_retries_and_repeatable():
    result, calls = _run([(0, 1), (2,), (3,), (4,)], fail={1: 1}, retries=1)
    assert set(result.status.values()) == {"succeeded"}
    assert ((1,), 2) in calls  # only the failed node of the chain is resubmitted
    result, calls = _run([(0, 1), (2,), (3,), (4,)], fail={1: 1}, retries=3, repeatable=True)
    assert result.status[1] == "failed" and result.status[3] == "blocked"
    assert not any(a > 1 for _, a in calls)


def test_loop_infrastructure_error_is_retried():
    state = {"n": 0}

    def submit(nodes, attempt):
        f = concurrent.futures.Future()
        state["n"] += 1
        if nodes == (4,) and attempt == 1:
            f.set_exception(OSError("worker lost"))
        else:
            f.set_result([QuantumOutcome(n, "succeeded", attempt=attempt) for n in nodes])
        return f

    clusters = [(0,), (1,), (2,), (3,), (4,)]
    result = schedule(clusters, PRED, SUCC, submit=submit, wait=list, retries=1)
    assert result.attempts[4] == 2 and result.status[4] == "succeeded"
    result = schedule([(4,)], PRED, SUCC, submit=submit, wait=list, retries=0)
    assert result.status[4] == "failed"
    assert "worker lost" in result.outcomes[4].message


# -- on a real LocalCluster ------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["dask", "pool"])
def dask_executor(request):
    """A -j 2 local executor: a dask LocalCluster, and the process pool of small local runs."""
    executor = DaskExecutor(jobs=2) if request.param == "dask" else PoolExecutor(2)
    yield executor
    executor.close()


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "repo", n_visits=4, n_detectors=8)


def _execution_ids(butler, run, label):
    dtype = butler.registry.get_dataset_type(f"{label}_metadata")
    return {
        tuple(sorted(r.data_id.required.items())): butler.get(r)["quantum"]
        for r in butler.registry.query_datasets(dtype, collections=[run])
    }


def test_failure_blocking_and_resume_on_local_cluster(repo, tmp_path, dask_executor):
    fail = tmp_path / "fail.txt"
    fail.write_text("1,3\n")
    qg = make_graph(repo, run="out/f", a_config={"failFile": str(fail)})
    butler = Butler(repo)
    summary = execute_graph(butler, qg, executor=dask_executor, retries=1, progress=False)
    assert summary.exit_code == 1
    assert summary.counts["a"]["failed"] == 1 and summary.counts["a"]["succeeded"] == 31
    assert summary.counts["b"]["blocked"] == 1 and summary.counts["c"]["blocked"] == 1
    assert summary.counts["c"]["succeeded"] == 3
    (failure,) = summary.failures
    assert failure["data_id"]["visit"] == 1 and failure["data_id"]["detector"] == 3
    assert failure["attempts"] == 2  # retried once, then failed for good
    report = make_report(butler, "out/f", qg)
    assert report.tasks["a"]["failed"] == 1 and report.tasks["b"]["blocked"] == 1
    assert report.errors["a"][0]["error"] == "RuntimeError: injected failure for 1,3"
    first = {label: _execution_ids(butler, "out/f", label) for label in "abc"}
    # fix the cause and resume: only the failed and blocked quanta run
    fail.unlink()
    again = execute_graph(butler, qg, executor=dask_executor, progress=False)
    assert again.exit_code == 0
    assert again.total("succeeded") == 3 and again.total("skipped") == len(qg) - 3
    for label in "abc":
        now = _execution_ids(butler, "out/f", label)
        rerun = {k for k, v in now.items() if v["execution_id"] == again.execution_id}
        assert len(rerun) == 1
        assert all(now[k] == first[label][k] for k in first[label])
    # nothing to do is a success
    assert execute_graph(butler, qg, executor=dask_executor, progress=False).exit_code == 0


def test_worker_killed_mid_quantum(repo, tmp_path, dask_executor):
    kill = tmp_path / "kill"
    kill.write_text("x")
    qg = make_graph(repo, run="out/k", b_config={"killFile": str(kill)})
    butler = Butler(repo)
    summary = execute_graph(
        butler, qg, executor=dask_executor, retries=2, clustering="off", progress=False
    )
    assert not kill.exists()  # a worker did die
    assert summary.exit_code == 0, summary.failures
    got = registered(butler, "out/k")
    assert len(got["b_metadata"]) == 32 and len(got["eb_out"]) == 32 and len(got["ec_out"]) == 4
    metas = _execution_ids(butler, "out/k", "b")
    assert all(m["execution_id"] == summary.execution_id for m in metas.values())


def test_repeatable_error_is_not_retried(repo, tmp_path):
    fail = tmp_path / "fail.txt"
    fail.write_text("2\n")
    qg = make_graph(repo, run="out/r", c_config={"failFile": str(fail), "repeatable": True})
    summary = execute_graph(Butler(repo), qg, executor="sync", retries=3, progress=False)
    assert summary.exit_code == 1
    assert summary.failures[0]["attempts"] == 1
    assert summary.failures[0]["error_type"] == "pipeline._errors.RepeatableQuantumError"


def test_closing_heartbeat_filter_drops_only_the_shutdown_race():
    import logging
    from types import SimpleNamespace

    from distributed.core import Status

    from pipeline.execution.executors.dask import ClosingHeartbeatFilter

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("distributed.worker", logging.ERROR, "w.py", 1, message, (), None)

    heartbeat = record("Failed to communicate with scheduler during heartbeat.")
    other = record("Unexpected exception during heartbeat. Closing worker.")
    worker = SimpleNamespace(status=Status.running)
    quiet = ClosingHeartbeatFilter(worker)
    assert quiet.filter(heartbeat) and quiet.filter(other)  # a running worker: kept
    for status in (Status.closing, Status.closed):
        worker.status = status
        assert not quiet.filter(heartbeat)  # the race of a closing worker: dropped
        assert quiet.filter(other)
