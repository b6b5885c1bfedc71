"""Local dask workers fork from a server that imported dask once (`cluster.worker_server`), and
are spawned as before whenever a forked one would not see what a spawned one would.

The scenario runs in a fresh Python process: the server is one per process, and earlier tests
of this session may have changed the environment since it started (then every local cluster
of the session spawns its workers, which is the rule under test, but not a known start).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

SCENARIO = r"""
import json, os
from distributed import Client
from cluster import local_cluster

def worker_process():
    import os, sys
    return [os.getppid(), os.environ.get("SKYQUANTA_WORKER_SERVER_PROBE"),
            os.environ.get("OMP_NUM_THREADS"), "pipeline.execution.worker" in sys.modules]

def probe(**options):
    with local_cluster(n_workers=2, threads_per_worker=1, processes=True,
                       dashboard_address=None, worker_preload=("pipeline.execution.worker",),
                       **options) as cluster, Client(cluster) as client:
        return list(client.run(worker_process).values())

if __name__ == "__main__":
    os.environ.pop("SKYQUANTA_WORKER_SERVER_PROBE", None)
    result = {"client": os.getpid(), "forked": probe()}
    os.environ["SKYQUANTA_WORKER_SERVER_PROBE"] = "set after the server started"
    result["changed_environment"] = probe()
    del os.environ["SKYQUANTA_WORKER_SERVER_PROBE"]
    result["asked_to_spawn"] = probe(
        dask_config={"distributed.worker.multiprocessing-method": "spawn"})
    result["again"] = probe()
    print("RESULT", json.dumps(result))
"""


@pytest.mark.timeout(300)
def test_workers_fork_from_the_server_unless_the_environment_changed(tmp_path):
    script = tmp_path / "scenario.py"
    script.write_text(SCENARIO)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=280
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.rpartition("RESULT ")[2])
    client = result["client"]

    def parents(case: str) -> set[int]:
        return {worker[0] for worker in result[case]}

    forked = result["forked"]
    assert len(forked) == 2
    # not children of the client (spawned workers are) but of the one server; the modules it
    # preloaded are there before any task ran; dask's pre-spawn settings hold as when spawned
    assert len(parents("forked")) == 1 and parents("forked") != {client}
    assert {(probe, omp, preloaded) for _, probe, omp, preloaded in forked} == {
        (None, "1", True)
    }
    # a variable set since the server started: a forked worker would miss it, so spawned
    assert parents("changed_environment") == {client}
    assert {w[1] for w in result["changed_environment"]} == {"set after the server started"}
    # a cluster that asks for spawned workers gets them; then the server serves again
    assert parents("asked_to_spawn") == {client}
    assert parents("again") == parents("forked")


EXIT_SCENARIO = r"""
import resource, time
from distributed import Client
from cluster import local_cluster

def burn(seconds=0.5):
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
    return seconds

if __name__ == "__main__":
    with local_cluster(n_workers=2, threads_per_worker=1, processes=True,
                       dashboard_address=None) as cluster, Client(cluster) as client:
        assert sum(client.run(burn).values()) == 1.0
    own = resource.getrusage(resource.RUSAGE_SELF)
    print("OWN_CPU", own.ru_utime + own.ru_stime)
"""


@pytest.mark.timeout(300)
def test_the_server_and_its_workers_end_with_the_command(tmp_path):
    """No process of a command's local cluster outlives it: the fork server is stopped and
    waited for at exit, so the workers' CPU time (2 x 0.5 s burnt) is in the command's."""
    script = tmp_path / "exit_scenario.py"
    script.write_text(EXIT_SCENARIO)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=280
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert out.returncode == 0, out.stderr[-3000:]
    tree = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    own = float(out.stdout.rpartition("OWN_CPU ")[2])
    assert tree - own >= 0.9, (tree, own)


STUCK_SERVER = r"""
import os, sys, tempfile, pathlib
folder = pathlib.Path(tempfile.mkdtemp())
(folder / "stuck_import.py").write_text("import time\nwhile True:\n    time.sleep(3600)\n")
os.environ["PYTHONPATH"] = os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])
from cluster import worker_server
assert worker_server.start(["stuck_import"], with_dask=False)
print(worker_server._launched is not None, flush=True)
"""


def test_a_server_stuck_in_its_imports_does_not_keep_the_command_alive():
    """The server is stopped at exit; one that does not end in 5 s (here: an import that
    never returns) is killed, and nothing of the command is left running."""
    import os
    import signal
    import time

    import psutil

    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", STUCK_SERVER], stdout=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        ending = [
            p for p in psutil.process_iter(["status"])
            if _session(p.pid) == proc.pid and p.info["status"] != "zombie"
        ]  # fmt: skip
        # multiprocessing's resource tracker ends when the command's pipe to it closes, a
        # moment after the command (on a loaded machine, after this listing): not "left"
        _, left = psutil.wait_procs(ending, timeout=5)
        for process in left:
            process.send_signal(signal.SIGKILL)
    assert proc.returncode == 0 and out.strip() == "True"
    assert time.monotonic() - start < 30
    assert not left, left
    assert os.getpgid(os.getpid()) != proc.pid


def _session(pid):
    import os

    try:
        return os.getsid(pid)
    except (ProcessLookupError, PermissionError):
        return None
