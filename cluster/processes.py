"""A dask scheduler and workers started as separate processes on this machine.

What an external cluster looks like to ``pipetask run --cluster tcp://HOST:PORT``, without one:
`SchedulerProcesses` runs ``dask scheduler`` and N ``dask worker`` processes on 127.0.0.1 (a
free port), waits until every worker has joined, and stops them all when closed (terminate;
what still runs 5 s later is killed). Used by the tests and benchmarks of external clusters.
State: the child processes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import IO, Any

from ._errors import ClusterStartupError

__all__ = ["SchedulerProcesses"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SchedulerProcesses:
    """A scheduler and ``n_workers`` single-threaded workers, each its own process.

    Parameters
    ----------
    n_workers : `int`
        Number of worker processes.
    env : `dict` [`str`, `str`], optional
        Environment of the processes (e.g. ``PYTHONPATH`` for task modules, object-store
        credentials); this process's by default.
    nanny : `bool`
        Run each worker under a nanny, which restarts it when it dies.
    log : file object, optional
        Where the processes' output goes (discarded by default).
    timeout : `float`
        Seconds to wait for the scheduler and every worker.

    Raises
    ------
    ClusterStartupError
        If the workers have not all joined within ``timeout``.
    """

    def __init__(
        self,
        n_workers: int = 2,
        *,
        env: dict[str, str] | None = None,
        nanny: bool = False,
        log: IO[Any] | None = None,
        timeout: float = 120.0,
    ) -> None:
        port = _free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        output: Any = log if log is not None else subprocess.DEVNULL
        options: dict[str, Any] = {
            "env": env if env is not None else dict(os.environ),
            "stdout": output,
            "stderr": subprocess.STDOUT if log is not None else subprocess.DEVNULL,
        }
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                 "--port", str(port), "--dashboard-address", ":0"],
                **options,
            )
        ]
        worker = [sys.executable, "-m", "distributed.cli.dask_worker", self.address,
                  "--nthreads", "1", "--host", "127.0.0.1"]
        if not nanny:
            worker.append("--no-nanny")
        try:
            self.procs += [subprocess.Popen(worker, **options) for _ in range(n_workers)]
            self.worker_pids = self._wait(n_workers, timeout)
        except BaseException:
            self.close()
            raise

    def _wait(self, n_workers: int, timeout: float) -> set[int]:
        """Wait until ``n_workers`` workers have joined; return their process IDs."""
        from distributed import Client

        deadline = time.monotonic() + timeout
        while True:
            try:
                with Client(self.address, timeout=5) as client:
                    client.wait_for_workers(n_workers, timeout=max(deadline - time.monotonic(), 1))
                    return set(client.run(os.getpid).values())
            except (OSError, TimeoutError) as err:
                if time.monotonic() > deadline:
                    raise ClusterStartupError(
                        f"{n_workers} workers did not join {self.address} in {timeout:g} s: {err}"
                    ) from err
                time.sleep(0.5)

    def close(self) -> None:
        """Stop every process (terminate, then kill what still runs after 5 s)."""
        for proc in reversed(self.procs):
            proc.terminate()
        deadline = time.monotonic() + 5
        for proc in self.procs:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> SchedulerProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
