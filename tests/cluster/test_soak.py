"""Soak: 2,000 trivial quanta on an external cluster while workers are killed every few seconds
and the client itself is killed once and resumed (a real PostgreSQL registry; files on this
machine's disk, or with ``SKYQUANTA_SOAK_S3=1`` on a moto S3 server, which does not fit the
time limit on a loaded 2-core machine: 2,000 raw inputs alone took 113 s to upload to moto).

A scheduler and 2 nanny-supervised workers run as subprocesses; a killer thread sends SIGKILL
to a worker process every ``KILL_EVERY`` seconds (its nanny starts a new one). The client
(``pipetask run``, a subprocess) is killed with SIGKILL once a share of the quanta are
registered, then ``pipetask run --resume`` finishes the run. At the end every quantum has
succeeded exactly once (one metadata and one output dataset each, with the right content) and
registry and object store agree: every registered artifact of the run is an object, and every
object under the run's prefix is a registered artifact.

Bounded and self-stopping: every wait has a deadline (the whole test at most ``HARD_LIMIT``
seconds), the killer stops when the clients end, and every process is stopped at the end. It
takes longer than the suite's 60 s budget on a quiet 2-core machine, so it runs only when
asked for: ``pytest -m soak`` (see README).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from butler import Butler, DatasetType
from butler._errors import MissingCollectionError, MissingDatasetTypeError
from butler.dataset_ref import DatasetRef
from butler.testing.servers import stop_with_this_process
from cluster.processes import SchedulerProcesses

PIPELINE_TESTS = Path(__file__).parents[1] / "pipeline"
PIPETASK = str(Path(sys.executable).parent / "pipetask")
N_VISITS, N_DETECTORS = 40, 50  # 2,000 quanta
KILL_EVERY = 2.0  # seconds between worker kills (about)
KILL_CLIENT_AT = 0.35  # share of the quanta registered when the client is killed
HARD_LIMIT = 180.0  # seconds, the whole test
RUN = "u/soak"

pytestmark = [pytest.mark.soak, pytest.mark.timeout(HARD_LIMIT + 30)]


def _make_repo(root, url, s3=None):
    if s3 is None:
        Butler.create(root, registry_url=url)
    else:
        bucket, endpoint = s3
        Butler.create(root, registry_url=url, datastore_root=f"s3://{bucket}/files",
                      storage_options={"endpoint_url": endpoint})
    butler = Butler(root, run="raw/all")
    reg = butler.registry
    reg.insert_dimension_records("instrument", [{"name": "Sim", "detector_max": 99,
                                                 "visit_max": 999}])
    reg.insert_dimension_records("band", [{"name": "r"}])
    reg.insert_dimension_records("physical_filter", [{"instrument": "Sim", "name": "r_sim",
                                                      "band": "r"}])
    reg.insert_dimension_records("detector", [{"instrument": "Sim", "id": d, "full_name": f"D{d}"}
                                              for d in range(N_DETECTORS)])
    reg.insert_dimension_records("visit", [{"instrument": "Sim", "id": v,
                                            "physical_filter": "r_sim", "exposure_time": 30.0}
                                           for v in range(N_VISITS)])
    raw = DatasetType.make("raw", ["instrument", "visit", "detector"], "StructuredDataDict",
                           butler.universe)
    reg.register_dataset_type(raw)
    reg.register_run("raw/all")
    refs = [DatasetRef.make(raw, {"instrument": "Sim", "visit": v, "detector": d}, "raw/all")
            for v in range(N_VISITS) for d in range(N_DETECTORS)]
    # Written into a local staging datastore (same templates, so the same relative paths),
    # then uploaded in one batched call: 2,000 single puts to moto took 70 s under load.
    staging = Butler.create(root.parent / "staging") and Butler(root.parent / "staging")
    infos = [staging.datastore.put({"value": ref.data_id["visit"] * 100
                                    + ref.data_id["detector"]}, ref) for ref in refs]
    if s3 is not None:
        butler.datastore.fs.put(f"{staging.datastore.root}/raw/all",
                                f"{butler.datastore.root}/raw/", recursive=True)
    else:
        shutil.copytree(f"{staging.datastore.root}/raw", f"{butler.datastore.root}/raw")
    for info in infos:
        assert butler.datastore.exists(info), info.path
    reg.insert_datasets(refs, infos)
    return butler


class WorkerKiller(threading.Thread):
    """SIGKILLs one worker process (a child of a nanny) every ``every`` seconds until stopped."""

    def __init__(self, nanny_pids, every):
        super().__init__(name="worker-killer", daemon=True)
        self.nannies = [psutil.Process(pid) for pid in nanny_pids]
        self.every = every
        self.stop = threading.Event()
        self.killed: list[int] = []

    def run(self):
        rng = random.Random(15)
        while not self.stop.wait(self.every * rng.uniform(0.7, 1.3)):
            children = [
                c for n in self.nannies for c in n.children()
                if c.pid not in self.killed and c.is_running()
                and c.status() != psutil.STATUS_ZOMBIE
            ]
            if children:
                victim = rng.choice(children)
                try:
                    os.kill(victim.pid, signal.SIGKILL)
                    self.killed.append(victim.pid)
                except ProcessLookupError:
                    pass


def _count_metadata(butler):
    """Quanta of the run registered so far (0 before the run and its dataset types exist)."""
    try:
        return len(butler.registry.query_datasets("a_metadata", collections=[RUN]))
    except (MissingCollectionError, MissingDatasetTypeError):
        return 0


def test_soak_worker_kills_and_a_client_kill_then_resume(tmp_path, postgres_server, request):
    start = time.monotonic()
    deadline = start + HARD_LIMIT

    def left():
        return max(deadline - time.monotonic(), 1.0)

    os.environ["PGPASSWORD"] = postgres_server.password
    try:
        url = postgres_server.url(postgres_server.create_database(), password=False)
        repo = tmp_path / "repo"
        if os.environ.get("SKYQUANTA_SOAK_S3"):
            s3_server = request.getfixturevalue("s3_server")
            s3 = (request.getfixturevalue("s3_bucket"), s3_server.endpoint_url)
        else:
            s3 = None
        butler = _make_repo(repo, url, s3)
        print(f"soak: repository made in {time.monotonic() - start:.0f} s")
        pipe = tmp_path / "soak.yaml"
        # 5 ms per quantum: at least 5 s of work on 2 workers, so that a quiet machine too
        # sees several worker kills
        pipe.write_text("description: soak\ntasks:\n  a:\n    class: exec_tasks.ExecA\n"
                        "    config:\n      - {sleep: 0.005}\n")
        env = dict(os.environ,
                   PYTHONPATH=f"{PIPELINE_TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        worker_env = {k: v for k, v in env.items() if not k.startswith("PG")}
        log = open(tmp_path / "cluster.log", "w")  # noqa: SIM115  (closed below)
        cluster = SchedulerProcesses(2, env=worker_env, nanny=True, log=log)
        killer = None
        watchdog = stop_with_this_process([p.pid for p in cluster.procs])  # a killed test run
        try:
            nanny_pids = [p.pid for p in cluster.procs[1:]]
            command = [PIPETASK, "--log-level", "WARNING", "run", "-b", str(repo), "-p",
                       str(pipe), "-i", "raw/all", "--output-run", RUN, "--cluster",
                       cluster.address, "--retries", "5", "--no-progress"]
            killer = WorkerKiller(nanny_pids, KILL_EVERY)
            killer.start()
            print(f"soak: cluster up at {time.monotonic() - start:.0f} s")
            client_log = open(tmp_path / "client1.log", "w")  # noqa: SIM115
            client = subprocess.Popen(command, env=env, stdout=client_log,
                                      stderr=subprocess.STDOUT)
            while client.poll() is None and time.monotonic() < deadline:
                done = _count_metadata(butler)
                if done >= KILL_CLIENT_AT * N_VISITS * N_DETECTORS:
                    client.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.5)
            client.wait(timeout=left())
            client_log.close()
            assert client.returncode == -signal.SIGKILL, (tmp_path / "client1.log").read_text()
            killed_at = time.monotonic() - start
            resumed = subprocess.run([*command, "--resume"], env=env, capture_output=True,
                                     text=True, timeout=left())
            resumed_in = time.monotonic() - start - killed_at
            killer.stop.set()
            assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        finally:
            if killer is not None:
                killer.stop.set()
                killer.join(timeout=10)
            cluster.close()
            watchdog.kill()
            watchdog.wait()
            log.close()
        assert len(killer.killed) >= 3, killer.killed  # workers were really killed

        # every quantum succeeded exactly once
        butler = Butler(repo)
        metadata = butler.registry.query_datasets("a_metadata", collections=[RUN])
        outputs = butler.registry.query_datasets("ea_out", collections=[RUN])
        keys = {(r.data_id["visit"], r.data_id["detector"]) for r in outputs}
        assert len(metadata) == len(outputs) == len(keys) == N_VISITS * N_DETECTORS
        assert {(r.data_id["visit"], r.data_id["detector"]) for r in metadata} == keys
        statuses = {butler.get(r)["quantum"]["status"] for r in metadata[:: N_DETECTORS]}
        assert statuses == {"succeeded"}
        for ref in outputs[:: N_DETECTORS // 5]:
            assert butler.get(ref) == {"value": 2 * (ref.data_id["visit"] * 100
                                                     + ref.data_id["detector"])}

        # registry and object store agree: no dataset without its object, no orphan object
        refs = [r for dtype in butler.registry.query_dataset_types()
                for r in butler.registry.query_datasets(dtype, collections=[RUN])]
        infos = butler.registry.get_stored_info(refs)
        assert len(infos) == len(refs)
        fs, root = butler.datastore.fs, butler.datastore.root.rstrip("/")
        registered = {fs._strip_protocol(butler.datastore.uri(info)) for info in infos.values()}
        objects = set(fs.find(fs._strip_protocol(f"{root}/{RUN}")))
        directories = {o for o in objects if any(o.startswith(r + "/") for r in registered)}
        assert registered - objects - {r for r in registered if fs.isdir(r)} == set()
        assert objects - registered - directories == set()
        print(f"soak: {len(killer.killed)} workers killed, client killed at {killed_at:.0f} s, "
              f"resume took {resumed_in:.0f} s, total {time.monotonic() - start:.0f} s")
    finally:
        del os.environ["PGPASSWORD"]
