"""Resume adopts only what this run made, and a changed config never leaves a mix.

The ``<label>_metadata`` of every quantum records its provenance (quantum ID, task label,
run, config digest); resume checks it before adopting unregistered files, and a config
replaced with ``--clobber-outputs`` re-runs every quantum made with the old one.
"""

from __future__ import annotations

from pathlib import Path

from _exec_repo import make_graph, make_repo, pipeline_yaml
from _faults import run_pipetask

from butler import Butler
from pipeline.execution.run import execute_graph

N_VISITS, N_DETECTORS = 2, 4


def _b_values(butler, run):
    """{(visit, detector): eb_out value} of the run (raw value v*100+d, a doubles it)."""
    return {
        (ref.data_id["visit"], ref.data_id["detector"]): butler.get(ref)["value"]
        for ref in butler.registry.query_datasets("eb_out", collections=[run])
    }


def _expected(offset):
    return {(v, d): (v * 100 + d) * 2 + offset for v in range(N_VISITS) for d in range(N_DETECTORS)}


def _c_values(butler, run):
    return {
        ref.data_id["visit"]: butler.get(ref)["values"]
        for ref in butler.registry.query_datasets("ec_out", collections=[run])
    }


def test_files_left_by_a_removed_run_are_not_adopted(tmp_path):
    repo = make_repo(tmp_path / "repo", n_visits=N_VISITS, n_detectors=N_DETECTORS)
    butler = Butler(repo)
    first = make_graph(repo, run="prov/run", b_config={"offset": 1})
    assert execute_graph(butler, first, executor="sync", progress=False).exit_code == 0
    # the run is removed but its files stay (remove-runs of an older version, or unstore=False)
    butler.remove_runs(["prov/run"], unstore=False)
    leftovers = [
        Path(butler.datastore.uri(butler.datastore.predict(q.metadata_ref)))
        for q in first.iter_quanta("b")
    ]
    assert all(path.exists() for path in leftovers)
    second = make_graph(repo, run="prov/run", b_config={"offset": 5})
    summary = execute_graph(butler, second, executor="sync", progress=False)
    assert summary.exit_code == 0
    assert summary.counts["a"]["skipped"] == N_VISITS * N_DETECTORS  # same config: adopted
    assert summary.counts["b"]["succeeded"] == N_VISITS * N_DETECTORS  # another config: re-run
    assert _b_values(butler, "prov/run") == _expected(5)


def test_resume_with_clobbered_config_reruns_everything_it_made(tmp_path):
    repo = make_repo(tmp_path / "repo", n_visits=N_VISITS, n_detectors=N_DETECTORS)
    fail = tmp_path / "fail.txt"
    fail.write_text("1,2\n")  # one b quantum fails: the run is unfinished
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(pipeline_yaml(b_config={"failFile": str(fail)}))
    args = ["-b", str(repo), "-p", str(pipe), "-o", "u/cfg", "--no-progress", "--executor", "sync"]
    out = run_pipetask("run", *args, "-i", "raw/all")
    assert out.returncode == 1, out.stdout + out.stderr
    fail.write_text("")
    out = run_pipetask("run", *args, "--resume", "--clobber-outputs", "-c", "b:offset=5")
    assert out.returncode == 0, out.stdout + out.stderr
    butler = Butler(repo)
    run = butler.registry.get_collection_chain("u/cfg")[0]
    assert _b_values(butler, run) == _expected(5)  # not one value made with offset 1
    want = {v: sorted(x for (w, _), x in _expected(5).items() if w == v) for v in range(2)}
    assert _c_values(butler, run) == want


def test_extend_run_with_clobbered_config_reruns_the_changed_task(tmp_path):
    repo = make_repo(tmp_path / "repo", n_visits=N_VISITS, n_detectors=N_DETECTORS)
    butler = Butler(repo)
    first = make_graph(repo, run="ext/run")
    assert execute_graph(butler, first, executor="sync", progress=False).exit_code == 0
    changed = make_graph(repo, run="ext/run", b_config={"offset": 7})
    summary = execute_graph(
        butler, changed, executor="sync", progress=False, extend_run=True, clobber_outputs=True
    )
    assert summary.exit_code == 0
    assert summary.counts["a"]["skipped"] == N_VISITS * N_DETECTORS  # a's config is the same
    assert summary.counts["b"]["succeeded"] == N_VISITS * N_DETECTORS
    assert summary.counts["c"]["succeeded"] == N_VISITS
    assert _b_values(butler, "ext/run") == _expected(7)


def test_resume_removes_temporaries_of_a_killed_writer(tmp_path):
    repo = make_repo(tmp_path / "repo", n_visits=1, n_detectors=2)
    butler = Butler(repo)
    graph = make_graph(repo, run="tmp/run")
    assert execute_graph(butler, graph, executor="sync", progress=False).exit_code == 0
    ref = next(iter(graph.iter_quanta("b"))).outputs["out"][0]
    final = Path(butler.datastore.uri(butler.datastore.predict(ref)))
    temporary = final.parent / f".{final.name}.tmp-{'0' * 32}"
    temporary.write_text("half a file")
    summary = execute_graph(butler, graph, executor="sync", progress=False)
    assert summary.exit_code == 0
    assert not temporary.exists() and final.exists()
