"""pipetask options LSST users type: -t, --data-id-table, -s, --register-dataset-types, -h,
run --help in sections with examples, report naming its arguments."""

from __future__ import annotations

import pytest
from _exec_repo import make_repo, pipeline_yaml, registered
from click.testing import CliRunner

from butler import Butler
from butler.cli import main as butler_main
from pipeline import Pipeline
from pipeline.cli import main as pipetask_main


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "repo", n_visits=2, n_detectors=3)


def _pipetask(*args, code=0):
    result = CliRunner().invoke(pipetask_main, [str(a) for a in args])
    assert result.exit_code == code, result.output
    if code == 2:  # a refused command: one line, no traceback (a failing task logs its own)
        assert "Traceback" not in result.output
    return result


def _run(repo, *args, code=0):
    return _pipetask("run", "-b", repo, "--executor", "sync", "--no-progress", *args, code=code)


def _data_ids(repo, run, dataset_type):
    return {dict(k)["visit"] * 10 + dict(k)["detector"]
            for k in registered(Butler(repo, writeable=False), run)[dataset_type]}


def test_task_option_builds_a_pipeline(repo):
    _run(repo, "-t", "exec_tasks.ExecA:a", "-t", "exec_tasks.ExecB:b", "-i", "raw/all",
         "--output-run", "u/t", "--register-dataset-types")
    assert _data_ids(repo, "u/t", "eb_out") == {0, 1, 2, 10, 11, 12}
    _run(repo, "-t", "exec_tasks.ExecA", "-p", "x.yaml", "-i", "raw/all", "--output-run", "u/x",
         code=2)
    bad = _run(repo, "-t", "ExecA", "-i", "raw/all", "--output-run", "u/y", code=2)
    assert "module.Class" in bad.output


def test_data_id_table_restricts_the_graph(repo, tmp_path):
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(pipeline_yaml(tasks=("a",)))
    table = tmp_path / "ids.csv"
    table.write_text("visit,detector\n0,2\n1,0\n")
    _run(repo, "-p", pipe, "-i", "raw/all", "--output-run", "u/table", "--data-id-table", table)
    assert _data_ids(repo, "u/table", "ea_out") == {2, 10}
    single = tmp_path / "det.csv"
    single.write_text("detector\n1\n")
    _run(repo, "-p", pipe, "-i", "raw/all", "--output-run", "u/single", "--data-id-table", single,
         "-d", "visit = 1")
    assert _data_ids(repo, "u/single", "ea_out") == {11}
    empty = tmp_path / "empty.csv"
    empty.write_text("visit\n")
    result = _run(repo, "-p", pipe, "-i", "raw/all", "--output-run", "u/e", "--data-id-table",
                  empty, code=2)
    assert "--data-id-table" in result.output


def test_save_pipeline_writes_what_runs(repo, tmp_path):
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(pipeline_yaml(tasks=("a", "b")))
    saved = tmp_path / "saved.yaml"
    _run(repo, "-p", pipe, "-c", "b:offset=7", "-s", saved, "-i", "raw/all", "--output-run", "u/s")
    config = {td.label: td.config for td in Pipeline.from_file(saved).task_defs()}
    assert config["b"].offset == 7


def test_help_short_option_sections_and_examples():
    text = _pipetask("run", "-h").output
    for heading in ("Pipeline:", "Data and collections:", "Quantum graph:", "Execution:",
                    "Examples:"):
        assert heading in text
    assert text.index("--data-id-table") > text.index("Data and collections:")
    assert "pipetask run -b REPO -g g.qgraph" in text
    assert CliRunner().invoke(butler_main, ["-h"]).exit_code == 0
    report = _pipetask("report", "-h").output
    assert "[REPO] OUTPUT" in report and "output collection" in report


def test_fail_fast_stops_at_the_first_failure(repo, tmp_path):
    fail = tmp_path / "fail.txt"
    fail.write_text("0,0\n")
    pipe = tmp_path / "fail.yaml"
    pipe.write_text(pipeline_yaml(a_config={"failFile": str(fail)}, tasks=("a",)))
    args = ["-p", pipe, "-i", "raw/all", "--clustering", "off"]
    everything = _run(repo, *args, "--output-run", "u/all", code=1)
    assert len(registered(Butler(repo, writeable=False), "u/all")["ea_out"]) == 5
    stopped = _run(repo, *args, "--output-run", "u/fast", "--fail-fast", code=1)
    assert "stopped at the first failure (--fail-fast)" in stopped.output
    done = registered(Butler(repo, writeable=False), "u/fast").get("ea_out", set())
    assert len(done) < 5  # nothing was submitted after the failure
    assert "injected failure for 0,0" in everything.output


def test_show_lsst_items(repo, tmp_path):
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(pipeline_yaml(tasks=("a", "b")) + "subsets:\n  both: [a, b]\n")
    out = _pipetask("build", "-p", pipe, "-c", "b:offset=4", "--show", "config=b::off*",
                    "--show", "history=b::offset", "--show", "subsets", "--show", "task-graph",
                    "--show", "inputs", "--show", "pipeline-graph").output
    assert "b.offset: 4" in out
    assert "b.offset = 4  # -c" in out
    assert "both: a, b" in out
    assert "a -> b" in out and "b -> (nothing)" in out
    assert "raw (detector, instrument, visit) [StructuredDataDict]" in out
    assert "  <- ea_out" in out and "  -> eb_out" in out
    bad = _pipetask("build", "-p", pipe, "--show", "history=b", code=2)
    assert "history=LABEL::FIELD" in bad.output
    graph = _run(repo, "-p", pipe, "-i", "raw/all", "--output-run", "u/show", "--show",
                 "config=a::fail*", "--show", "graph").output
    assert "a.failFile: ''" in graph and "quanta" in graph
