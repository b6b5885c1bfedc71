"""``pipetask run -j 1`` runs the quanta in the client process (as LSST's ``pipetask``), through
the same worker function as ``-j 2`` on its pool of worker processes and as ``--executor dask
-j 2`` on a local dask cluster: all store the same datasets with the same bytes (task metadata
and logs aside). The workers of both are forked from the server pipetask launched before its
own imports (`cluster.worker_server`), not spawned by it."""

from __future__ import annotations

from _exec_repo import make_repo, output_digests, pipeline_yaml, registered
from _faults import start_pipetask

from butler import Butler


def _run(
    repo, pipe, run: str, jobs: str, pid_file, executor: str = "auto"
) -> tuple[int, set[int], set[int]]:
    """Run pipetask into chain ``run`` (RUN ``run/run``); return its pid, the pids of the
    processes that ran the quanta and their parents' pids."""
    pid_file.write_text("")
    proc = start_pipetask(
        "run", "-b", str(repo), "-p", str(pipe), "-i", "raw/all", "-o", run,
        "--output-run", f"{run}/run", "-j", jobs, "--no-progress", "--executor", executor,
    )
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, out + err
    lines = [line.split() for line in pid_file.read_text().splitlines() if line.strip()]
    return proc.pid, {int(pid) for pid, _ in lines}, {int(parent) for _, parent in lines}


def test_jobs_1_in_process_same_outputs_as_jobs_2(tmp_path):
    repo = make_repo(tmp_path / "repo", n_visits=2, n_detectors=3)
    pid_file = tmp_path / "pids.txt"
    behaviour = {"pidFile": str(pid_file)}
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(pipeline_yaml(a_config=behaviour, b_config=behaviour, c_config=behaviour))

    client, workers, _ = _run(repo, pipe, "u/j1", "1", pid_file)
    assert workers == {client}  # every quantum ran inside pipetask itself
    client, workers, parents = _run(repo, pipe, "u/j2", "2", pid_file)
    assert workers and client not in workers  # ... and on pool worker processes with -j 2,
    assert len(parents) == 1 and client not in parents  # forked from one server process
    client, workers, parents = _run(repo, pipe, "u/dask", "2", pid_file, "dask")
    assert workers and client not in workers  # ... and on a local dask cluster's workers
    assert len(parents) == 1 and client not in parents

    butler = Butler(repo, writeable=False)
    one, two = registered(butler, "u/j1/run"), registered(butler, "u/j2/run")
    assert one == two == registered(butler, "u/dask/run")
    assert {"ea_out", "eb_out", "ec_out", "a_metadata", "a_log", "a_config"} <= set(one)
    digests = output_digests(butler, "u/j1/run")
    assert len(digests) == 6 + 6 + 2 + 3  # outputs, and a config per task
    assert digests == output_digests(butler, "u/j2/run") == output_digests(butler, "u/dask/run")
