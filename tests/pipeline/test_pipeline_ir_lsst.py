"""LSST's pipeline schema as LSST's own files use it (issue 18).

The files under ``data/lsst`` are written in the shapes of LSST's data-release pipelines: a
three-level import chain through ``$DRP_PIPE_DIR``, a single-mapping ``imports``, ``exclude``
with ``labeledSubsetModifyMode`` EDIT and DROP, and ``steps``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline._errors import PipelineDefinitionError
from pipeline.definition.import_ir import ExcludedUnknownLabelWarning
from pipeline.definition.parameters_ir import UnknownParameterWarning
from pipeline.definition.pipeline import Pipeline
from pipeline.definition.pipeline_ir import PipelineIR, StepIR, SubsetIR
from pipeline.definition.step_ir import InvalidStepsError

HERE = Path(__file__).parent
LSST = HERE / "data" / "lsst"
CAMPAIGN = LSST / "campaign" / "DRP-campaign.yaml"
INGREDIENTS = "$DRP_PIPE_DIR/pipelines/_ingredients/DRP.yaml"


@pytest.fixture
def drp_pipe_dir(monkeypatch):
    monkeypatch.setenv("DRP_PIPE_DIR", str(LSST / "drp_pipe"))
    return LSST / "drp_pipe"


def _ir(text: str) -> PipelineIR:
    return PipelineIR.from_string(textwrap.dedent(text).lstrip())


def _subsets(ir: PipelineIR) -> dict[str, tuple[str, ...]]:
    return {label: s.subset for label, s in ir.subsets.items()}


# -- imports: the three-level chain, EDIT and DROP ---------------------------------------------


def test_three_level_chain_with_edit_then_drop(drp_pipe_dir):
    # Level 2 alone: single-mapping import, exclude a subset, EDIT keeps the subsets naming it.
    hsc = PipelineIR.from_file(drp_pipe_dir / "pipelines" / "HSC" / "DRP.yaml")
    assert list(hsc.tasks) == ["isr", "calibrate", "gatherVisit"]
    assert _subsets(hsc) == {
        "step1": ("isr", "calibrate"),
        "step2": ("gatherVisit",),
        "processCcd": ("isr", "calibrate"),
        "alternates": (),
    }
    assert hsc.subsets["processCcd"].description == "single-frame processing"
    assert [s.label for s in hsc.steps] == ["step1", "step2"]
    assert [c.contract for c in hsc.contracts] == ["isr.scale > 0"]
    assert hsc.imports[0].location == str(drp_pipe_dir / "pipelines" / "_ingredients" / "DRP.yaml")

    # Level 3: DROP removes step2 (it named gatherVisit) with its step, and the subset the EDIT
    # emptied; the campaign brings its own step2.
    ir = PipelineIR.from_file(CAMPAIGN)
    assert list(ir.tasks) == ["isr", "calibrate", "summary"]
    assert _subsets(ir) == {
        "step1": ("isr", "calibrate"),
        "processCcd": ("isr", "calibrate"),
        "step2": ("summary",),
    }
    assert ir.steps == (
        StepIR("step1", ("instrument", "visit", "detector")),
        StepIR("step2", ("instrument", "visit")),
    )
    assert ir.steps[0].where.endswith("_ingredients/DRP.yaml:31")
    assert ir.steps[1].where.endswith("DRP-campaign.yaml:23")
    # Parameters of the importer win through two levels; config blocks stack in order.
    assert [c.fields for c in ir.tasks["isr"].config] == [{"scale": 3.0}, {"note": "campaign"}]
    assert ir.instrument == "some.Instrument"
    # The expanded pipeline is self-contained and reads back equal.
    assert PipelineIR.from_string(ir.to_yaml()) == ir
    # Steps in dependency order: the graph (real task classes) accepts them.
    graph = Pipeline.from_ir(ir).graph()
    assert set(graph.tasks) == {"isr", "calibrate", "summary"}


def test_edit_and_drop_side_by_side(drp_pipe_dir):
    text = """
        imports:
          location: {location}
          exclude: [calibrateAlt]
          labeledSubsetModifyMode: {mode}
          importSteps: false
    """
    edit = _ir(text.format(location=INGREDIENTS, mode="EDIT"))
    assert _subsets(edit) == {
        "step1": ("isr", "calibrate"),
        "step2": ("gatherVisit", "fgcm"),
        "processCcd": ("isr", "calibrate"),
        "alternates": ("fgcm",),
    }
    drop = _ir(text.format(location=INGREDIENTS, mode="DROP"))
    assert _subsets(drop) == {
        "step2": ("gatherVisit", "fgcm"),
        "processCcd": ("isr", "calibrate"),
    }
    # The default is DROP, as in LSST.
    default = _ir(text.replace("labeledSubsetModifyMode: {mode}", "").format(location=INGREDIENTS))
    assert default.subsets == drop.subsets
    assert edit.steps == drop.steps == ()


def test_bad_modify_mode_is_located(drp_pipe_dir):
    with pytest.raises(
        PipelineDefinitionError, match=r"<string>:4: labeledSubsetModifyMode .*KEEP"
    ):
        _ir(
            f"imports:\n  - location: {INGREDIENTS}\n    exclude: [fgcm]\n"
            "    labeledSubsetModifyMode: KEEP\n"
        )


def test_unknown_labels_excluded_warn_included_fail(drp_pipe_dir):
    # LSST ignores an excluded label that is not there; its own pipelines rely on it.
    with pytest.warns(ExcludedUnknownLabelWarning, match=r"<string>:2: excluded labels \['fgcn'\]"):
        ir = _ir(
            f"imports:\n  - location: {INGREDIENTS}\n    exclude: [fgcn, fgcm]\n"
            "    importSteps: false\n"
        )
    assert "fgcm" not in ir.tasks and "calibrateAlt" in ir.tasks
    with pytest.raises(
        PipelineDefinitionError, match=r"<string>:2: unknown task or subset .*'fgcn'"
    ):
        _ir(f"imports:\n  - location: {INGREDIENTS}\n    include: [fgcn]\n")


def test_single_mapping_and_single_string_imports(drp_pipe_dir):
    as_mapping = _ir(f"imports:\n  location: {INGREDIENTS}\n")
    as_string = _ir(f"imports: {INGREDIENTS}\n")
    as_list = _ir(f"imports:\n  - {INGREDIENTS}\n")
    assert as_mapping == as_string == as_list
    assert list(as_mapping.tasks) == ["isr", "calibrate", "calibrateAlt", "gatherVisit", "fgcm"]


def test_unset_variable_names_variable_file_and_line(monkeypatch, tmp_path):
    monkeypatch.delenv("NOPE_PIPE_DIR", raising=False)
    pipe = tmp_path / "p.yaml"
    pipe.write_text("description: x\nimports:\n  - location: $NOPE_PIPE_DIR/pipelines/a.yaml\n")
    with pytest.raises(PipelineDefinitionError) as err:
        PipelineIR.from_file(pipe)
    assert str(err.value).startswith(f"{pipe}:3: environment variable $NOPE_PIPE_DIR is not set")
    with pytest.raises(PipelineDefinitionError, match=r"\$NOPE_PIPE_DIR is not set"):
        PipelineIR.from_file("${NOPE_PIPE_DIR}/b.yaml#step1")


def test_other_import_keys(drp_pipe_dir):
    ir = _ir(
        f"""
        imports:
          - location: {INGREDIENTS}
            include: processCcd
            rename: {{calibrate: calibrateSingle}}
            importContracts: false
            instrument: other.Instrument
        """
    )
    assert list(ir.tasks) == ["isr", "calibrateSingle"]
    assert ir.tasks["calibrateSingle"].label == "calibrateSingle"
    assert _subsets(ir) == {"processCcd": ("isr", "calibrateSingle")}
    assert ir.contracts == () and ir.instrument == "other.Instrument"
    dropped = _ir(f"imports:\n  location: {INGREDIENTS}\n  instrument: None\n")
    assert dropped.instrument is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("    parameters: {scale: 1}\n", r":3: an import has no 'parameters'"),
        ("    importSteps: 'no'\n", r":3: 'importSteps' must be true or false"),
        ("    rename: {isr: calibrate}\n", r":2: rename of 'isr' to 'calibrate': .*already"),
        (
            "    rename: {isr: isr2}\n",
            r":2: rename of \['isr'\] refused: the contract at .*DRP.yaml:36 names it",
        ),
        ("    exclude: [fgcm]\n    include: [isr]\n", r":2: .*'include' or 'exclude', not both"),
    ],
)
def test_import_entry_errors_are_located(drp_pipe_dir, entry, message):
    with pytest.raises(PipelineDefinitionError, match=message):
        _ir(f"imports:\n  - location: {INGREDIENTS}\n{entry}")


def test_refused_schema_parts_are_located():
    with pytest.raises(PipelineDefinitionError, match=r"<string>:1: 'inherits' is not supported"):
        _ir("inherits: a.yaml\n")
    with pytest.raises(PipelineDefinitionError, match=r"<string>:5: .*'dataId:' config block"):
        _ir("tasks:\n  a:\n    class: x.A\n    config:\n      dataId: {visit: 1}\n")
    with pytest.raises(PipelineDefinitionError, match=r"<string>:5: .*inline 'python:'"):
        _ir("tasks:\n  a:\n    class: x.A\n    config:\n      python: config.x = 1\n")
    with pytest.raises(PipelineDefinitionError, match=r"<string>:2: 'parameters' is reserved"):
        _ir("tasks:\n  parameters: x.A\n")
    with pytest.raises(PipelineDefinitionError, match=r"<string>:1: 'instrument' must be one"):
        _ir("instrument: [a.B, c.D]\n")
    # A lone contract string is a list of one, as in LSST.
    assert [c.contract for c in _ir("tasks: {a: x.A}\ncontracts: 'a.x > 1'\n").contracts] == [
        "a.x > 1"
    ]


# -- steps --------------------------------------------------------------------------------------

_STEPS = """
tasks:
  a: trivial_tasks.TaskA
  b: trivial_tasks.TaskB
  c: trivial_tasks.TaskC
