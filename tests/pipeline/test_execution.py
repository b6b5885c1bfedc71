"""Worker side of an execution (outputs, failures, no work, metadata last), clustering, batching.

Executions use the synchronous executor on a small repository (4 visits x 8 detectors, tasks
a -> b per detector, c per visit); the batching test runs on a real 2-worker LocalCluster.
"""

from __future__ import annotations

import concurrent.futures
import errno
import os
import pickle
import sys
from pathlib import Path

import pytest
from _exec_repo import make_graph, make_repo, registered

from butler import Butler, FormatterError, RegistryFullError
from pipeline.execution.executors import DaskExecutor, schedule
from pipeline.execution.run import execute_graph
from pipeline.execution.worker import QuantumOutcome, WorkerCache, is_disk_full
from pipeline.graph.clustering import make_clusters


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "repo", n_visits=2, n_detectors=4)


def _key(data_id):
    return tuple(sorted(dict(data_id).items()))


def test_failure_after_a_put_leaves_nothing(repo):
    qg = make_graph(repo, run="out/pf", b_config={"failAfterPut": True}, tasks=("a", "b"))
    butler = Butler(repo)
    summary = execute_graph(butler, qg, executor="sync", progress=False)
    assert summary.exit_code == 1
    assert summary.counts["b"]["failed"] == 8 and summary.counts["a"]["succeeded"] == 8
    assert "failing after writing" in summary.failures[0]["message"]
    got = registered(butler, "out/pf")
    assert "eb_out" not in got and "b_metadata" not in got
    assert len(got["b_log"]) == 8  # the log, with the traceback, is kept
    for node in qg.node_ids("b"):
        ref = qg.get_quantum(node).outputs["out"][0]
        assert not Path(butler.datastore.uri(butler.datastore.predict(ref))).exists()
    log = butler.get(butler.registry.query_datasets("b_log", collections=["out/pf"])[0])
    assert any("RuntimeError" in (r["exc_text"] or "") for r in log)


def test_no_work_found_propagates_as_done_without_outputs(repo):
    qg = make_graph(repo, run="out/nw", a_config={"noWorkDetectors": [1]})
    butler = Butler(repo)
    summary = execute_graph(butler, qg, executor="sync", progress=False)
    assert summary.exit_code == 0
    assert summary.counts["a"]["no_work"] == 2 and summary.counts["b"]["no_work"] == 2
    assert summary.counts["c"]["succeeded"] == 2
    got = registered(butler, "out/nw")
    assert all(dict(k)["detector"] != 1 for k in got["ea_out"] | got["eb_out"])
    assert len(got["a_metadata"]) == 8 and len(got["b_metadata"]) == 8
    for ref in butler.registry.query_datasets("b_metadata", collections=["out/nw"]):
        quantum = butler.get(ref)["quantum"]
        assert quantum["status"] == ("no_work" if ref.data_id["detector"] == 1 else "succeeded")
        assert quantum["wall_time"] > 0.0 and quantum["cpu_time"] > 0.0
        if sys.platform.startswith("linux"):  # what was not CPU, split (process_usage)
            assert 0.0 <= quantum["run_queue_wait"] <= quantum["wall_time"]
            assert quantum["read_bytes"] >= 0 and quantum["write_bytes"] >= 0
    for ref in butler.registry.query_datasets("ec_out", collections=["out/nw"]):
        assert butler.get(ref)["n"] == 3  # the gather saw only the detectors that had work


def test_metadata_is_written_last(repo):
    qg = make_graph(repo, run="out/ml", tasks=("a", "b"))
    butler = Butler(repo)
    summary = execute_graph(butler, qg, executor="sync", clustering="off", progress=False)
    assert summary.exit_code == 0
    for node, outcome in summary.result.outcomes.items():
        quantum = qg.get_quantum(node)
        ids = [info.dataset_id for info in outcome.written]
        assert ids[-1] == quantum.metadata_ref.id and len(ids) == 3
        times = [os.stat(butler.datastore.uri(info)).st_mtime_ns for info in outcome.written]
        assert times[-1] == max(times)


