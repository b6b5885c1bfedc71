"""Run a quantum graph against a butler: the client side of an execution.

Design
------
`execute_graph` prepares the output run, decides what is left to do, runs it through an
executor (all executors share `pipeline.execution.executors.schedule`), registers what
workers wrote and summarizes. In order:

1. register the graph's dataset types and the output run, and take the run's lease
   (`~pipeline.execution.run_lease`: a second process executing into the same run is
   refused); any error: exit code 2;
2. write the init-outputs once per run (``<label>_config`` and the task's own, plus a
   ``packages`` dataset) and the graph (``quantum_graph``, kept from the run's first
   execution: the report's expected quanta); a run already holding a different config is
   refused with a field-by-field diff (`Config.compare`) unless ``clobber_outputs``, which
   re-runs everything made with the old one;
3. resume: a quantum is complete when its ``<label>_metadata`` dataset is registered
   (``skip_existing``). For every other quantum, registered outputs are stale (e.g. the log
   of a failed attempt): they are unregistered and deleted. A quantum whose metadata
   *file* exists but was never registered (the client died after the worker finished) is
   adopted: its existing output files are registered. Everything else is re-run, and
   re-written files simply replace leftovers (dataset IDs and paths are deterministic);
4. cluster the remaining quanta and run them; outcomes are registered in batches, each
   quantum's outputs inside one transaction with its metadata last;
5. write a ``run_status`` dataset (what happened to each unfinished quantum) for the report,
   print the summary table, and return a `RunSummary` whose ``exit_code`` is 0 (all done,
   including nothing to do), 1 (some failed, blocked or unregistered; a lost scheduler; a
   full disk) or 2 (could not start); 130/143 after SIGINT/SIGTERM
   (`~pipeline.execution.interrupts`).

A full disk (a quantum's write, or the registration of its outputs, fails with ``ENOSPC``)
stops the run as a signal does: nothing more is submitted, what finished is registered, and
one line says so with the resume command. The quanta it stopped are neither failed nor
blocked (no failure lines, no tracebacks): ``--resume`` runs them once space is freed.
Every write is atomic, so nothing is registered whose file is incomplete.

Every registry write waits up to ``registry_timeout`` seconds for a registry that another
process keeps busy (`~pipeline.execution.registration`).

State: local to one call (known stored-file records, the registration buffer, counts for the
progress display); nothing at module level.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from ..graph.quantum_graph import QuantumGraph
from .executors.base import (
    RUNNING,
    WAIT_POLL_SECONDS,
    ExecutionResult,
    Executor,
    ExecutorLostError,
    schedule,
)
from .interrupts import DiskFullError, FailFastError, Interrupted, catch_signals
from .local_workers import executor_kind, start_worker_server
from .progress import _COLUMNS, EXIT_FAILED, EXIT_NOT_STARTED, EXIT_OK, Progress, RunSummary
from .registration import DEFAULT_REGISTRY_TIMEOUT, Registrar
from .run_lease import RunLeaseKeeper
from .setup import (
    PACKAGES_DATASET,  # noqa: F401  (re-exported: importable from here as before)
    RUN_STATUS_DATASET,  # noqa: F401
    RunSetup,
    empty_ref,
    remove_temporaries,
    resume_state,
    save_graph,
    task_resources,
)
from .worker import (
    ClusterPayload,
    QuantumOutcome,
    QuantumStatus,
    encode_cluster,
    is_disk_full,
    run_quantum_cluster,
    share_tables,
)

__all__ = [
    "EXIT_FAILED",
    "EXIT_NOT_STARTED",
    "EXIT_OK",
    "DEFAULT_START_TIMEOUT",
    "ExecutorStart",
    "RunSummary",
    "execute_graph",
    "executor_kind",
    "start_executor",
    "start_timeout",
]

_LOG = logging.getLogger(__name__)


#: Seconds a local cluster may take to start (every worker connected), unless
#: `START_TIMEOUT_VARIABLE` or ``pipetask run --cluster-start-timeout`` says otherwise.
DEFAULT_START_TIMEOUT = 60.0
#: Environment variable with the start timeout of local clusters, in seconds.
START_TIMEOUT_VARIABLE = "SKYQUANTA_CLUSTER_START_TIMEOUT"


def start_timeout(seconds: float | None = None) -> float:
    """Return the start timeout of a local cluster: ``seconds``, else the variable, else 60.

    Raises
    ------
    ValueError
        If `START_TIMEOUT_VARIABLE` is not a positive number of seconds.
    """
    if seconds is not None:
        return float(seconds)
    text = os.environ.get(START_TIMEOUT_VARIABLE, "")
    if not text:
        return DEFAULT_START_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(
            f"{START_TIMEOUT_VARIABLE} must be a positive number of seconds, got {text!r}"
        )
    return value


class ExecutorStart(concurrent.futures.Future):  # type: ignore[type-arg]
    """An executor being made in a background thread, due within ``timeout`` seconds.

    `wait` returns it or raises `~cluster.ClusterStartupError` once the deadline has passed;
    `abort` gives a start up: the worker processes of a local cluster are killed (the start
    itself cannot be cancelled; its thread is a daemon, so it never keeps the process alive),
    and an executor made after all is closed at once.

    State: the deadline, whether the start was given up.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self._aborted = False
        self._lock = threading.Lock()

    def wait(self, poll: Callable[[], None] | None = None) -> Executor:
        """Return the executor once made; raise what its start raised, or on the deadline.

        ``poll()`` is called a few times a second while waiting (it may raise to stop).
        """
        try:
            while True:
                left = self.deadline - time.monotonic()
                step = left if poll is None else min(left, WAIT_POLL_SECONDS)
                try:
                    return self.result(timeout=max(0.0, step))
                except concurrent.futures.TimeoutError:
                    if poll is None or time.monotonic() >= self.deadline:
                        raise
                poll()
        except concurrent.futures.TimeoutError:
            from cluster import ClusterStartupError

            self.abort()
            raise ClusterStartupError(
                f"a worker of the local cluster did not connect within {self.timeout:g} s "
                f"(the limit is --cluster-start-timeout or {START_TIMEOUT_VARIABLE})"
            ) from None

    def abort(self) -> None:
        """Give the start up: kill its worker processes; an executor made later is closed."""
        with self._lock:
            self._aborted = True
            made = self.done() and self.exception() is None
        if made:
            self.result().close()
            return
        if "cluster" in sys.modules:
            from cluster import kill_local_workers

            killed = kill_local_workers()
            _LOG.debug("killed %d worker processes of a local cluster that did not start", killed)

    def _made(self, executor: Executor) -> None:
        with self._lock:
            if not self._aborted:
                self.set_result(executor)
                return
        executor.close()  # given up before it was ready: nobody will use or close it
        self.set_exception(RuntimeError("the executor's start was given up"))


