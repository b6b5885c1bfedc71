"""`make_report` with and without the graph, and its JSON and YAML forms."""

from __future__ import annotations

import json

import pytest
import yaml
from _exec_repo import make_graph, make_repo

from butler import Butler
from pipeline.execution.report import make_report
from pipeline.execution.run import execute_graph


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    """A run where a (1, 2) fails: b (1, 2) blocked, c (visit 1) blocked."""
    tmp = tmp_path_factory.mktemp("report")
    repo = make_repo(tmp / "repo", n_visits=2, n_detectors=4)
    fail = tmp / "fail.txt"
    fail.write_text("1,2\n")
    qg = make_graph(repo, run="out/r", a_config={"failFile": str(fail)})
    summary = execute_graph(Butler(repo), qg, executor="sync", progress=False)
    assert summary.exit_code == 1
    return repo, qg


EXPECTED = {
    "a": {"expected": 8, "succeeded": 7, "no_work": 0, "failed": 1, "blocked": 0, "not_run": 0},
    "b": {"expected": 8, "succeeded": 7, "no_work": 0, "failed": 0, "blocked": 1, "not_run": 0},
    "c": {"expected": 2, "succeeded": 1, "no_work": 0, "failed": 0, "blocked": 1, "not_run": 0},
}


def test_report_with_graph(failed_run):
    repo, qg = failed_run
    report = make_report(Butler(repo), "out/r", qg)
    assert report.tasks == EXPECTED
    (error,) = report.errors["a"]
    assert error["error"] == "RuntimeError: injected failure for 1,2"
    assert error["data_ids"] == [{"detector": 2, "instrument": "Sim", "visit": 1}]
    assert report.errors["b"] == [] and report.errors["c"] == []


def test_report_without_graph_uses_run_status(failed_run):
    repo, qg = failed_run
    report = make_report(Butler(repo), "out/r")
    assert report.tasks == EXPECTED
    assert report.errors == make_report(Butler(repo), "out/r", qg).errors


def test_report_round_trips_through_json_and_yaml(failed_run):
    repo, qg = failed_run
    report = make_report(Butler(repo), "out/r", qg)
    assert json.loads(report.to_json()) == report.to_dict()
    assert yaml.safe_load(report.to_yaml()) == report.to_dict()
    assert report.to_dict()["run"] == "out/r"
    assert report.table().row_count == 3
