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


@pytest.fixture
def pg_repo(tmp_path, postgres_server, monkeypatch):
    """A small repository on PostgreSQL, the pipetask run command line into it (without the
    output options) and the environment of its processes (password in PGPASSWORD)."""
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    url = postgres_server.url(postgres_server.create_database(), password=False)
    env = dict(
        os.environ,
        PYTHONPATH=f"{PIPELINE_TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    )
    repo = make_repo(tmp_path / "repo", n_visits=2, n_detectors=3, registry_url=url)
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(pipeline_yaml())
    command = [PIPETASK, "--log-level", "WARNING", "run", "-b", str(repo), "-p", str(pipe),
               "-i", "raw/all", "--executor", "sync", "--no-progress"]
    return repo, command, env


def _two_at_once(command, env):
    """Start ``command`` twice at the same moment; return [(returncode, output)]."""
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=240) for run in runs]
    return [(run.returncode, out + err) for run, (out, err) in zip(runs, outputs, strict=True)]


@pytest.mark.timeout(300)
def test_two_runs_at_once_into_one_postgres_repository(pg_repo):
    repo, command, env = pg_repo
    for returncode, text in _two_at_once([*command, "-o", "u/shared"], env):
        assert returncode == 0, text
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


@pytest.mark.timeout(300)
def test_two_runs_into_one_output_run_at_once(pg_repo):
    """Two ``pipetask run --output-run X`` at the same moment: neither dies on an init-output
    the other wrote (nor on the run lease's row): one executes, the other is refused in one
    line by the run's lease; the same again with --resume; every output is registered once."""
    repo, command, env = pg_repo
    for extra in ([], ["--resume"]):
        results = _two_at_once([*command, "--output-run", "u/same", *extra], env)
        for returncode, text in results:
            assert "Traceback" not in text and "Duplicate" not in text, text
            if returncode != 0:
                # refused in one line: by the lease while the other executes, or (when the
                # other was quicker and its first quantum is stored) by its outputs
                refusals = ("is being executed by process", "already has outputs in run")
                assert returncode == 2 and any(r in text for r in refusals), text
        assert any(returncode == 0 for returncode, _ in results), results
    butler = Butler(repo)
    got = registered(butler, "u/same")
    assert len(got["ea_out"]) == 6 and len(got["eb_out"]) == 6 and len(got["ec_out"]) == 2
    for label in ("a", "b", "c"):
        configs = butler.registry.query_datasets(f"{label}_config", collections=["u/same"])
        assert len(configs) == 1