def start_executor(
    executor: str,
    jobs: int,
    cluster_address: str | None,
    cluster_config: str | None,
    pdb: bool,
    timeout: float | None = None,
) -> ExecutorStart:
    """Start making an executor in a background thread; return the future executor.

    A local dask cluster takes about half a second to start (worker processes, imports):
    started this way, it does so while the caller builds the quantum graph. Pass the future
    to `execute_graph` (which waits for it, at most ``timeout`` seconds from now: see
    `start_timeout`) and close it with `close_started` when done.
    """
    # the process local workers fork from (if not yet launched) imports on another core
    start_worker_server(executor, jobs, cluster_address, cluster_config, pdb)
    future = ExecutorStart(start_timeout(timeout))

    def make() -> None:
        try:
            made = _make_executor(executor, jobs, cluster_address, cluster_config, pdb)
        except BaseException as err:  # noqa: BLE001 - handed to whoever waits
            future.set_exception(err)
            return
        future._made(made)

    # a daemon: a start that hangs never keeps the command alive (`ExecutorStart.abort`)
    threading.Thread(target=make, name="executor-start", daemon=True).start()
    return future


def close_started(future: concurrent.futures.Future[Executor]) -> None:
    """Close an executor from `start_executor`; give up its start if it is not made yet."""
    if isinstance(future, ExecutorStart) and not future.done():
        future.abort()
        return
    try:
        future.result().close()
    except Exception as err:  # it never started (execute_graph reported why) or cannot close
        _LOG.debug("closing the started executor: %s", err)


def _make_executor(
    executor: str | Executor | concurrent.futures.Future[Executor],
    jobs: int,
    cluster_address: str | None,
    cluster_config: str | None,
    pdb: bool,
) -> Executor:
    if isinstance(executor, Executor):
        return executor
    if isinstance(executor, ExecutorStart):
        return executor.wait()
    if isinstance(executor, concurrent.futures.Future):
        return executor.result()
    kind = executor_kind(executor, jobs, cluster_address, cluster_config, pdb)
    if kind == "sync":
        from .executors.sync import SyncExecutor

        return SyncExecutor(pdb=pdb)
    if kind == "pool":
        from .executors.pool import PoolExecutor

        return PoolExecutor(jobs)
    from .executors.dask import DaskExecutor

    return DaskExecutor(jobs=jobs, address=cluster_address, cluster_config=cluster_config)


