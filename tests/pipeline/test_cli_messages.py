"""Each user mistake of ``pipetask``/``butler``: one line naming the problem and the fix, and
the README's exit code (2: could not start / bad usage; butler errors 1), never a traceback."""

from __future__ import annotations

import logging

import pytest
from _exec_repo import make_repo, pipeline_yaml
from click.testing import CliRunner

from butler import Butler
from butler.cli import main as butler_main
from pipeline.cli import main as pipetask_main


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repo(tmp_path_factory.mktemp("msg") / "repo", n_visits=1, n_detectors=2)


@pytest.fixture
def pipe(tmp_path):
    path = tmp_path / "pipe.yaml"
    path.write_text(pipeline_yaml(tasks=("a", "b")))
    return path


@pytest.fixture(autouse=True)
def _restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("pipeline").setLevel(logging.NOTSET)


def _error_line(result) -> str:
    """The one ``Error:`` line, after checking there is exactly one and no traceback."""
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.upper().startswith("ERROR")]
    assert len(lines) == 1, result.output
    return lines[0]


def _run(main, *args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_config_override_without_label(pipe):
    result = _run(pipetask_main, "build", "-p", str(pipe), "-c", "offset=3")
    assert result.exit_code == 2
    line = _error_line(result)
    assert "-c LABEL:offset=3" in line and "labels: a, b" in line


def test_config_override_without_equals(pipe):
    result = _run(pipetask_main, "build", "-p", str(pipe), "-c", "a:offset")
    assert result.exit_code == 2
    assert "[label:]field=value" in _error_line(result)


@pytest.mark.parametrize("value", ["pipeline=DEBUG", "VERBOSE", "pipeline.cli=verbose", "TRACE"])
def test_log_levels_lsst_spellings_accepted(pipe, value):
    result = _run(pipetask_main, "--log-level", value, "build", "-p", str(pipe))
    assert result.exit_code == 0, result.output


def test_component_log_level_sets_that_logger(pipe):
    _run(pipetask_main, "--log-level", "WARNING", "--log-level", "pipeline=DEBUG", "build",
         "-p", str(pipe))
    assert logging.getLogger("pipeline").level == logging.DEBUG
    assert logging.getLogger().level == logging.WARNING


@pytest.mark.parametrize("value", ["LOUD", "pipeline=LOUD", "=DEBUG"])
def test_bad_log_level(pipe, value):
    result = _run(pipetask_main, "--log-level", value, "build", "-p", str(pipe))
    assert result.exit_code == 2
    line = _error_line(result)
    assert "--log-level" in line and ("VERBOSE" in line or "component" in line)


def test_log_file_and_long_log(pipe, tmp_path):
    log = tmp_path / "run.log"
    result = _run(pipetask_main, "--long-log", "--log-file", str(log), "--log-level", "DEBUG",
                  "build", "-p", str(pipe))
    assert result.exit_code == 0, result.output
    logging.getLogger("pipeline.test").info("written to the file")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = log.read_text()
    assert "written to the file" in text and "pipeline.test" in text
    assert "test_cli_messages.py:" in text  # --long-log: the source line


def test_cluster_address_typo(repo, pipe):
    result = _run(pipetask_main, "run", "-b", str(repo), "-p", str(pipe), "-i", "raw/all",
                  "-o", "u/cluster", "--cluster", "foo")
    assert result.exit_code == 2
    line = _error_line(result)
    assert "--cluster" in line and "tcp://" in line and "--cluster-config" in line
    names = {n for n, _ in Butler(repo, writeable=False).registry.query_collections()}
    assert not any(n.startswith("u/cluster") for n in names)  # refused before anything is made


def test_task_module_typo_suggests_the_name(tmp_path):
    pipe = tmp_path / "typo.yaml"
    pipe.write_text(pipeline_yaml(tasks=("a",)).replace("exec_tasks.ExecA", "exec_task.ExecA"))
    result = _run(pipetask_main, "build", "-p", str(pipe))
    assert result.exit_code == 2
    assert "did you mean 'exec_tasks'" in _error_line(result)
    pipe.write_text(pipeline_yaml(tasks=("a",)).replace("exec_tasks.ExecA", "exec_tasks.ExecAA"))
    result = _run(pipetask_main, "build", "-p", str(pipe))
    assert result.exit_code == 2
    assert "did you mean 'exec_tasks.ExecA'" in _error_line(result)


def test_corrupt_registry(tmp_path, pipe):
    root = tmp_path / "corrupt"
    Butler.create(root)
    (root / "registry.sqlite3").write_bytes(b"this is not a database" * 200)
    result = _run(butler_main, "query-collections", str(root))
    assert result.exit_code == 1
    line = _error_line(result)
    assert "registry.sqlite3" in line and "not a database" in line and "backup" in line
    result = _run(pipetask_main, "run", "-b", str(root), "-p", str(pipe), "-i", "x", "-o", "y")
    assert result.exit_code == 2
    assert "registry.sqlite3" in _error_line(result)


def test_csv_has_unix_line_endings(repo):
    result = CliRunner().invoke(butler_main, ["query-collections", str(repo), "--format", "csv"])
    assert result.exit_code == 0
    assert "\r" not in result.output and result.output.startswith("Name,Type,Children\n")


def test_rerun_into_finished_run_names_the_flags(tmp_path):
    """Outputs already in the run: the message names --skip-existing and --clobber-outputs."""
    root = make_repo(tmp_path / "rerun", n_visits=1, n_detectors=1)
    pipe = tmp_path / "one.yaml"
    long_label = "characterizeImageWithAVeryLongLabelThatRichWouldCut"
    pipe.write_text(f"tasks:\n  {long_label}:\n    class: exec_tasks.ExecA\n")
    args = ["run", "-b", str(root), "-p", str(pipe), "-i", "raw/all", "--output-run", "u/r",
            "--executor", "sync"]
    first = CliRunner().invoke(pipetask_main, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output + first.stderr
    assert long_label in first.stderr  # the summary table, not on a terminal, keeps the label
    again = _run(pipetask_main, *args)
    assert again.exit_code == 2
    line = _error_line(again)
    assert "--skip-existing" in line and "--clobber-outputs" in line and "skip_existing" not in line
