"""The one scheduling loop shared by every executor.

Design
------
`schedule` runs clusters of quanta (see `pipeline.graph.clustering`) through two injected callables:
``submit(nodes, attempt) -> handle`` starts a cluster somewhere (in-process, on a dask worker)
and ``wait(handles) -> done handles`` blocks until at least one has finished; a handle's
``result()`` returns the cluster's `QuantumOutcome` list or raises an infrastructure error
(a killed worker, a lost connection). The loop itself never runs a task.

Algorithm, on node-level dependencies:

- a cluster is *ready* when every predecessor of its pending nodes is either in the cluster or
  done (succeeded, no work, or complete before the run); ready clusters go to a FIFO queue and
  are submitted at once (the executor's workers bound the concurrency);
- each finished cluster reports one outcome per node; done nodes are handed to ``on_outcomes``
  (which registers their outputs), then clusters holding their successors are re-checked;
- with ``parallelism``, the clusters ready at one time are independent of each other, so
  several are sent as one submission (a batch: their nodes concatenated, each cluster in
  order); a worker blocks a node only on a failed *input*, so one cluster's failure does not
  touch another's nodes in the batch. A batch is one worker's until it ends, so batches are
  kept to about `BATCH_SECONDS` of work (from the wall times of the quanta seen so far) and,
  until a quantum has finished, to an eighth of a worker's share of the ready quanta (and
  at most `FIRST_WAVE_BATCHES` full batches per worker are sent before then): 12
  quanta of 0.45 s on 2 workers went out as 4 batches of 3 and left a worker idle for up to
  a quantum at the end (0.87 of the 1 -> 2 worker scaling of bare processes), while trivial
  quanta still travel 64 to a submission;
- a failed node is retried (its cluster resubmitted with its unfinished nodes) while its
  attempts are at most ``retries + 1``, unless the error is repeatable; an infrastructure
  error counts as a failed attempt of every pending node of the cluster;
- a node that fails for good marks all its transitive successors ``blocked`` and the loop
  keeps running everything else.

Mutable state (all local to one `schedule` call): ``status`` per node, ``pending`` nodes per
cluster, ``attempts`` per cluster, the ready queue, and the running handles (each -> the
clusters it runs).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from ..worker import QuantumOutcome, QuantumStatus

__all__ = ["ExecutionResult", "Executor", "ExecutorLostError", "schedule"]

RUNNING = "running"

#: Seconds between two calls of an executor's ``wait(handles, poll)`` to ``poll``: how soon a
#: stop signal noted by the client ends the wait (`~pipeline.execution.interrupts`).
WAIT_POLL_SECONDS = 0.2


class ExecutorLostError(RuntimeError):
    """The executor itself is gone (e.g. the dask scheduler died): nothing more can run."""


@dataclasses.dataclass
class ExecutionResult:
    """Final state of every node a `schedule` call was given.

    Parameters
    ----------
    status : `dict` [`int`, `str`]
        Node -> `QuantumStatus` value (succeeded, no_work, failed, blocked).
    outcomes : `dict` [`int`, `QuantumOutcome`]
        Node -> last outcome (absent for blocked nodes never run).
    attempts : `dict` [`int`, `int`]
        Node -> number of attempts made.
    blocked_by : `dict` [`int`, `int`]
        Blocked node -> a failed node it depends on.
    """

    status: dict[int, str]
    outcomes: dict[int, QuantumOutcome]
    attempts: dict[int, int]
    blocked_by: dict[int, int]


def _infra_outcome(node: int, err: BaseException, attempt: int) -> QuantumOutcome:
    import traceback

    return QuantumOutcome(
        node,
        QuantumStatus.FAILED,
        error_type=f"{type(err).__module__}.{type(err).__qualname__}",
        message=f"execution infrastructure error: {err}",
        traceback="".join(traceback.format_exception(err)),
        repeatable=False,
        attempt=attempt,
    )


def schedule(
    clusters: Sequence[Sequence[int]],
    predecessors: Mapping[int, Collection[int]],
    successors: Mapping[int, Collection[int]],
    *,
    submit: Callable[[tuple[int, ...], int], Any],
    wait: Callable[[list[Any]], Iterable[Any]],
    on_outcomes: Callable[[list[QuantumOutcome]], None] = lambda outcomes: None,
    on_status: Callable[[int, str], None] = lambda node, status: None,
    retries: int = 0,
    parallelism: int = 0,
    max_batch: int = 64,
) -> ExecutionResult:
    """Run clusters in dependency order, retrying and blocking as needed.

    Parameters
    ----------
    clusters : sequence of sequence of `int`
        The clusters; together they hold every node to run, each once.
    predecessors, successors : mapping of `int` to collection of `int`
        Node dependencies; nodes not in any cluster count as done.
    submit : callable
        ``submit(nodes, attempt)`` starts running ``nodes`` (in order; one cluster or the
        concatenation of a batch of independent clusters) and returns a handle
        whose ``result()`` gives one `QuantumOutcome` per node or raises.
    wait : callable
        ``wait(handles)`` blocks until at least one handle is finished and returns those.
    on_outcomes : callable, optional
        Receives the outcomes of a finished attempt (done and failed nodes alike) before
        dependents are submitted; the client registers outputs here.
    on_status : callable, optional
        ``on_status(node, status)`` on every change: running, succeeded, no_work, failed,
        blocked, and ``retry`` when a failed node will be tried again.
    retries : `int`
        How many times a failed node may be retried (repeatable errors never are).
    parallelism : `int`
        Workers that run submissions at once; 0 submits every cluster on its own. Otherwise
        ready clusters (independent of each other, same attempt) are batched into one
        submission of up to ``max_batch`` quanta, about ``ready quanta / (2 * parallelism)``,
        so a wide graph pays the executor's per-task overhead once per batch.
    max_batch : `int`
        Most quanta in one batched submission.

    Returns
    -------
    result : `ExecutionResult`
    """
    cluster_of = {node: i for i, nodes in enumerate(clusters) for node in nodes}
    pending = [list(nodes) for nodes in clusters]
    status: dict[int, str] = {}
    outcomes: dict[int, QuantumOutcome] = {}
    attempts_of: dict[int, int] = {}
    blocked_by: dict[int, int] = {}
    attempts = [0] * len(clusters)
    queued = [False] * len(clusters)
    ready: collections.deque[int] = collections.deque()
    running: dict[Any, list[int]] = {}

    def is_done(node: int) -> bool:
        return node not in cluster_of or status.get(node) in QuantumStatus.DONE

    def check(index: int) -> None:
        nodes = pending[index]
        if queued[index] or not nodes:
            return
        inside = set(nodes)
        if all(p in inside or is_done(p) for n in nodes for p in predecessors.get(n, ())):
            queued[index] = True
            ready.append(index)

    def block_from(failed: int) -> None:
        stack = list(successors.get(failed, ()))
        while stack:
            node = stack.pop()
            if node not in cluster_of or status.get(node) == QuantumStatus.BLOCKED:
                continue
            status[node] = QuantumStatus.BLOCKED
            blocked_by[node] = failed
            on_status(node, QuantumStatus.BLOCKED)
            index = cluster_of[node]
            if node in pending[index]:
                pending[index].remove(node)
            stack.extend(successors.get(node, ()))

    for index in range(len(clusters)):
        check(index)

    def next_submission() -> list[int]:
        """Pop one cluster, or a batch of independent ready clusters of the same attempt."""
        first = ready.popleft()
        batch, size = [first], len(pending[first])
        while ready and size < target and attempts[ready[0]] == attempts[first]:
            index = ready.popleft()
            batch.append(index)
            size += len(pending[index])
        return batch

    target = 1
    seen_quanta, seen_seconds = 0, 0.0  # wall times of the finished quanta
    while ready or running:
        if parallelism > 0 and ready:
            target = _batch_target(
                sum(len(pending[i]) for i in ready),
                parallelism,
                max_batch,
                seen_seconds / seen_quanta if seen_quanta else None,
            )
        while ready:
            if (
                parallelism > 0
                and not seen_quanta
                and sum(len(pending[i]) for b in running.values() for i in b)
                >= FIRST_WAVE_BATCHES * max_batch * parallelism
            ):
                break  # the rest waits for a duration to size its batches by
            batch = next_submission()
            nodes = tuple(n for index in batch for n in pending[index])
            for index in batch:
                attempts[index] += 1
            for node in nodes:
                attempts_of[node] = attempts[cluster_of[node]]
                status[node] = RUNNING
                on_status(node, RUNNING)
            running[submit(nodes, attempts[batch[0]])] = batch
        for handle in wait(list(running)):
            batch = running.pop(handle)
            nodes = tuple(n for index in batch for n in pending[index])
            try:
                results = list(handle.result())
            except Exception as err:
                results = [_infra_outcome(node, err, attempts[cluster_of[node]]) for node in nodes]
            on_outcomes(results)
            seen_quanta += len(results)
            seen_seconds += sum(outcome.wall_time for outcome in results)
            final_failures: list[int] = []
            for outcome in results:
                node = outcome.node_id
                outcomes[node] = outcome
                if outcome.status in QuantumStatus.DONE:
                    status[node] = outcome.status
                    on_status(node, outcome.status)
                elif outcome.status == QuantumStatus.FAILED:
                    if outcome.repeatable or attempts[cluster_of[node]] > retries:
                        status[node] = QuantumStatus.FAILED
                        on_status(node, QuantumStatus.FAILED)
                        final_failures.append(node)
                    else:
                        on_status(node, "retry")
                # else: blocked inside the cluster by a node that failed before it: retried
            for index in batch:
                pending[index] = [n for n in pending[index] if status.get(n) == RUNNING]
            for node in final_failures:
                block_from(node)
            for index in batch:
                for node in pending[index]:
                    status[node] = "retry"
                queued[index] = False
                check(index)
            touched = {
                cluster_of[s] for n in nodes for s in successors.get(n, ()) if s in cluster_of
            }
            for other in sorted(touched - set(batch)):
                check(other)
    for node in cluster_of:  # anything never reached (cannot happen with a valid graph)
        final = (*QuantumStatus.DONE, QuantumStatus.FAILED, QuantumStatus.BLOCKED)
        if status.get(node) not in final:
            status[node] = QuantumStatus.BLOCKED
    return ExecutionResult(status, outcomes, attempts_of, blocked_by)


#: Work (seconds of quanta, by their mean wall time so far) that one batch is kept to.
BATCH_SECONDS = 0.2
#: Until a quantum has finished, at most this many full batches per worker are out: a wide
#: graph of long quanta (a focal plane: 378 detector chains of ~5 s) otherwise leaves in
#: 16 batches of ~23 chains before any duration is known, and a worker that ends its last
#: batch waits up to a batch (~2 min) for the other; held back, the rest goes out sized by
#: the durations seen (one chain per submission for such quanta).
FIRST_WAVE_BATCHES = 2


def _batch_target(
    ready_quanta: int, parallelism: int, max_batch: int, mean_seconds: float | None
) -> int:
    """Return how many quanta to put in one submission (see the module notes).

    With no quantum finished yet (``mean_seconds`` `None`), aim at eight submissions per
    worker; once quanta have finished, at two, each of at most `BATCH_SECONDS` of work.
    """
    if mean_seconds is None:
        return max(1, min(max_batch, ready_quanta // (8 * parallelism)))
    by_time = int(BATCH_SECONDS / mean_seconds) if mean_seconds > 0 else max_batch
    return max(1, min(max_batch, ready_quanta // (2 * parallelism), by_time))


class Executor:
    """Base of the executors: how clusters are submitted and waited for.

    Subclasses implement `submit` and `wait` (and optionally `close`); `execute` runs the
    shared `schedule` loop with them.
    """

    #: Link to a live dashboard, if the executor has one.
    dashboard_link: str | None = None

    def submit(
        self, fn: Callable[..., Any], *args: Any, resources: dict[str, float] | None = None
    ) -> Any:
        """Start ``fn(*args)`` and return a handle with ``result()``.

        Parameters
        ----------
        fn : callable
            What to run (`~pipeline.execution.worker.run_quantum_cluster`).
        *args
            Its arguments (small: specs and payloads, never datasets).
        resources : `dict` [`str`, `float`], optional
            Abstract resources the call needs (dask worker resources); `None` for none.
        """
        raise NotImplementedError

    def parallelism(self) -> int:
        """Return how many submissions run at once (0: do not batch clusters)."""
        return 0

    def run_options(self) -> dict[str, Any]:
        """Return extra keyword arguments for `~pipeline.execution.worker.run_quantum_cluster`."""
        return {}

    def watch_quanta(
        self, callback: Callable[[str, int, str], None]
    ) -> Callable[[str, int, str], None] | None:
        """Have the workers report each quantum when it starts and ends.

        Returns the ``report`` argument of `~pipeline.execution.worker.run_quantum_cluster`:
        called on the worker as ``report(execution_id, node, "start" | "end")``, it makes
        ``callback`` run with the same arguments on the client (on another thread than the
        scheduling loop's). `None` (this base): the executor cannot report.
        """
        return None

    def unwatch_quanta(self) -> None:
        """Stop what `watch_quanta` started."""

    def prefetch_next(self, prefetch: Callable[..., None] | None) -> None:
        """Have ``prefetch(*args)`` called with the next submission's arguments before it runs.

        For an executor whose workers share this machine's disk: the inputs of what runs next
        are read while the workers compute. This base (and any executor whose workers may be
        elsewhere) ignores it.
        """

    def wait(
        self, handles: list[Any], poll: Callable[[], None] | None = None
    ) -> Iterable[Any]:
        """Block until at least one handle is finished; return the finished ones.

        ``poll()``, if given, is called every `WAIT_POLL_SECONDS` while waiting; what it
        raises (e.g. `~pipeline.execution.interrupts.Interrupted`) ends the wait.

        Raises
        ------
        ExecutorLostError
            If the executor can no longer run anything (its scheduler is gone).
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release the resources (cluster, client) the executor started."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
