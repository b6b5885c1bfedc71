"""Two ``pipetask run`` into the same run: the second refuses to start (the run's lease)."""

from __future__ import annotations

from pathlib import Path

from _exec_repo import make_repo, pipeline_yaml, registered
from _faults import run_pipetask, start_pipetask, wait_for_files

from butler import Butler


def test_second_client_of_a_run_is_refused_and_the_first_finishes(tmp_path):
    repo = make_repo(tmp_path / "repo", n_visits=2, n_detectors=4)
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(pipeline_yaml(a_config={"sleep": 0.8}))
    args = ["-b", str(repo), "-p", str(pipe), "-i", "raw/all", "--output-run", "same/run"]
    first = start_pipetask("run", *args, "--no-progress", "--executor", "sync")
    try:
        wait_for_files(repo, "/a_metadata/", 1, first)
        second = run_pipetask("run", *args, "--no-progress", "--executor", "sync", "--resume")
        stdout, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"being executed by process {first.pid}" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr
    assert first.returncode == 0, stdout + stderr
    butler = Butler(repo)
    got = registered(butler, "same/run")
    assert len(got["b_metadata"]) == 8 and len(got["c_metadata"]) == 2
    for name in ("a_metadata", "b_metadata", "eb_out"):  # every record matches its file
        for ref in butler.registry.query_datasets(name, collections=["same/run"]):
            info = butler.registry.get_stored_info([ref])[ref.id]
            assert Path(butler.get_uri(ref)).stat().st_size == info.file_size
    assert butler.registry.run_lease("same/run") is None  # given back