def execute_graph(
    butler: Any,
    qgraph: QuantumGraph,
    *,
    executor: str | Executor | concurrent.futures.Future[Executor] = "dask",
    jobs: int = 1,
    cluster_address: str | None = None,
    cluster_config: str | None = None,
    retries: int = 0,
    clustering: str = "chains",
    skip_existing: bool = True,
    clobber_outputs: bool = False,
    extend_run: bool = False,
    progress: bool = True,
    pdb: bool = False,
    registry_timeout: float = DEFAULT_REGISTRY_TIMEOUT,
    resume_command: str = "",
    fail_fast: bool = False,
    timeout: float = 0.0,
    start_timeout_seconds: float | None = None,
) -> RunSummary:
    """Execute a quantum graph, resuming where an earlier execution stopped.

    Parameters
    ----------
    butler : `~butler.butler.Butler`
        The full butler (client side only; workers get a limited one).
    qgraph : `QuantumGraph`
        The graph to run.
    executor : `str`, `Executor` or `concurrent.futures.Future`
        ``"dask"`` (default), ``"sync"`` (in-process), ``"auto"`` (in-process for
        ``jobs=1`` without a cluster address or spec, as LSST's ``pipetask -j 1``; else
        dask), an executor instance, or a future one from `start_executor` (neither of
        these two is closed). Every one runs the same worker function
        (`~pipeline.execution.worker.run_quantum_cluster`), so outputs are the same.
    jobs : `int`
        Worker processes of the local dask cluster.
    cluster_address : `str`, optional
        External dask scheduler address or scheduler file.
    cluster_config : `str`, optional
        Cluster YAML spec (see ``cluster/``).
    retries : `int`
        Retries of a failed quantum (never for `RepeatableQuantumError`).
    clustering : `str`
        ``"chains"`` (default), ``"off"`` or ``"per_task:N"`` (see `pipeline.graph.clustering`).
    skip_existing : `bool`
        Skip quanta whose ``<label>_metadata`` is registered (resume).
    clobber_outputs : `bool`
        Replace a different stored config, and re-run complete quanta when
        ``skip_existing`` is False.
    extend_run : `bool`
        Allow running into a run that already holds outputs of this graph without
        skipping or clobbering them (treated as ``skip_existing``).
    progress : `bool`
        Show the live progress (a table on a terminal, else a line every few seconds). The
        end-of-run summary and failures are printed (on stderr) either way.
    pdb : `bool`
        Run in-process and enter the post-mortem debugger on a failure.
    registry_timeout : `float`
        Seconds a registry write waits for a registry that another process keeps busy;
        quanta whose outputs still cannot be registered count as ``unregistered``.
    resume_command : `str`
        The command that resumes this run, shown when something is left to do ("": a
        generic hint).
    fail_fast : `bool`
        Stop at the first quantum that fails for good (after its retries): nothing more is
        submitted, what finished is registered, exit code 1.
    timeout : `float`
        Seconds one quantum may run (0: no limit). A longer one fails with
        `~pipeline._errors.QuantumTimeoutError` naming its task and data ID (never retried);
        the others go on, and the exit code is 1.
    start_timeout_seconds : `float`, optional
        Seconds a local dask cluster made here may take to start (`start_timeout`: the
        environment's `START_TIMEOUT_VARIABLE` or `DEFAULT_START_TIMEOUT` when `None`); a
        future executor carries its own. A cluster not started in time stops the run
        (exit code 2) with its worker processes killed.

    Returns
    -------
    summary : `RunSummary`
        Counts per task label, failures, and ``exit_code``.
    """
    from ..graph.clustering import make_clusters

    start = time.perf_counter()
    summary = RunSummary(
        execution_id=uuid.uuid4().hex,
        resume_command=resume_command or "the same command with --resume",
    )
    local = cluster_address is None and cluster_config is None
    if jobs < 1 and executor in ("dask", "pool", "auto") and local:
        summary.error = f"jobs (-j) must be at least 1, got {jobs}"
        _LOG.error("cannot start the execution: %s", summary.error)
        return summary
    with (
        contextlib.ExitStack() as stack,
        catch_signals() as stop,
        _waiting_for_busy_registry(butler.registry, registry_timeout),
    ):
        quanta = {node: qgraph.get_quantum(node) for node in qgraph.node_ids()}
        skip = skip_existing or extend_run
        setup = RunSetup(butler, qgraph, clobber=clobber_outputs, timeout=registry_timeout)
        lease = RunLeaseKeeper(
            butler.registry, qgraph.output_run, summary.execution_id, datastore=butler.datastore
        )
        try:
            setup.register()
            stack.enter_context(lease)  # before anything in the run is written or removed
            init_inputs = setup.init_inputs()
            setup.write_init_outputs(init_inputs)
            save_graph(setup)
            complete, known = resume_state(setup, qgraph, quanta, skip, clobber_outputs)
            clusters = make_clusters(qgraph, [n for n in quanta if n not in complete], clustering)
            resources = task_resources(qgraph)
            stop.check()
        except Interrupted as err:
            summary.interrupted, summary.signal = f"interrupted by {err.name}", err.signum
            _LOG.error("%s before any quantum ran", summary.interrupted)
            return summary
        except Exception as err:
            text = str(err)
            if getattr(err, "statement", None) is not None and text:
                text = text.splitlines()[0]  # a database driver's error: not its SQL dump
            summary.error = f"{type(err).__name__}: {text}"
            _LOG.error("cannot start the execution: %s", summary.error)
            return summary
        known.update(qgraph.input_infos)
        missing: set[uuid.UUID] = {
            ref.id for n in complete for ref in quanta[n].all_outputs() if ref.id not in known
        }
        spec = butler.limited_spec()
        todo = [n for c in clusters for n in c]
        predecessors = {n: qgraph.predecessors(n) for n in todo}
        successors = {n: [s for s in qgraph.successors(n) if s not in complete] for n in todo}
        registrar = Registrar(butler.registry, timeout=registry_timeout)
        summary.counts = {
            label: dict.fromkeys(_COLUMNS, 0) | {"expected": qgraph.count(label)}
            for label in qgraph.tasks
        }
        for node in complete:
            summary.counts[quanta[node].task_label]["skipped"] += 1

        shared, type_index = share_tables(
            qgraph.tasks,
            qgraph.dataset_types.values(),
            {label: qgraph.universe.group(info.dimensions) for label, info in qgraph.tasks.items()},
            init_inputs,
        )

        def make_payload(nodes: tuple[int, ...], attempt: int) -> ClusterPayload:
            members = [quanta[n] for n in nodes]
            ids = {r.id for q in members for r in q.all_inputs()}
            return encode_cluster(
                members,
                [known[i] for i in ids if i in known],
                ids & missing,
                shared=shared,
                type_index=type_index,
                attempt=attempt,
                execution_id=summary.execution_id,
            )

        last_outcome: dict[int, QuantumOutcome] = {}
        disk_full: list[str] = []  # why the disk is full, once a quantum or registration says so

        def on_outcomes(outcomes: list[QuantumOutcome]) -> None:
            for outcome in outcomes:
                last_outcome[outcome.node_id] = outcome
                if outcome.disk_full and not disk_full:
                    disk_full.append(outcome.message.splitlines()[0])
                quantum = quanta[outcome.node_id]
                if outcome.status in QuantumStatus.DONE:
                    written = {i.dataset_id: i for i in outcome.written}
                    known.update(written)
                    missing.update(r.id for r in quantum.all_outputs() if r.id not in written)
                    registrar.add(quantum, outcome)
                elif outcome.status == QuantumStatus.FAILED and (
                    outcome.repeatable or outcome.attempt > retries
                ):
                    registrar.add(quantum, outcome)  # the log, with the traceback
            if registrar.full and not disk_full:
                disk_full.append(registrar.full.splitlines()[0])

        made_here = isinstance(executor, str)
        try:
            kind = executor_kind(executor, jobs, None, None, pdb) if made_here and local else ""
            if kind in ("dask", "pool"):
                # a local cluster starts in the background, bounded by its start timeout
                executor = start_executor(executor, jobs, None, None, pdb, start_timeout_seconds)
            if isinstance(executor, ExecutorStart):
                runner = executor.wait(poll=stop.check)
            else:
                runner = _make_executor(executor, jobs, cluster_address, cluster_config, pdb)
            stop.check()
        except Interrupted as err:  # while a cluster started: give its start up
            if isinstance(executor, ExecutorStart):
                executor.abort()
            summary.interrupted, summary.signal = f"interrupted by {err.name}", err.signum
            _LOG.error("%s before any quantum ran", summary.interrupted)
            return summary
        except Exception as err:
            summary.error = f"cannot start the executor: {type(err).__name__}: {err}"
            _LOG.error("%s", summary.error)
            return summary
        _LOG.info("executing %d quanta %s", len(todo), _where(runner))
        summary.dashboard_link = runner.dashboard_link
        display = Progress(
            qgraph,
            progress,
            runner.dashboard_link,
            lambda n: quanta[n].task_label,
            parallelism=runner.parallelism(),
        )
        options = runner.run_options() | ({"timeout": timeout} if timeout > 0 else {})
        if progress:  # workers report quanta starting and ending: "running" is what runs

            def on_quantum(execution_id: str, node: int, event: str) -> None:
                if execution_id == summary.execution_id:
                    display.quantum_event(node, event)

            report = runner.watch_quanta(on_quantum)
            if report is not None:
                display.reported = True
                options["report"] = report
        fn = functools.partial(run_quantum_cluster, **options)
        advise = getattr(butler.datastore, "advise_will_read", None)
        if advise is not None:  # a local pool: the next cluster's inputs read ahead

            def prefetch(_spec: Any, payload: ClusterPayload) -> None:
                advise(info[1] for info in payload.infos)

            runner.prefetch_next(prefetch)

        def submit(nodes: tuple[int, ...], attempt: int) -> Any:
            hints: dict[str, float] = {}
            for label in {quanta[n].task_label for n in nodes}:
                for key, value in resources[label].items():
                    hints[key] = max(hints.get(key, 0.0), value)
            return runner.submit(fn, spec, make_payload(nodes, attempt), resources=hints or None)

        for node in complete:
            display.set(node, QuantumStatus.SKIPPED)
        statuses: dict[int, str] = {}  # what the loop said last, should it stop early

        def on_status(node: int, status: str) -> None:
            statuses[node] = status
            display.set(node, status)
            if fail_fast and status == QuantumStatus.FAILED:
                raise FailFastError(quanta[node].task_label, dict(quanta[node].data_id.required))
            # Stop at the quantum that found the disk full (the rest of its batch was not
            # run), or before the next submission once a registration found it full.
            outcome = last_outcome.get(node)
            if disk_full and (status == RUNNING or (outcome is not None and outcome.disk_full)):
                raise DiskFullError(disk_full[0])

        finished = False  # every submission came back (no worker of ours writes any more)
        try:
            with display:
                result = schedule(
                    clusters,
                    predecessors,
                    successors,
                    submit=submit,
                    wait=functools.partial(runner.wait, poll=stop.check),
                    on_outcomes=on_outcomes,
                    on_status=on_status,
                    retries=retries,
                    parallelism=runner.parallelism(),
                )
                stop.check()  # a signal during the last registrations: the run stops there
                finished = True
        except (Interrupted, ExecutorLostError, FailFastError, DiskFullError) as err:
            result = _partial_result(statuses, last_outcome)
            if isinstance(err, Interrupted):
                summary.interrupted, summary.signal = f"interrupted by {err.name}", err.signum
            else:
                summary.interrupted = str(err)
        finally:
            runner.prefetch_next(None)
            if display.reported:
                runner.unwatch_quanta()
            if made_here:  # made here: closed here
                runner.close()
        registrar.flush()  # what finished before a stop too (a signal now is ignored)
        if finished and todo:
            # Workers killed mid-write leave temporaries beside the outputs; every attempt has
            # come back and the run's lease is ours, so no live writer owns them any more.
            left = remove_temporaries(butler, (quanta[n] for n in todo))
            if left:
                _LOG.info("removed %d temporary files left by workers killed mid-write", left)
        if disk_full and not summary.interrupted:  # it filled up with nothing left to submit
            summary.interrupted = str(DiskFullError(disk_full[0]))
        summary.result = result
        for node, status in result.status.items():
            quantum = quanta[node]
            if disk_full and (
                status == QuantumStatus.BLOCKED
                or (status == QuantumStatus.FAILED and result.outcomes[node].disk_full)
            ):
                continue  # not run for want of space, not failed: the resume runs it
            if node in registrar.unregistered and status in QuantumStatus.DONE:
                status = "unregistered"
                summary.unregistered.append(
                    {
                        "label": quantum.task_label,
                        "data_id": dict(quantum.data_id.required),
                        "reason": registrar.unregistered[node],
                    }
                )
            summary.counts[quantum.task_label][status] += 1
            if status == QuantumStatus.FAILED:
                outcome = result.outcomes[node]
                summary.failures.append(
                    {
                        "label": quantum.task_label,
                        "data_id": dict(quantum.data_id.required),
                        "error_type": outcome.error_type,
                        "message": outcome.message,
                        "attempts": result.attempts.get(node, 0),
                    }
                )
            elif status == QuantumStatus.BLOCKED:
                cause = result.blocked_by.get(node)
                summary.blocked.append(
                    {
                        "label": quantum.task_label,
                        "data_id": dict(quantum.data_id.required),
                        "blocked_by": None
                        if cause is None
                        else {
                            "label": quanta[cause].task_label,
                            "data_id": dict(quanta[cause].data_id.required),
                        },
                    }
                )
        summary.wall_time = time.perf_counter() - start
        _write_status(setup, qgraph, summary)
        if summary.interrupted:
            done = sum(summary.total(c) for c in ("skipped", "succeeded", "no_work"))
            _LOG.error(
                "%s: %d of %d quanta done and registered; resume with: %s",
                summary.interrupted,
                done,
                len(quanta),
                summary.resume_command,
            )
        elif summary.unregistered:
            _LOG.error(
                "%d quanta finished but their outputs could not be registered (first: %s %s: %s); "
                "nothing that reads them was registered. Their files are kept: resume with\n  %s",
                len(summary.unregistered),
                summary.unregistered[0]["label"],
                summary.unregistered[0]["data_id"],
                summary.unregistered[0]["reason"],
                summary.resume_command,
            )
        # --no-progress hides only the live display, never the summary and the failures;
        # a run stopped by a signal says what happened and how to resume in one line
        if not summary.signal:
            from rich.console import Console

            console = Console(stderr=True)
            if not console.is_terminal:  # a log file: never cut a task label to 80 columns
                longest = max(map(len, qgraph.tasks), default=0)
                console = Console(stderr=True, width=max(120, 80 + longest))
            console.print(summary.table())
            for failure in summary.failures:
                console.print(
                    f"[red]failed[/red] {failure['label']} {failure['data_id']}: "
                    f"{failure['error_type']}: {failure['message']}"
                )
        return summary


