"""LSST's collection semantics of ``pipetask run``: chain prepend, ``-g`` into the graph's own
run, and a run that could not start leaving the collections as they were."""

from __future__ import annotations

import pytest
from _exec_repo import make_repo, pipeline_yaml, registered
from click.testing import CliRunner

from butler import Butler
from butler.registry import CollectionType
from pipeline.cli import main as pipetask_main


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "repo", n_visits=1, n_detectors=2)


@pytest.fixture
def pipe(tmp_path):
    path = tmp_path / "pipe.yaml"
    path.write_text(pipeline_yaml(tasks=("a", "b")))
    return path


def _pipetask(*args):
    result = CliRunner().invoke(pipetask_main, [str(a) for a in args], catch_exceptions=False)
    return result


def _run(repo, *args):
    return _pipetask("run", "-b", repo, "--executor", "sync", "--no-progress", *args)


def _chain(repo, name):
    return list(Butler(repo, writeable=False).registry.get_collection_chain(name))


def _runs(repo):
    registry = Butler(repo, writeable=False).registry
    return {n for n, _ in registry.query_collections(types=[CollectionType.RUN])}


def test_new_run_is_prepended_and_older_runs_stay(repo, pipe):
    first = _run(repo, "-p", pipe, "-i", "raw/all", "-o", "u/out", "--output-run", "u/out/r1")
    assert first.exit_code == 0, first.output
    assert _chain(repo, "u/out") == ["u/out/r1", "raw/all"]
    second = _run(repo, "-p", pipe, "-i", "raw/all", "-o", "u/out", "--output-run", "u/out/r2",
                  "-c", "b:offset=5")
    assert second.exit_code == 0, second.output
    assert _chain(repo, "u/out") == ["u/out/r2", "u/out/r1", "raw/all"]
    butler = Butler(repo, writeable=False)
    assert registered(butler, "u/out/r1")["eb_out"]  # still there, visible through the chain
    found = butler.registry.query_datasets("eb_out", collections=["u/out"], find_first=True)
    assert {r.run for r in found} == {"u/out/r2"}


def test_saved_graph_runs_into_its_own_run(repo, pipe, tmp_path):
    graph = tmp_path / "g.qgraph"
    made = _pipetask("qgraph", "-b", repo, "-p", pipe, "-i", "raw/all", "-o", "u/g",
                     "--output-run", "u/g/saved", "--save-qgraph", graph)
    assert made.exit_code == 0, made.output
    assert "u/g/saved" not in _runs(repo)  # qgraph writes nothing
    done = _run(repo, "-g", graph, "-o", "u/g")
    assert done.exit_code == 0, done.output
    assert _chain(repo, "u/g") == ["u/g/saved", "raw/all"]
    assert _runs(repo) == {"raw/all", "u/g/saved"}  # no empty timestamped run
    butler = Butler(repo, writeable=False)
    assert len(butler.registry.query_datasets("eb_out", collections=["u/g"])) == 2


def test_saved_graph_without_output(repo, pipe, tmp_path):
    graph = tmp_path / "g.qgraph"
    _pipetask("qgraph", "-b", repo, "-p", pipe, "-i", "raw/all", "--output-run", "u/plain",
              "--save-qgraph", graph)
    done = _run(repo, "-g", graph)
    assert done.exit_code == 0, done.output
    assert registered(Butler(repo, writeable=False), "u/plain")["eb_out"]


@pytest.mark.parametrize(
    "extra, flag",
    [
        (["-p", "PIPE"], "-p/--pipeline"),
        (["-i", "raw/all"], "-i/--input"),
        (["-c", "b:offset=3"], "-c/--config"),
        (["-d", "visit = 0"], "-d/--data-query"),
        (["--output-run", "u/other"], "--output-run"),
    ],
)
def test_saved_graph_refuses_graph_building_options(repo, pipe, tmp_path, extra, flag):
    graph = tmp_path / "g.qgraph"
    _pipetask("qgraph", "-b", repo, "-p", pipe, "-i", "raw/all", "--output-run", "u/s",
              "--save-qgraph", graph)
    extra = [str(pipe) if e == "PIPE" else e for e in extra]
    refused = _run(repo, "-g", graph, "-o", "u/s2", *extra)
    assert refused.exit_code == 2
    assert flag in refused.output and "Traceback" not in refused.output
    assert _runs(repo) == {"raw/all"}


def _bad_cluster_spec(tmp_path):
    spec = tmp_path / "bad_cluster.yaml"
    spec.write_text("kind: nonsense\n")
    return spec


def test_run_that_cannot_start_leaves_no_collections(repo, pipe, tmp_path):
    before = _runs(repo)
    failed = _pipetask("run", "-b", repo, "-p", pipe, "-i", "raw/all", "-o", "u/never",
                       "--cluster-config", _bad_cluster_spec(tmp_path), "--no-progress")
    assert failed.exit_code == 2, failed.output
    assert "bad_cluster.yaml" in failed.output
    registry = Butler(repo, writeable=False).registry
    assert not [n for n, _ in registry.query_collections() if n.startswith("u/never")]
    assert _runs(repo) == before


def test_resume_that_cannot_start_keeps_the_chain_and_run(repo, tmp_path):
    fail = tmp_path / "fail.txt"
    fail.write_text("0,1\n")
    pipe = tmp_path / "failing.yaml"
    pipe.write_text(pipeline_yaml(a_config={"failFile": str(fail)}, tasks=("a", "b")))
    assert _run(repo, "-p", pipe, "-i", "raw/all", "-o", "u/keep").exit_code == 1
    chain = _chain(repo, "u/keep")
    held = registered(Butler(repo, writeable=False), chain[0])
    failed = _pipetask("run", "-b", repo, "-p", pipe, "-o", "u/keep", "--resume",
                       "--cluster-config", _bad_cluster_spec(tmp_path), "--no-progress")
    assert failed.exit_code == 2, failed.output
    assert _chain(repo, "u/keep") == chain
    after = registered(Butler(repo, writeable=False), chain[0])
    # resume clears the failed quantum's log before the executor starts (execute_graph's order)
    assert {k: v for k, v in after.items() if k != "a_log"} == {
        k: v for k, v in held.items() if k != "a_log"
    }


def test_remove_collection_refuses_runs_and_chain_members(repo):
    from butler._errors import CollectionError, CollectionTypeError

    registry = Butler(repo).registry
    registry.register_collection("outer", CollectionType.CHAINED)
    registry.register_collection("inner", CollectionType.CHAINED)
    registry.set_collection_chain("outer", ["inner", "raw/all"])
    with pytest.raises(CollectionTypeError, match="RUN"):
        registry.remove_collection("raw/all")
    with pytest.raises(CollectionError, match="child of outer"):
        registry.remove_collection("inner")
    registry.remove_collection("outer")
    registry.remove_collection("inner")
    assert _runs(repo) == {"raw/all"}
    assert {n for n, _ in registry.query_collections()} == {"raw/all"}
