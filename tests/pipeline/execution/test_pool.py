"""The process pool of ``pipetask run -j N`` (`pipeline.execution.executors.pool`): which runs
use it (the ``--executor auto`` rule), what it reports, and what it does when a worker dies.
The executions it shares with a dask cluster (failures, retries, resume, a worker killed
mid-quantum, same bytes as ``-j 1``, Ctrl-C, SIGTERM, --timeout, a full disk) are the
execution tests, run on both."""

from __future__ import annotations

import logging
import os
import signal

import pytest
from _exec_repo import make_graph, make_repo, registered

from butler import Butler
from pipeline.execution.executors.pool import ALLOWED_FAILURES, PoolExecutor, WorkerDiedError
from pipeline.execution.local_workers import executor_kind
from pipeline.execution.run import execute_graph


def test_auto_rule():
    assert executor_kind("auto", 1, None, None, False) == "sync"
    assert executor_kind("auto", 2, None, None, False) == "pool"
    assert executor_kind("auto", 2, "tcp://host:8786", None, False) == "dask"
    assert executor_kind("auto", 2, None, "local", False) == "dask"
    assert executor_kind("dask", 2, None, None, False) == "dask"
    assert executor_kind("pool", 2, None, None, True) == "sync"  # --pdb: in this process


def test_auto_runs_any_local_graph_on_the_pool(tmp_path, caplog):
    """``-j 2`` runs on the pool whatever the graph's size (a bigger one once went to dask)."""
    repo = make_repo(tmp_path / "repo", n_visits=1, n_detectors=4)
    graph = make_graph(repo, run="u/auto")
    with caplog.at_level(logging.INFO, logger="pipeline.execution.run"):
        summary = execute_graph(Butler(repo), graph, executor="auto", jobs=2, progress=False)
    assert summary.exit_code == 0, summary.failures
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("executing")]
    assert len(said) == 1 and "on a pool of 2" in said[0], said
    assert len(registered(Butler(repo), "u/auto")["eb_out"]) == 4


def _raise_value_error(text):
    raise ValueError(text)


def _unpicklable_error():
    class LocalError(Exception):
        pass

    raise LocalError("made inside a function")


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _pid():
    return os.getpid()


def test_errors_of_the_function_come_back_as_raised():
    with PoolExecutor(2) as pool:
        (first,) = pool.wait([pool.submit(_raise_value_error, "bad input")])
        with pytest.raises(ValueError, match="bad input"):
            first.result()
        (second,) = pool.wait([pool.submit(_unpicklable_error)])
        with pytest.raises(RuntimeError, match="LocalError: made inside a function"):
            second.result()


def test_a_worker_that_keeps_dying_fails_the_submission_and_is_replaced(caplog):
    with PoolExecutor(1) as pool:
        before = pool.wait([pool.submit(_pid)])[0].result()
        with caplog.at_level(logging.WARNING):
            (dying,) = pool.wait([pool.submit(_die)])
        with pytest.raises(WorkerDiedError, match=f"died {ALLOWED_FAILURES + 1} times"):
            dying.result()
        assert "signal 9" in caplog.text
        after = pool.wait([pool.submit(_pid)])[0].result()  # a new worker runs the next one
        assert after != before


def _rss():
    import psutil

    return psutil.Process().memory_info().rss


def _hold(n_bytes, seconds):
    import time

    import numpy as np

    block = np.ones(n_bytes, dtype=np.uint8)  # every page touched
    time.sleep(seconds)
    return int(block[-1])


def test_a_worker_over_its_memory_limit_is_killed_and_replaced(caplog):
    """As a dask nanny: a worker past 95% of its limit is killed; its submission runs again."""
    with PoolExecutor(1) as pool:
        start = pool.wait([pool.submit(_rss)])[0].result()
    limit = start + 300 * 2**20
    with PoolExecutor(1, memory_limit=limit) as pool:
        assert pool.wait([pool.submit(_hold, 10 * 2**20, 0.0)])[0].result() == 1  # within
        with caplog.at_level(logging.WARNING):
            (big,) = pool.wait([pool.submit(_hold, 600 * 2**20, 30.0)])
        with pytest.raises(WorkerDiedError, match="memory limit") as raised:
            big.result()
        assert f"died {ALLOWED_FAILURES + 1} times" in str(raised.value)
        assert caplog.text.count("over its memory limit") == ALLOWED_FAILURES + 1, caplog.text
        assert pool.wait([pool.submit(_hold, 10 * 2**20, 0.0)])[0].result() == 1  # replaced


def _sleep_and_return(seconds, value):
    import time

    time.sleep(seconds)
    return value


def test_the_next_submission_is_prefetched_once_before_it_runs():
    """While the worker runs one submission, the inputs of the one queued next are read."""
    seen = []
    with PoolExecutor(1, memory_limit=0) as pool:
        pool.prefetch_next(lambda seconds, value: seen.append(value))
        handles = [pool.submit(_sleep_and_return, 0.3, name) for name in "abc"]
        assert seen == ["b"]  # "a" went to the worker at once; "b" waits at the queue's head
        done = []
        while len(done) < 3:
            for handle in pool.wait([h for h in handles if h not in done]):
                done.append(handle)
                if handle.result() == "a":
                    assert seen == ["b", "c"]  # "b" taken by the worker: "c" is next
        assert [h.result() for h in done] == ["a", "b", "c"]
        assert seen == ["b", "c"]  # each once; nothing queued after "c"
        pool.prefetch_next(None)
        pool.wait([pool.submit(_sleep_and_return, 0.0, "d")])
        assert seen == ["b", "c"]


def test_workers_report_each_quantum_start_and_end(tmp_path):
    repo = make_repo(tmp_path / "repo", n_visits=1, n_detectors=4)
    graph = make_graph(repo, run="u/events")
    events = []
    with PoolExecutor(2) as pool:
        original = pool.watch_quanta

        def watch(callback):
            return original(lambda *event: (events.append(event), callback(*event)))

        pool.watch_quanta = watch
        summary = execute_graph(Butler(repo), graph, executor=pool, progress=True)
    assert summary.exit_code == 0
    nodes = set(graph.node_ids())
    assert {node for _, node, what in events if what == "start"} == nodes
    assert {node for _, node, what in events if what == "end"} == nodes
    assert {execution for execution, _, _ in events} == {summary.execution_id}


def test_pool_with_a_cluster_is_refused_in_one_line(tmp_path):
    from _faults import run_pipetask

    out = run_pipetask(
        "run", "-b", str(tmp_path), "-t", "exec_tasks.ExecA", "-j", "2",
        "--executor", "pool", "--cluster", "tcp://127.0.0.1:8786", timeout=60,
    )  # fmt: skip
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--executor pool" in lines[0] and "--cluster" in lines[0], lines
