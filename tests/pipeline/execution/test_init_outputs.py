"""Init-outputs are written once per run, idempotently: what the run already holds is kept only
if it is byte-identical to what this execution makes; a different one (registered, or a file no
registry row owns) is refused in one line and left as it is, never silently kept or replaced."""

from __future__ import annotations

import os

import pytest
from _exec_repo import make_repo, registered

from butler import Butler
from pipeline import Pipeline
from pipeline.execution.run import execute_graph
from pipeline.graph.builder import build_quantum_graph


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "repo", n_visits=1, n_detectors=2)


def _graph(repo, schema_file, run="out/s"):
    pipeline = Pipeline.from_string(
        "description: init-output tests\ntasks:\n  s:\n    class: exec_tasks.ExecS\n"
        f"    config:\n      - {{schemaFile: {str(schema_file)!r}}}\n"
    )
    return build_quantum_graph(
        Butler(repo), pipeline.graph(), input_collections=["raw/all"], output_run=run
    )


def _run_then_change_schema(repo, tmp_path):
    """Run once with schema ["flux"], then make the task's schema another (same config)."""
    schema = tmp_path / "schema.txt"
    schema.write_text("flux\n")
    butler = Butler(repo)
    first = execute_graph(butler, _graph(repo, schema), executor="sync", progress=False)
    assert first.exit_code == 0
    schema.write_text("flux\nflux_err\n")
    return butler, schema


def test_a_changed_init_output_in_the_run_is_refused(repo, tmp_path):
    butler, schema = _run_then_change_schema(repo, tmp_path)
    refused = execute_graph(
        butler, _graph(repo, schema), executor="sync", skip_existing=True, progress=False
    )
    assert refused.exit_code == 2
    assert "InitOutputConflictError" in refused.error and "'es_schema'" in refused.error
    assert "out/s" in refused.error and "\n" not in refused.error
    ref = butler.registry.query_datasets("es_schema", collections=["out/s"])[0]
    assert butler.get(ref) == {"columns": ["flux"]}  # left as it was
    schema.write_text("flux\n")  # the same again: the run resumes (nothing left to do)
    again = execute_graph(
        butler, _graph(repo, schema), executor="sync", skip_existing=True, progress=False
    )
    assert again.exit_code == 0


def _unregistered_schema(repo, schema_file, content):
    """Put ``content`` at the init-output's path without registering it (a killed client)."""
    butler = Butler(repo)
    qgraph = _graph(repo, schema_file)
    butler.registry.register_dataset_type(qgraph.dataset_types["es_schema"])
    butler.registry.register_run("out/s")
    ref = qgraph.init_output_refs("s")["schema"]
    info = butler.datastore.put(content, ref)
    return butler, butler.datastore.uri(info)


def test_an_identical_unregistered_init_output_is_adopted(repo, tmp_path):
    schema = tmp_path / "schema.txt"
    schema.write_text("flux\n")
    butler, path = _unregistered_schema(repo, schema, {"columns": ["flux"]})
    before = os.stat(path).st_mtime_ns
    summary = execute_graph(butler, _graph(repo, schema), executor="sync", progress=False)
    assert summary.exit_code == 0, summary.error
    assert os.stat(path).st_mtime_ns == before  # registered as it was, not rewritten
    assert len(registered(butler, "out/s")["es_schema"]) == 1


def test_a_different_unregistered_init_output_is_replaced_with_a_warning(repo, tmp_path, caplog):
    """Under the run's lease, an unregistered file at an init-output's path was left by a dead
    execution of the run (killed client, run removed without its files): as for outputs of
    unfinished quanta, it is replaced, and the log names it."""
    schema = tmp_path / "schema.txt"
    schema.write_text("flux\n")
    butler, path = _unregistered_schema(repo, schema, {"columns": ["left", "behind"]})
    summary = execute_graph(butler, _graph(repo, schema), executor="sync", progress=False)
    assert summary.exit_code == 0, summary.error
    assert any("replacing init-output 'es_schema'" in r.getMessage() and path in r.getMessage()
               for r in caplog.records)
    ref = butler.registry.query_datasets("es_schema", collections=["out/s"])[0]
    assert butler.get(ref) == {"columns": ["flux"]}


def test_clobber_outputs_replaces_a_changed_init_output_and_reruns_its_task(repo, tmp_path):
    butler, schema = _run_then_change_schema(repo, tmp_path)
    summary = execute_graph(butler, _graph(repo, schema), executor="sync", skip_existing=True,
                            clobber_outputs=True, progress=False)
    assert summary.exit_code == 0, summary.error
    assert summary.counts["s"]["succeeded"] == 2  # made with the old schema: run again
    ref = butler.registry.query_datasets("es_schema", collections=["out/s"])[0]
    assert butler.get(ref) == {"columns": ["flux", "flux_err"]}
    for ref in butler.registry.query_datasets("es_out", collections=["out/s"]):
        assert butler.get(ref)["columns"] == ["flux", "flux_err"]
