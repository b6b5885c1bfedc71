"""The default pipeline on an external cluster (a scheduler and 2 workers started as
subprocesses), with the registry on a real PostgreSQL server and the files on a real S3
server: nothing is shared but the network (the workers get no PostgreSQL credentials)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from butler.testing.servers import stopped_with_this_process
from cluster.processes import SchedulerProcesses

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytest.importorskip("galsim")


def _run(args, env, timeout=300):
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


@pytest.fixture
def scheduler(s3_server, tmp_path):
    """A scheduler and two workers (their environment reaches S3, not PostgreSQL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    with open(tmp_path / "cluster.log", "w") as log:
        with (
            SchedulerProcesses(2, env=env, log=log) as procs,
            stopped_with_this_process([p.pid for p in procs.procs]),  # a killed test run too
        ):
            yield procs.address, procs.worker_pids


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_default_pipeline_on_external_cluster_postgres_s3(
    tmp_path, postgres_server, s3_server, s3_bucket, scheduler
):
    address, worker_pids = scheduler
    repo = tmp_path / "repo"
    url = postgres_server.url(postgres_server.create_database(), password=False)
    env = dict(os.environ, PGPASSWORD=postgres_server.password)
    _run([str(BIN / "butler"), "create", str(repo), "--db", url,
          "--datastore-root", f"s3://{s3_bucket}/files",
          "--storage-option", f"endpoint_url={s3_server.endpoint_url}"], env)
    _run([str(BIN / "butler"), "simulate", str(repo), "--detectors", "2", "--size", "384",
          "--visits", "1", "-j", "1", "--star-density", "60000"], env)
    _run([str(BIN / "pipetask"), "run", "-b", str(repo), "-p", str(ROOT / "pipelines.yaml"),
          "-i", "SimCam/raw/all,SimCam/calib,refcats", "-o", "u/ext", "--cluster", address,
          "--no-progress"], env, timeout=500)
    os.environ["PGPASSWORD"] = postgres_server.password
    try:
        from butler import Butler

        butler = Butler(repo, collections="u/ext")
        refs = {
            name: butler.query_datasets(name)
            for name in ("icExp", "icSrc", "icExpBackground", "characterizeImage_metadata")
        }
        assert all(len(found) == 2 for found in refs.values()), refs
        infos = butler.registry.get_stored_info([r for found in refs.values() for r in found])
        for info in infos.values():  # every registered output is an object in the bucket
            assert butler.datastore.uri(info).startswith(f"s3://{s3_bucket}/files/")
            assert butler.datastore.exists(info)
        metadata = [butler.get(ref) for ref in refs["characterizeImage_metadata"]]
        ran_on = {m["quantum"]["pid"] for m in metadata}
        assert ran_on <= worker_pids and os.getpid() not in ran_on
        catalog = butler.get(refs["icSrc"][0])
        assert len(catalog) > 0
    finally:
        del os.environ["PGPASSWORD"]
