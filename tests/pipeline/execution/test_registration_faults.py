"""Stored means stored: registration under a busy registry, with real processes.

Two ``pipetask run`` processes share one SQLite registry, and a third process holds the
registry's write lock: a quantum is reported succeeded only when its outputs are registered.
"""

from __future__ import annotations

import subprocess

from _exec_repo import make_repo, pipeline_yaml, registered
from _faults import ENV, hold_registry_lock, resume_command_in, start_pipetask, wait_for_files

from butler import Butler


def _all_registered(butler, run, n_visits, n_detectors):
    got = registered(butler, run)
    per_detector = n_visits * n_detectors
    for name in ("ea_out", "a_metadata", "eb_out", "b_metadata"):
        assert len(got.get(name, ())) == per_detector, (run, name)
    for name in ("ec_out", "c_metadata"):
        assert len(got.get(name, ())) == n_visits, (run, name)
    for ref in butler.registry.query_datasets("eb_out", collections=[run]):
        assert butler.get(ref)["value"] >= 1  # every registered record has its file


def test_two_concurrent_runs_into_one_repository_register_everything(tmp_path):
    n_visits, n_detectors = 4, 12
    repo = make_repo(tmp_path / "repo", n_visits=n_visits, n_detectors=n_detectors)
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(pipeline_yaml())
    common = ["-b", str(repo), "-p", str(pipe), "-i", "raw/all", "--no-progress"]
    procs = [
        start_pipetask("run", *common, "--output-run", f"con/{i}", "--executor", "sync")
        for i in range(2)
    ]
    outs = [proc.communicate(timeout=240) for proc in procs]
    for proc, (stdout, stderr) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, stdout + stderr
    butler = Butler(repo)
    for i in range(2):
        _all_registered(butler, f"con/{i}", n_visits, n_detectors)


def _consistent(butler, run, n_detectors):
    """Nothing registered downstream of an output that is not registered."""
    got = registered(butler, run)
    a_done = got.get("a_metadata", set())
    for key in got.get("b_metadata", set()):
        assert key in a_done, f"b {key} registered without its input"
    b_done = got.get("b_metadata", set())
    for key in got.get("c_metadata", set()):
        visit = dict(key)["visit"]
        assert sum(1 for k in b_done if dict(k)["visit"] == visit) == n_detectors, key
    return got


def test_registry_locked_too_long_is_unregistered_then_resumed(tmp_path):
    repo = make_repo(tmp_path / "repo", n_visits=2, n_detectors=8)
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(pipeline_yaml(a_config={"sleep": 0.25}))
    args = ["-b", str(repo), "-p", str(pipe), "-i", "raw/all", "-o", "u/lock", "--no-progress"]
    proc = start_pipetask("run", *args, "--executor", "sync", "--registry-timeout", "1")
    try:
        wait_for_files(repo, "/a_metadata/", 3, proc)
        holder = hold_registry_lock(repo, 3.0)
        stdout, stderr = proc.communicate(timeout=120)
        holder.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stdout + stderr
    assert "could not be registered" in stderr and "--resume" in stderr, stderr
    assert "Traceback" not in stderr
    butler = Butler(repo)
    run = butler.registry.get_collection_chain("u/lock")[0]
    got = _consistent(butler, run, 8)
    assert len(got.get("a_metadata", ())) < 16
    # the printed command resumes the same run and registers everything
    resumed = subprocess.run(
        resume_command_in(stderr), capture_output=True, text=True, timeout=120, env=ENV
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    _all_registered(Butler(repo), run, 2, 8)