def test_per_task_clustering(repo):
    qg = make_graph(repo, run="out/pt")
    clusters = make_clusters(qg, qg.node_ids(), "per_task:3")
    assert [len(c) for c in clusters] == [3, 3, 2, 3, 3, 2, 2]
    for cluster in clusters:
        assert len({qg.task_label_of(n) for n in cluster}) == 1
    assert sorted(n for c in clusters for n in c) == list(qg.node_ids())
    with pytest.raises(ValueError, match="positive integer"):
        make_clusters(qg, qg.node_ids(), "per_task:0")
    butler = Butler(repo)
    summary = execute_graph(butler, qg, executor="sync", clustering="per_task:3", progress=False)
    assert summary.exit_code == 0 and summary.total("succeeded") == len(qg)
    assert len(registered(butler, "out/pt")["ec_out"]) == 2


def test_changed_config_is_refused_unless_clobbered(repo):
    butler = Butler(repo)
    first = make_graph(repo, run="out/cfg", b_config={"offset": 1}, tasks=("a", "b"))
    assert execute_graph(butler, first, executor="sync", progress=False).exit_code == 0
    changed = make_graph(repo, run="out/cfg", b_config={"offset": 5}, tasks=("a", "b"))
    refused = execute_graph(butler, changed, executor="sync", progress=False)
    assert refused.exit_code == 2
    assert "task 'b'" in refused.error and "offset" in refused.error
    clobbered = execute_graph(
        butler, changed, executor="sync", clobber_outputs=True, progress=False
    )
    assert clobbered.exit_code == 0
    ref = butler.registry.query_datasets("b_config", collections=["out/cfg"])[0]
    assert butler.get(ref).offset == 5


def test_worker_cache_keys_on_config(repo):
    spec = Butler(repo).limited_spec()
    one = make_graph(repo, run="out/c1", b_config={"offset": 1}, tasks=("a", "b")).tasks["b"]
    two = make_graph(repo, run="out/c2", b_config={"offset": 2}, tasks=("a", "b")).tasks["b"]
    cache = WorkerCache()
    assert cache.butler(spec) is cache.butler(spec)
    task = cache.task(spec, one, {}, dict)
    assert cache.task(spec, one, {}, dict) is task
    other = cache.task(spec, two, {}, dict)
    assert other is not task and other.config.offset == 2
    cache.discard_task(spec, one, {})
    assert cache.task(spec, one, {}, dict) is not task


def test_batched_clusters_are_isolated():
    # 16 independent quanta, then 16 depends on 1 (which fails) and 17 on 0
    pred = {n: [] for n in range(16)} | {16: [1], 17: [0]}
    succ = {n: [] for n in range(16)} | {0: [17], 1: [16], 16: [], 17: []}
    calls = []

    def submit(nodes, attempt):
        calls.append(nodes)
        f = concurrent.futures.Future()
        f.set_result(
            [QuantumOutcome(n, "failed" if n == 1 else "succeeded", repeatable=True) for n in nodes]
        )
        return f

    result = schedule(
        [(n,) for n in range(18)], pred, succ, submit=submit, wait=list, parallelism=1
    )
    # 16 ready quanta, 1 worker, no duration known yet: 8 submissions of 2
    assert calls[:8] == [(2 * i, 2 * i + 1) for i in range(8)]
    assert result.status == {n: "succeeded" for n in range(18) if n not in (1, 16)} | {
        1: "failed",
        16: "blocked",
    }


def test_batch_size_follows_quantum_durations():
    from pipeline.execution.executors.base import BATCH_SECONDS, _batch_target

    # before any quantum has finished: eight submissions per worker
    assert _batch_target(12, 2, 64, None) == 1
    assert _batch_target(1000, 2, 64, None) == 62
    # long quanta are never batched; trivial ones up to max_batch, two batches per worker
    assert _batch_target(1000, 2, 64, 0.45) == 1
    assert _batch_target(1000, 2, 64, 0.001) == 64
    assert _batch_target(100, 2, 64, 0.001) == 25
    assert _batch_target(1000, 2, 64, BATCH_SECONDS / 10) == 10
    assert _batch_target(1000, 2, 64, 0.0) == 64