subsets:
  first: [a, b]
  second: [c]
  bc: [b, c]
steps:
  - label: first
    dimensions: instrument, visit, detector
  - label: second
    dimensions: [instrument, visit]
"""


def test_steps_valid_and_selected_like_subsets():
    ir = _ir(_STEPS)
    assert ir.steps == (
        StepIR("first", ("instrument", "visit", "detector")),
        StepIR("second", ("instrument", "visit")),
    )
    assert ir.steps[1].where == "<string>:12"
    Pipeline.from_ir(ir).graph()
    # A step is a subset: selecting it keeps that step only.
    first = ir.subset(["first"])
    assert list(first.tasks) == ["a", "b"] and [s.label for s in first.steps] == ["first"]
    assert first.subsets == {"first": SubsetIR("first", ("a", "b"))}
    # Selecting across steps leaves a task whose step was cut: said so (LSST refuses it too).
    with pytest.raises(InvalidStepsError, match=r"task 'a' is in no step.*steps \['first'\] lost"):
        ir.subset(["a", "second"])


def test_task_in_no_step():
    text = _STEPS.replace("  c: trivial_tasks.TaskC\n", "  c: trivial_tasks.TaskC\n  d: x.D\n")
    with pytest.raises(InvalidStepsError) as err:
        _ir(text)
    assert str(err.value).startswith("<string>:5: task 'd' is in no step")
    assert "'first' (<string>:11), 'second' (<string>:13)" in str(err.value)


def test_task_in_two_steps():
    with pytest.raises(InvalidStepsError) as err:
        _ir(_STEPS.replace("label: second", "label: bc"))
    assert str(err.value).startswith(
        "<string>:12: task 'b' is in step 'first' (<string>:10) and again in step 'bc'"
    )


def test_steps_out_of_order():
    text = _STEPS.replace("label: first", "label: FIRST").replace("label: second", "label: first")
    text = text.replace("label: FIRST", "label: second")
    ir = _ir(text)  # the order needs the task graph: checked when the graph is made
    with pytest.raises(InvalidStepsError) as err:
        Pipeline.from_ir(ir).graph()
    assert str(err.value).startswith(
        "<string>:10: step 'second' is out of order: its task 'c' reads 'b_out', written by "
        "task 'b' of the later step 'first' (<string>:12)"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("label: second", "label: secnd"), r"<string>:12: step 'secnd' is not a labeled subset"),
        (("label: second", "label: first"), r"<string>:12: step 'first' is declared twice"),
        (("dimensions: [instrument, visit]", "dimensions: 3"), r"<string>:12: step dimensions"),
        (("dimensions: [instrument, visit]", "dims: x"), r"<string>:12: a step must be"),
    ],
)
def test_step_entry_errors(change, message):
    with pytest.raises(InvalidStepsError, match=message):
        _ir(_STEPS.replace(*change))


def test_imported_step_redefined_with_other_dimensions(drp_pipe_dir):
    text = f"imports: {INGREDIENTS}\nsteps:\n  - label: step2\n    dimensions: [tract]\n"
    with pytest.raises(InvalidStepsError, match=r"<string>:3: step 'step2' has dimensions"):
        _ir(text)


# -- pipetask build --show (real processes) -----------------------------------------------------


def _pipetask(*args: str, env_dir: Path) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        DRP_PIPE_DIR=str(env_dir),
    )
    pipetask = str(Path(sys.executable).parent / "pipetask")
    return subprocess.run(
        [pipetask, "--log-level", "WARNING", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_build_show_pipeline_reads_without_task_classes(tmp_path):
    # Everything at once: a list import of the three-level chain (single mapping, $X_DIR, EDIT,
    # DROP, steps) plus a task whose class is not installed.
    pipe = tmp_path / "with_missing_class.yaml"
    pipe.write_text(
        f"description: needs a class that is not installed\n"
        f"imports:\n  - location: {CAMPAIGN}\n"
        f"tasks:\n  report: not_installed.module.ReportTask\n"
        f"  calibrate:\n    config:\n      python: config.offset = 2.0\n"
        f"  summary:\n    config:\n      minCount: parameters.nope\n"
        f"subsets:\n  step3: [report]\n"
        f"steps:\n  - label: step3\n    dimensions: instrument\n"
    )
    out = _pipetask("build", "-p", str(pipe), "--show", "pipeline", env_dir=LSST / "drp_pipe")
    assert out.returncode == 0, out.stderr
    assert out.stderr.startswith(f"Warning: {pipe}:11: unknown parameter 'nope'")
    with pytest.warns(UnknownParameterWarning, match="'nope'"):  # still a reference, as written
        shown = PipelineIR.from_string(out.stdout, allow_python=True)
    assert list(shown.tasks) == ["isr", "calibrate", "summary", "report"]
    assert [s.label for s in shown.steps] == ["step1", "step2", "step3"]
    assert _subsets(shown)["step1"] == ("isr", "calibrate")
    assert shown.tasks["calibrate"].config[-1].python == "config.offset = 2.0"
    # A command that needs the class says which one, where, and exits 2.
    out = _pipetask("build", "-p", f"{pipe}#step3", "--show", "tasks", env_dir=LSST / "drp_pipe")
    assert out.returncode == 2
    assert f"{pipe}:5: task 'report'" in out.stderr and "not_installed" in out.stderr
    assert "Traceback" not in out.stderr
    # Inline python is read as text, and refused (located) when the tasks are configured.
    out = _pipetask("build", "-p", f"{pipe}#step1", env_dir=LSST / "drp_pipe")
    assert out.returncode == 2
    assert f"{pipe}:8: inline 'python:' config block refused" in out.stderr
    # A step selects like a subset, through $X_DIR on the command line.
    out = _pipetask(
        "build",
        "-p",
        "$DRP_PIPE_DIR/pipelines/HSC/DRP.yaml#step1",
        "--show",
        "steps",
        env_dir=LSST / "drp_pipe",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["step1 [instrument, visit, detector]: isr, calibrate"]


def test_label_defined_by_two_imports(drp_pipe_dir, tmp_path):
    text = f"imports:\n  - location: {INGREDIENTS}\n    include: [isr]\n  - {INGREDIENTS}\n"
    with pytest.raises(PipelineDefinitionError) as err:
        _ir(text)
    assert str(err.value).startswith("<string>:4: task label 'isr' is defined by two imports: ")
    assert str(err.value).count("_ingredients/DRP.yaml:8") == 2
    for name in ("one", "two"):
        (tmp_path / f"{name}.yaml").write_text(f"tasks:\n  {name}: x.T\nsubsets:\n  s: [{name}]\n")
    with pytest.raises(
        PipelineDefinitionError, match=r"<string>:1: subset label 's' is defined by"
    ):
        _ir(f"imports: [{tmp_path}/one.yaml, {tmp_path}/two.yaml]\n")
