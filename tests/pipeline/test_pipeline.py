import textwrap

import pytest

from pipeline._errors import (
    ContractError,
    FieldValidationError,
    PipelineDefinitionError,
    UnknownConfigFieldError,
)
from pipeline.config import FrozenConfigError
from pipeline.definition.pipeline import Pipeline, TaskDef
from pipeline.definition.pipeline_graph import ConnectionMismatchError, MissingInputError

ABC = """
description: three trivial tasks
parameters:
  factor: 3.0
tasks:
  a:
    class: trivial_tasks.TaskA
    config:
      - scale: parameters.factor
      - note: from-yaml
  b: trivial_tasks.TaskB
  c:
    class: trivial_tasks.TaskC
    config:
      connections.out: c_renamed
subsets:
  first: [a, b]
contracts:
  - contract: "a.scale > 0 and c.minCount >= 1"
    msg: scale must be positive
"""


def _pipe(text=ABC, **kwargs):
    return Pipeline.from_string(textwrap.dedent(text), **kwargs)


def test_task_defs_apply_overrides_in_order():
    p = _pipe()
    assert p.labels == ["a", "b", "c"]
    defs = p.task_defs()
    assert [d.label for d in defs] == ["a", "b", "c"]
    a, _, c = defs
    assert isinstance(a, TaskDef) and a.task_name == "trivial_tasks.TaskA"
    assert a.config.scale == 3.0 and a.config.note == "from-yaml"
    assert a.config.nIter == 2  # setDefaults ran
    assert a.config.frozen
    with pytest.raises(FrozenConfigError):
        a.config.scale = 1.0
    # History names the pipeline file and line of the YAML block.
    assert a.config.history["scale"][-1][1] == "<string>:9"
    assert c.connections.out.name == "c_renamed"


def test_user_overrides_come_last(tmp_path):
    py = tmp_path / "a.py"
    py.write_text("config.nIter = 7\nconfig.note = 'from-py'\n")
    yml = tmp_path / "a.yaml"
    yml.write_text("note: from-C-yaml\n")
    p = _pipe()
    p.add_config_file("a", py)
    p.add_config_override("a", "scale", "5")
    p.add_config_file("a", yml)
    a = p.task_defs()[0]
    assert (a.config.nIter, a.config.scale, a.config.note) == (7, 5.0, "from-C-yaml")
    assert a.config.history["scale"][-1][1] == "-c"


def test_unknown_label_in_override():
    p = _pipe()
    with pytest.raises(
        PipelineDefinitionError, match=r"unknown task label 'aa'.*\['a', 'b', 'c'\]"
    ):
        p.add_config_override("aa", "scale", "1")


def test_unknown_config_field_suggests():
    p = _pipe()
    p.add_config_override("a", "scal", "2")
    with pytest.raises(UnknownConfigFieldError, match=r"'scal'.*scale"):
        p.task_defs()


def test_unknown_field_in_yaml_names_file_and_line():
    p = _pipe(ABC.replace("note: from-yaml", "nte: from-yaml"))
    with pytest.raises(UnknownConfigFieldError, match=r"nte.*<string>, line 10"):
        p.task_defs()


def test_wrong_type():
    p = _pipe()
    p.add_config_override("c", "minCount", "many")
    with pytest.raises(FieldValidationError, match="minCount"):
        p.task_defs()


def test_failed_contract():
    p = _pipe()
    p.add_config_override("a", "scale", "-1")
    with pytest.raises(
        ContractError,
        match=r"<string>:19: contract 'a.scale > 0 and "
        r"c.minCount >= 1' failed: scale must be positive",
    ):
        p.task_defs()


def test_contract_with_forbidden_construct():
    p = _pipe(ABC + "  - \"__import__('os').system('true') == 0\"\n")
    with pytest.raises(ContractError, match="Call"):
        p.task_defs()


def test_unknown_task_class():
    p = _pipe(ABC.replace("trivial_tasks.TaskB", "trivial_tasks.TaskZ"))
    with pytest.raises(PipelineDefinitionError, match=r"<string>:11: task 'b'.*TaskZ"):
        p.task_defs()
    p = _pipe(ABC.replace("trivial_tasks.TaskB", "no_such_module.TaskB"))
    with pytest.raises(PipelineDefinitionError, match="no_such_module"):
        p.task_defs()
    p = _pipe(ABC.replace("trivial_tasks.TaskB", "trivial_tasks.NotATask"))
    with pytest.raises(PipelineDefinitionError, match="not a PipelineTask"):
        p.task_defs()


def test_python_config_block():
    text = ABC.replace("- note: from-yaml", "- python: \"config.note = 'py'\"")
    with pytest.raises(PipelineDefinitionError, match="refused"):
        _pipe(text)
    assert _pipe(text, allow_python=True).task_defs()[0].config.note == "py"


def test_config_file_in_yaml(data_dir):
    p = Pipeline.from_file(data_dir / "base.yaml")
    c = p.task_defs()[2]
    assert c.config.minCount == 2


def test_selector_and_subset(data_dir):
    p = Pipeline.from_file(f"{data_dir / 'base.yaml'}#early")
    assert p.labels == ["a", "b"]
    assert _pipe().subset(["c"]).labels == ["c"]


def test_graph_of_abc():
    g = _pipe().graph()
    assert g.sorted_labels == ["a", "b", "c"]
    assert set(g.overall_inputs) == {"raw"}
    assert g.consumers_of("a_schema") == ("b",)
    assert g.dataset_types["b_out"].dimensions == {"instrument", "visit", "detector"}
    assert g.tasks["c"].dimensions == {"instrument", "visit"}
    meta = g.dataset_types["c_metadata"]
    assert (meta.storage_class, meta.dimensions, meta.producer) == (
        "TaskMetadata",
        {"instrument", "visit"},
        "c",
    )
    assert g.dataset_types["a_log"].storage_class == "ButlerLogRecords"
    cfg = g.dataset_types["b_config"]
    assert cfg.is_init and cfg.dimensions == frozenset() and cfg.storage_class == "Config"
    assert g.producer_of("c_renamed") == "c"


def test_graph_missing_input_and_mismatch():
    p = _pipe()
    with pytest.raises(MissingInputError, match="'raw'"):
        p.graph(existing_dataset_types={})
    p = _pipe(ABC.replace("trivial_tasks.TaskB", "trivial_tasks.CatalogB"))
    with pytest.raises(ConnectionMismatchError, match=r"'a_out'.*'Image'.*'a'.*'Catalog'.*'b'"):
        p.graph()


def test_write_and_reload(tmp_path):
    p = _pipe()
    p.add_config_override("a", "nIter", "9")
    p.write_to(tmp_path / "saved.yaml")
    again = Pipeline.from_file(tmp_path / "saved.yaml")
    assert again.labels == p.labels
    before = {d.label: d.config for d in p.task_defs()}
    after = {d.label: d.config for d in again.task_defs()}
    assert after["a"].nIter == 9
    for label in before:
        assert before[label].compare(after[label]) == []


def test_drawing():
    p = _pipe()
    assert '"task:a" -> "ds:a_out";' in p.to_dot()
    assert "ds_b_out --> task_c" in p.to_mermaid()


def test_nested_mapping_config_value():
    p = _pipe(ABC.replace("connections.out: c_renamed", "connections: {out: c_nested}"))
    assert p.task_defs()[2].connections.out.name == "c_nested"
