"""``pipetask report`` counts the expected quanta from the graph the run keeps.

A resume builds a graph of what is left (``--skip-existing`` in the run), and a crashed client
writes no ``run_status``: neither may shrink what the report expects.
"""

from __future__ import annotations

from _exec_repo import make_graph, make_repo, pipeline_yaml

from butler import Butler
from pipeline import Pipeline
from pipeline.execution.report import make_report
from pipeline.execution.run import execute_graph
from pipeline.graph.builder import build_quantum_graph


def test_report_after_a_resume_counts_the_whole_run(tmp_path):
    repo = make_repo(tmp_path / "repo", n_visits=2, n_detectors=4)
    fail = tmp_path / "fail.txt"
    fail.write_text("1,2\n")
    butler = Butler(repo)
    first = make_graph(repo, run="rep/run", b_config={"failFile": str(fail)})
    assert execute_graph(butler, first, executor="sync", progress=False).exit_code == 1
    # the resume's graph holds only what is left: b (1, 2) and c (visit 1)
    pipeline = Pipeline.from_string(pipeline_yaml(b_config={"failFile": str(fail)}))
    rest = build_quantum_graph(
        butler,
        pipeline.graph(),
        input_collections=["raw/all"],
        output_run="rep/run",
        skip_existing_in=["rep/run"],
    )
    assert len(rest) == 2
    assert execute_graph(butler, rest, executor="sync", progress=False).exit_code == 1
    report = make_report(Butler(repo), "rep/run")
    assert {label: c["expected"] for label, c in report.tasks.items()} == {"a": 8, "b": 8, "c": 2}
    assert report.tasks["b"]["failed"] == 1 and report.tasks["c"]["blocked"] == 1
    assert report.tasks["a"]["succeeded"] == 8