def _where(runner: Executor) -> str:
    """Say where an executor runs quanta, for the log."""
    from .executors.sync import SyncExecutor

    if isinstance(runner, SyncExecutor):
        return "in this process"
    from .executors.pool import PoolExecutor

    if isinstance(runner, PoolExecutor):
        return f"on a pool of {runner.jobs} local processes"
    return f"on dask ({runner.parallelism()} worker threads)"


@contextlib.contextmanager
def _waiting_for_busy_registry(registry: Any, seconds: float) -> Iterator[None]:
    """Make the registry's writes wait ``seconds`` for a busy database inside the block."""
    previous = registry.busy_timeout
    registry.busy_timeout = seconds
    try:
        yield
    finally:
        registry.busy_timeout = previous


def _partial_result(
    statuses: dict[int, str], outcomes: dict[int, QuantumOutcome]
) -> ExecutionResult:
    """Return the nodes whose fate was settled when the scheduling loop stopped early."""
    final = (*QuantumStatus.DONE, QuantumStatus.FAILED, QuantumStatus.BLOCKED)
    settled = {node: status for node, status in statuses.items() if status in final}
    return ExecutionResult(settled, outcomes, {}, {})


def _write_status(setup: RunSetup, qgraph: QuantumGraph, summary: RunSummary) -> None:
    """Replace the run's ``run_status`` dataset with this execution's summary."""
    ref = empty_ref(qgraph, setup.status_type)
    data = {
        "execution_id": summary.execution_id,
        "counts": summary.counts,
        "failures": summary.failures,
        "blocked": summary.blocked,
        "unregistered": summary.unregistered,
        "interrupted": summary.interrupted,
        "wall_time": summary.wall_time,
    }
    try:
        setup._remove([ref])
        setup._put(data, ref)
    except Exception as err:  # the status file is a convenience; never fail the run for it
        # After a stop for a full disk, the one line about it says all (the registry holds
        # what is done; the report counts the rest from the saved graph).
        full = summary.interrupted.startswith(DiskFullError.PREFIX) and is_disk_full(err)
        _LOG.log(
            logging.INFO if full else logging.WARNING,
            "could not write the run status dataset: %s",
            err,
        )
