"""The shipped SLURM and Kubernetes specs, built with dask-jobqueue and dask-kubernetes, and a
batch cluster whose job submission fails (no ``sbatch`` here) stopping at once with its error."""

from __future__ import annotations

import importlib.util
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
import yaml

from butler.testing.servers import free_port
from cluster import (
    SPEC_DIR,
    ClusterSpecError,
    ClusterStartupError,
    get_client,
    kubernetes_cluster_spec,
    load_spec,
    slurm_cluster_options,
)


def _needs(module):
    if importlib.util.find_spec(module) is None:  # not importorskip: no import side effects
        pytest.skip(f"{module} is not installed")


def test_slurm_spec_job_script():
    _needs("dask_jobqueue")
    sigint = signal.getsignal(signal.SIGINT)
    from cluster import _import_plugin

    SLURMCluster = _import_plugin("dask_jobqueue").SLURMCluster  # noqa: N806
    assert signal.getsignal(signal.SIGINT) is sigint  # its import-time SIGINT handler is kept out

    spec = load_spec("slurm")
    assert slurm_cluster_options(spec)["scheduler_options"] == {"host": "0.0.0.0", "port": 8786}
    port = free_port()  # the shipped address, moved to a free port of this machine
    spec["scheduler_address"] = f"127.0.0.1:{port}"
    options = slurm_cluster_options(spec)
    options["scheduler_options"]["dashboard_address"] = ":0"
    cluster = SLURMCluster(**options)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert f"tcp://127.0.0.1:{port}" in script  # workers are pointed at the chosen address
    for line in ("#SBATCH -p normal", "#SBATCH -A myproject", "#SBATCH -t 02:00:00",
                 "#SBATCH --exclusive=user", "#SBATCH --cpus-per-task=1"):
        assert line in script, line
    assert re.search(r"#SBATCH --mem=3\.7G|#SBATCH --mem=4G", script)
    assert "--nthreads 1" in script and "--local-directory $TMPDIR" in script


def test_kubernetes_spec_names_the_dockerfile_image():
    _needs("dask_kubernetes")
    spec = kubernetes_cluster_spec(load_spec("kubernetes"))
    assert spec["kind"] == "DaskCluster" and spec["metadata"]["name"] == "skyquanta"
    workers = spec["spec"]["worker"]
    assert workers["replicas"] == 4
    container = workers["spec"]["containers"][0]
    image = container["image"]
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "4G"}
    assert {"name": "OMP_NUM_THREADS", "value": "1"} in container["env"]
    assert spec["spec"]["scheduler"]["service"]["type"] == "ClusterIP"
    dockerfile = (SPEC_DIR / "Dockerfile").read_text()
    assert f"-t {image} ." in dockerfile  # the image the spec runs is the one it builds
    assert re.search(r"^RUN pip install '\.\[s3", dockerfile, re.M)  # installs the project
    assert f"-t {image}" in (SPEC_DIR / "kubernetes.yaml").read_text()
    assert "Dockerfile" in (SPEC_DIR / "README.md").read_text()


@pytest.mark.timeout(120)
def test_failed_job_submission_stops_at_once(tmp_path, monkeypatch):
    _needs("dask_jobqueue")
    if shutil.which("sbatch"):
        pytest.skip("this machine has sbatch: submission would not fail")
    spec = load_spec("slurm")
    spec.update(scheduler_address=f"127.0.0.1:{free_port()}", workers=1, startup_timeout=60)
    spec["options"]["scheduler_options"] = {"dashboard_address": ":0"}
    path = tmp_path / "slurm.yaml"
    path.write_text(yaml.safe_dump(spec))
    start = time.monotonic()
    with pytest.raises(ClusterStartupError, match=r"no worker joined.*sbatch") as excinfo:
        get_client(path)
    assert time.monotonic() - start < 30  # not the whole start-up timeout
    assert "\n" not in str(excinfo.value)


@pytest.mark.timeout(120)
def test_startup_timeout_without_workers(tmp_path, monkeypatch):
    """Submission "succeeds" (a stand-in sbatch on PATH) but no worker ever joins."""
    _needs("dask_jobqueue")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sbatch").write_text("#!/bin/sh\necho 'Submitted batch job 42'\n")
    (fake / "sbatch").chmod(0o755)
    (fake / "scancel").write_text("#!/bin/sh\nexit 0\n")
    (fake / "scancel").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{Path(shutil.which('sh')).parent}")
    spec = load_spec("slurm")
    spec.update(scheduler_address=f"127.0.0.1:{free_port()}", workers=1, startup_timeout=3)
    spec["options"]["scheduler_options"] = {"dashboard_address": ":0"}
    path = tmp_path / "slurm.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ClusterStartupError, match=r"no worker joined in 3 s"):
        get_client(path)


@pytest.mark.parametrize("key, value", [("scheduler_address", "nohost"),
                                        ("startup_timeout", "soon")])
def test_bad_spec_values_name_the_key(tmp_path, key, value):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"kind": "slurm", key: value}))
    with pytest.raises(ClusterSpecError, match=f"{path}.*{key}"):
        load_spec(path)


@pytest.mark.timeout(180)
def test_pipetask_run_reports_a_failed_cluster_in_one_line(tmp_path):
    import os
    import subprocess
    import sys

    if shutil.which("sbatch"):
        pytest.skip("this machine has sbatch: submission would not fail")
    pipeline_dir = Path(__file__).parents[1] / "pipeline"
    sys.path.insert(0, str(pipeline_dir))
    from _exec_repo import make_repo, pipeline_yaml

    repo = make_repo(tmp_path / "repo", n_visits=1, n_detectors=1)
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(pipeline_yaml())
    spec = load_spec("slurm")
    spec.update(scheduler_address=f"127.0.0.1:{free_port()}", workers=1, startup_timeout=60)
    spec["options"]["scheduler_options"] = {"dashboard_address": ":0"}
    path = tmp_path / "slurm.yaml"
    path.write_text(yaml.safe_dump(spec))
    path_var = f"{pipeline_dir}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    env = dict(os.environ, PYTHONPATH=path_var)
    out = subprocess.run(
        [str(Path(sys.executable).parent / "pipetask"), "run", "-b", str(repo), "-p", str(pipe),
         "-i", "raw/all", "--output-run", "r", "--cluster-config", str(path), "--no-progress"],
        capture_output=True, text=True, timeout=150, env=env,
    )
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr[-3000:]
    assert "no worker joined" in lines[0] and "sbatch" in lines[0]
    assert "Traceback" not in out.stderr
