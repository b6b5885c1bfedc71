"""``pipetask run --mock`` and ``--mock-failure``: a pipeline's graph run with mock tasks that
read every input and write placeholders under ``_mock_`` names, on a real repository."""

from __future__ import annotations

import pytest
from _exec_repo import make_repo, pipeline_yaml, registered
from click.testing import CliRunner

from butler import Butler
from pipeline import Pipeline
from pipeline.cli import main as pipetask_main
from pipeline.definition.mock import MockFailure, mock_pipeline


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "repo", n_visits=2, n_detectors=3)


@pytest.fixture
def pipe(tmp_path):
    path = tmp_path / "pipe.yaml"
    path.write_text(pipeline_yaml())
    return path


def _run(repo, *args, code=0):
    result = CliRunner().invoke(
        pipetask_main,
        ["run", "-b", str(repo), "--executor", "sync", "--no-progress", *map(str, args)],
    )
    assert result.exit_code == code, result.output
    return result


def _latest_run(butler, chain):
    return butler.registry.get_collection_chain(chain)[0]


def test_mock_run_writes_placeholders_that_record_their_inputs(repo, pipe):
    _run(repo, "-p", pipe, "-i", "raw/all", "-o", "u/mock", "--mock")
    butler = Butler(repo, writeable=False)
    run = _latest_run(butler, "u/mock")
    made = registered(butler, run)
    written = {"ea_out", "eb_out", "ec_out", "a_metadata", "b_log", "c_config"}
    assert not written & set(made)  # nothing under a real output's name
    assert {"_mock_ea_out", "_mock_eb_out", "_mock_ec_out", "_mock_a_metadata",
            "_mock_b_log", "_mock_c_config"} <= set(made)
    assert len(made["_mock_eb_out"]) == 6 and len(made["_mock_ec_out"]) == 2
    raw = {r.id for r in butler.query_datasets("raw", collections="raw/all")}
    first = butler.get("_mock_ea_out", instrument="Sim", visit=1, detector=2, collections=run)
    assert first["mock"] and first["task"] == "exec_tasks.ExecA"
    assert first["mocks"] == "ea_out" and first["data_id"]["detector"] == 2
    (read,) = first["inputs"]
    assert read["dataset_type"] == "raw" and read["id"] in {str(i) for i in raw}
    gathered = butler.get("_mock_ec_out", instrument="Sim", visit=1, collections=run)
    expected = {str(r.id) for r in butler.query_datasets(
        "_mock_eb_out", collections=run, where="visit = 1")}
    assert {i["id"] for i in gathered["inputs"]} == expected and len(expected) == 3


def test_mock_outputs_are_never_taken_for_real_ones(repo, pipe):
    _run(repo, "-p", pipe, "-i", "raw/all", "-o", "u/both", "--mock")
    # a real run into the same chain, skipping what the chain already holds: nothing is
    _run(repo, "-p", pipe, "-i", "raw/all", "-o", "u/both", "--skip-existing-in", "u/both")
    butler = Butler(repo, writeable=False)
    real = registered(butler, _latest_run(butler, "u/both"))
    assert len(real["ec_out"]) == 2 and len(real["a_metadata"]) == 6
    assert butler.get("ec_out", instrument="Sim", visit=0, collections="u/both")["n"] == 3


def test_mock_failure_fails_the_matching_quanta_and_blocks_downstream(repo, pipe):
    result = _run(repo, "-p", pipe, "-i", "raw/all", "-o", "u/fail", "--mock",
                  "--mock-failure", "b:detector = 1 AND visit = 0:RuntimeError", code=1)
    output = " ".join(result.output.split())
    assert "failed _mock_b" in output and "RuntimeError: mock failure of _mock_b" in output
    assert output.count("failed _mock_b") == 1
    butler = Butler(repo, writeable=False)
    made = registered(butler, _latest_run(butler, "u/fail"))
    assert len(made["_mock_eb_out"]) == 5
    assert {dict(k)["visit"] for k in made["_mock_ec_out"]} == {1}  # visit 0's gather blocked
    every = _run(repo, "-p", pipe, "-i", "raw/all", "-o", "u/fail2", "--mock",
                 "--mock-failure", "a::", code=1)  # no WHERE: every quantum of a
    assert every.output.count("\nfailed _mock_a") == 6
    assert "ValueError: mock failure of _mock_a" in every.output


def test_bad_mock_options_are_one_line_and_exit_2(repo, pipe):
    for bad in ("nolabel:visit = 0:ValueError", "b:visit ==== 0:ValueError", "b::NoSuchError"):
        result = _run(repo, "-p", pipe, "-i", "raw/all", "-o", "u/bad", "--mock",
                      "--mock-failure", bad, code=2)
        assert "Traceback" not in result.output and "--mock-failure" in result.output
    result = _run(repo, "-p", pipe, "-i", "raw/all", "-o", "u/bad", "--mock-failure", "b::",
                  code=2)
    assert "--mock-failure needs --mock" in result.output


def test_mock_pipeline_keeps_the_wiring():
    original = Pipeline.from_string(pipeline_yaml()).graph()
    mocked = mock_pipeline(Pipeline.from_string(pipeline_yaml()),
                           [MockFailure.parse("c:visit = 1:")]).graph()
    assert list(mocked.tasks) == [f"_mock_{label}" for label in original.tasks]
    for label, node in original.tasks.items():
        mock = mocked.tasks[f"_mock_{label}"]
        assert mock.dimensions == node.dimensions
        assert [(e.kind, e.attribute, e.dimensions, e.multiple) for e in mock.inputs] == [
            (e.kind, e.attribute, e.dimensions, e.multiple) for e in node.inputs
        ]
    assert set(mocked.overall_inputs) == set(original.overall_inputs) == {"raw"}


def test_a_saved_mock_graph_runs_with_g(repo, pipe, tmp_path):
    saved = tmp_path / "mock.qgraph"
    result = CliRunner().invoke(pipetask_main, [
        "qgraph", "-b", str(repo), "-p", str(pipe), "-i", "raw/all", "--output-run", "u/g",
        "--mock", "--mock-failure", "c::", "--save-qgraph", str(saved)])
    assert result.exit_code == 0, result.output
    assert "_mock_a: 6" in result.output
    _run(repo, "-g", saved, code=1)  # every _mock_c quantum fails, as asked
    made = registered(Butler(repo, writeable=False), "u/g")
    assert len(made["_mock_eb_out"]) == 6 and "_mock_ec_out" not in made
    _run(repo, "-g", saved, "--mock", code=2)  # the graph says what runs: refused with -g
