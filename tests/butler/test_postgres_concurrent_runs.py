"""Two ``pipetask run``s into one repository on PostgreSQL at the same moment: both finish,
every output of both is registered, and the output chain holds both runs (before, the chain
was rewritten from a stale read and one run fell out of it; runs started in the same second
shared a name and one died on an init-output)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PIPELINE_TESTS = Path(__file__).parents[1] / "pipeline"
sys.path.insert(0, str(PIPELINE_TESTS))
from _exec_repo import make_repo, pipeline_yaml, registered  # noqa: E402

from butler import Butler  # noqa: E402

PIPETASK = str(Path(sys.executable).parent / "pipetask")


@pytest.mark.timeout(300)
def test_two_runs_at_once_into_one_postgres_repository(tmp_path, postgres_server):
    url = postgres_server.url(postgres_server.create_database(), password=False)
    env = dict(
        os.environ,
        PGPASSWORD=postgres_server.password,
        PYTHONPATH=f"{PIPELINE_TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    )
    os.environ["PGPASSWORD"] = postgres_server.password
    try:
        repo = make_repo(tmp_path / "repo", n_visits=2, n_detectors=3, registry_url=url)
        pipe = tmp_path / "pipe.yaml"
        pipe.write_text(pipeline_yaml())
        command = [PIPETASK, "--log-level", "WARNING", "run", "-b", str(repo), "-p", str(pipe),
                   "-i", "raw/all", "-o", "u/shared", "--executor", "sync", "--no-progress"]
        runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [run.communicate(timeout=240) for run in runs]
        for run, (out, err) in zip(runs, outputs, strict=True):
            assert run.returncode == 0, out + err
        butler = Butler(repo)
        chain = butler.registry.get_collection_chain("u/shared")
        run_names = [c for c in chain if c.startswith("u/shared/")]
        assert len(run_names) == 2 and len(set(run_names)) == 2, chain
        assert chain[-1] == "raw/all"
        for name in run_names:
            got = registered(butler, name)
            assert len(got["ea_out"]) == 6 and len(got["eb_out"]) == 6, (name, got.keys())
            assert len(got["ec_out"]) == 2
            for label in ("a", "b", "c"):
                assert butler.registry.query_datasets(f"{label}_config", collections=[name])
    finally:
        del os.environ["PGPASSWORD"]


@pytest.mark.timeout(300)
def test_two_runs_into_one_output_run_at_once(tmp_path, postgres_server):
    """Two ``pipetask run --output-run X`` at the same moment: neither dies on an init-output
    the other wrote (nor on the run lease's row): one executes, the other is refused in one
    line or finds the work done; a resume afterwards has nothing left and every output is
    registered once."""
    url = postgres_server.url(postgres_server.create_database(), password=False)
    env = dict(
        os.environ,
        PGPASSWORD=postgres_server.password,
        PYTHONPATH=f"{PIPELINE_TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    )
    os.environ["PGPASSWORD"] = postgres_server.password
    try:
        repo = make_repo(tmp_path / "repo", n_visits=2, n_detectors=3, registry_url=url)
        pipe = tmp_path / "pipe.yaml"
        pipe.write_text(pipeline_yaml())
        command = [PIPETASK, "--log-level", "WARNING", "run", "-b", str(repo), "-p", str(pipe),
                   "-i", "raw/all", "--output-run", "u/same", "--executor", "sync",
                   "--no-progress"]
        for attempt in range(2):  # the race is in the first second: try it a few times
            runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True) for _ in range(2)]
            outputs = [run.communicate(timeout=240) for run in runs]
            for run, (out, err) in zip(runs, outputs, strict=True):
                text = out + err
                assert "Traceback" not in text and "Duplicate" not in text, text
                if run.returncode != 0:
                    assert run.returncode == 2, text
                    assert "is being executed by process" in text, text
            assert any(run.returncode == 0 for run in runs), outputs
            command = [*command, "--resume"] if attempt == 0 else command
        butler = Butler(repo)
        got = registered(butler, "u/same")
        assert len(got["ea_out"]) == 6 and len(got["eb_out"]) == 6 and len(got["ec_out"]) == 2
        for label in ("a", "b", "c"):
            configs = butler.registry.query_datasets(f"{label}_config", collections=["u/same"])
            assert len(configs) == 1
    finally:
        del os.environ["PGPASSWORD"]
