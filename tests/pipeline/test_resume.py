"""Resume after the client itself was SIGKILLed mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from _exec_repo import HERE, make_graph, make_repo, output_digests, registered

from butler import Butler
from pipeline.execution.run import execute_graph


def test_client_killed_then_resumed_matches_uninterrupted_run(tmp_path):
    repo = make_repo(tmp_path / "repo", n_visits=2, n_detectors=8)
    reference = make_graph(repo, run="out/ref")
    assert execute_graph(Butler(repo), reference, executor="sync", progress=False).exit_code == 0
    qg = make_graph(repo, run="out/kill", a_config={"sleep": 0.2}, b_config={"sleep": 0.2})
    path = tmp_path / "g.qgraph"
    qg.save(path)
    env = dict(os.environ, PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    command = [sys.executable, str(HERE / "_client_run.py"), str(repo), str(path)]
    proc = subprocess.Popen(command, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill once some, not all, quanta are written
            if len([p for p in repo.rglob("*") if "out/kill/b_metadata/" in p.as_posix()]) >= 5:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    before = registered(Butler(repo), "out/kill")
    # some written, not all registered
    assert 1 <= len(before.get("b_metadata", ())) < qg.count("b")
    summary = execute_graph(Butler(repo), qg, executor="sync", progress=False)
    assert summary.exit_code == 0
    assert summary.total("skipped") >= 8
    butler = Butler(repo)
    got, ref = registered(butler, "out/kill"), registered(butler, "out/ref")
    assert got == ref
    # configs differ (the sleep field) but every data output is byte-identical
    skip = ("_metadata", "_log", "_config")
    assert output_digests(butler, "out/kill", skip) == output_digests(butler, "out/ref", skip)
