"""`pipeline.execution.run.start_executor`: the local dask cluster of ``pipetask run -j N``
starts in a background thread while the caller builds the graph; `execute_graph` runs on
it when it is ready, and `close_started` closes it (also when it was never used)."""

from __future__ import annotations

from _exec_repo import make_graph, make_repo, registered

from butler import Butler
from pipeline.execution.run import close_started, execute_graph, start_executor


def test_cluster_starts_while_the_graph_is_built(tmp_path):
    repo = make_repo(tmp_path / "repo", n_visits=2, n_detectors=2)
    started = start_executor("dask", 2, None, None, False)
    assert not started.done()  # returned at once: the cluster starts in the background
    try:
        graph = make_graph(repo, run="out/1")  # meanwhile
        summary = execute_graph(Butler(repo), graph, executor=started, progress=False)
        assert summary.exit_code == 0, summary.failures
        executor = started.result()
        assert executor.parallelism() == 2
        assert executor.client.status == "running"  # execute_graph does not close it ...
    finally:
        close_started(started)
    assert executor.client.status == "closed"  # ... close_started does
    assert len(registered(Butler(repo), "out/1")["eb_out"]) == 4


def test_close_started_of_an_executor_that_failed_to_start():
    started = start_executor("dask", 0, None, None, False)  # a cluster without workers
    close_started(started)  # logs, does not raise
    assert isinstance(started.exception(), ValueError)