def test_a_wide_graph_of_long_quanta_is_not_sent_all_at_once():
    from pipeline.execution.executors.base import FIRST_WAVE_BATCHES

    # 378 independent chains of two 3-s quanta (a focal plane), 2 workers
    chains = [(2 * i, 2 * i + 1) for i in range(378)]
    pred = {b: [a] for a, b in chains} | {a: [] for a, _ in chains}
    succ = {a: [b] for a, b in chains} | {b: [] for _, b in chains}
    sent, out, sent_at_first_wait = [], [], []

    def submit(nodes, attempt):
        sent.append(nodes)
        f = concurrent.futures.Future()
        f.set_result([QuantumOutcome(n, "succeeded", wall_time=3.0) for n in nodes])
        out.append(f)
        return f

    def wait(handles):  # one submission ends at a time, the oldest first
        if not sent_at_first_wait:
            sent_at_first_wait.append(len(sent))
        return [min(handles, key=out.index)]

    result = schedule(chains, pred, succ, submit=submit, wait=wait, parallelism=2)
    assert len(result.status) == 756 and set(result.status.values()) == {"succeeded"}
    first_wave = sent[: sent_at_first_wait[0]]
    batch = 756 // (8 * 2) + 1  # an eighth of a worker's share, in whole chains
    assert {len(nodes) for nodes in first_wave} == {batch}
    assert sum(map(len, first_wave)) < FIRST_WAVE_BATCHES * 64 * 2 + batch  # not all 756
    # then sized by the durations seen: 3-s quanta go one chain per submission
    assert {len(nodes) for nodes in sent[len(first_wave) :]} == {2}


def test_batches_on_a_local_cluster(repo):
    qg = make_graph(repo, run="out/dask", tasks=("a", "b"))
    butler = Butler(repo)
    with DaskExecutor(jobs=2, dashboard_address=":0") as executor:
        assert executor.parallelism() == 2
        summary = execute_graph(butler, qg, executor=executor, clustering="off", progress=False)
        pids = executor.client.run(os.getpid)
    assert summary.exit_code == 0 and summary.total("succeeded") == 16
    assert {o.pid for o in summary.result.outcomes.values()} <= set(pids.values())
    assert len(registered(butler, "out/dask")["b_metadata"]) == 8


def test_payload_and_outcome_wire_forms_round_trip(repo):
    import uuid

    from butler.datastore.stored_file_info import StoredFileInfo
    from pipeline.execution.worker import decode_quanta, encode_cluster, share_tables

    qg = make_graph(repo, run="out/wire")
    shared, type_index = share_tables(
        qg.tasks,
        qg.dataset_types.values(),
        {label: qg.universe.group(info.dimensions) for label, info in qg.tasks.items()},
        {},
    )
    quanta = [qg.get_quantum(n) for n in qg.node_ids()]
    info = StoredFileInfo(uuid.uuid4(), "a/b.yaml", "f.F", "StructuredDataDict", 12)
    payload = pickle.loads(
        pickle.dumps(
            encode_cluster(
                quanta,
                [info],
                {info.dataset_id},
                shared=shared,
                type_index=type_index,
                attempt=2,
                execution_id="e",
            )
        )
    )
    tables = WorkerCache().tables(payload.execution_id, payload.shared)
    assert set(tables.tasks) == set(qg.tasks)
    assert decode_quanta(payload, tables) == quanta
    assert payload.missing == {info.dataset_id.bytes} and payload.attempt == 2
    outcome = QuantumOutcome(3, "succeeded", (info,), message="m", attempt=2, wall_time=0.5)
    assert pickle.loads(pickle.dumps(outcome)) == outcome


def test_a_full_disk_is_seen_through_the_exception_chain_and_travels_back():
    """A put's FormatterError raised from ENOSPC is a full disk; other errors are not."""
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as err:
            raise FormatterError("failed to write x") from err
    except FormatterError as err:
        wrapped = err
    assert is_disk_full(wrapped) and is_disk_full(RegistryFullError("the disk is full"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(FormatterError("bad value"))
    outcome = QuantumOutcome(3, "failed", disk_full=True)
    assert pickle.loads(pickle.dumps(outcome)).disk_full
