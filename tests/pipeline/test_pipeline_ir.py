import textwrap

import pytest

from pipeline._errors import ContractError, PipelineDefinitionError
from pipeline.definition.parameters_ir import UnknownParameterWarning
from pipeline.definition.pipeline_ir import (
    ConfigIR,
    ContractIR,
    PipelineIR,
    SubsetIR,
    TaskIR,
    split_selector,
)


def _ir(text, **kwargs):
    return PipelineIR.from_string(textwrap.dedent(text), **kwargs)


def test_read_base_file(data_dir):
    ir = PipelineIR.from_file(data_dir / "base.yaml")
    assert ir.description.startswith("A base pipeline")
    assert ir.instrument == "some.Instrument"
    assert list(ir.tasks) == ["a", "b", "c"]
    assert ir.tasks["b"] == TaskIR("b", "trivial_tasks.TaskB")
    a = ir.tasks["a"]
    assert a.klass == "trivial_tasks.TaskA"
    # A single mapping is one config block; parameters substituted keeping their type.
    assert a.config == (ConfigIR(fields={"scale": 2.5, "note": "tag-base"}),)
    assert a.config[0].field_where["scale"].endswith("base.yaml:10")
    # Config file paths are resolved relative to the pipeline file.
    assert ir.tasks["c"].config[0].files == (str((data_dir / "c_overrides.yaml").resolve()),)
    assert ir.subsets == {
        "early": SubsetIR("early", ("a", "b")),
        "late": SubsetIR("late", ("c",), "gather per visit"),
    }
    assert ir.contracts == (
        ContractIR("a.scale > 0", "scale must be positive"),
        ContractIR("c.minCount >= 0"),
    )
    assert ir.contracts[1].where.endswith("base.yaml:25")


def test_round_trip(data_dir, tmp_path):
    ir = PipelineIR.from_file(data_dir / "base.yaml")
    again = PipelineIR.from_string(ir.to_yaml())
    assert again == ir
    ir.write_to(tmp_path / "saved.yaml")
    assert PipelineIR.from_file(tmp_path / "saved.yaml") == ir


def test_imports_exclude_override_and_parameters(data_dir):
    ir = PipelineIR.from_file(data_dir / "importer.yaml")
    assert list(ir.tasks) == ["a", "b"]
    # The importer's parameter wins; its config block comes after the imported one.
    assert [c.fields for c in ir.tasks["a"].config] == [
        {"scale": 4.0, "note": "tag-base"},
        {"connections.outName": "a_alt"},
    ]
    assert ir.tasks["a"].klass == "trivial_tasks.TaskA"
    assert ir.instrument == "some.Instrument"
    # Subsets naming an excluded task are dropped, and so are contracts that name it.
    assert list(ir.subsets) == ["early"]
    assert [c.contract for c in ir.contracts] == ["a.scale > 0"]
    assert len(ir.imports) == 1 and ir.imports[0].exclude == ("c",)


def test_import_include_and_no_contracts(data_dir, monkeypatch):
    monkeypatch.setenv("PIPE_DIR", str(data_dir))
    ir = _ir(
        """
        imports:
          - location: $PIPE_DIR/base.yaml
            include: [late]
            importContracts: false
        tasks:
          d: trivial_tasks.TaskB
        """
    )
    assert list(ir.tasks) == ["c", "d"]
    assert ir.contracts == ()


def test_import_plain_string_and_cycle(data_dir):
    ir = _ir(f"imports: ['{data_dir / 'base.yaml'}']\n")
    assert list(ir.tasks) == ["a", "b", "c"]
    with pytest.raises(PipelineDefinitionError, match="import cycle"):
        PipelineIR.from_file(data_dir / "cycle1.yaml")


def test_import_include_and_exclude_together():
    with pytest.raises(PipelineDefinitionError, match=r"<string>:3: .*not both"):
        _ir(
            """
            imports:
              - location: base.yaml
                include: [a]
                exclude: [b]
            """
        )


def test_yaml_syntax_error_names_file_and_line(data_dir):
    with pytest.raises(PipelineDefinitionError, match=r"bad_syntax.yaml:\d+: YAML syntax error"):
        PipelineIR.from_file(data_dir / "bad_syntax.yaml")
    with pytest.raises(PipelineDefinitionError, match=r"<string>:3: YAML syntax error"):
        _ir("tasks:\n  a: x.A\n b: x.B\n")


def test_unknown_top_level_key_suggests():
    with pytest.raises(
        PipelineDefinitionError, match=r"<string>:3: unknown key 'taks' \(did you mean 'tasks'\?\)"
    ):
        _ir(
            """
            description: x
            taks:
              a: x.A
            """
        )


def test_unknown_task_key():
    with pytest.raises(PipelineDefinitionError, match=r"<string>:4: unknown key 'klass'.*'class'"):
        _ir(
            """
            tasks:
              a:
                klass: x.A
            """
        )


def test_python_block_refused_unless_allowed():
    text = """
        tasks:
          a:
            class: x.A
            config:
              - python: "config.scale = 3"
        """
    with pytest.raises(PipelineDefinitionError, match=r"<string>:6: .*'python:'.*refused"):
        _ir(text)
    ir = _ir(text, allow_python=True)
    assert ir.tasks["a"].config[0].python == "config.scale = 3"


def test_unknown_parameter_warns_and_is_left_as_written():
    # As in LSST: its published pipelines refer to parameters they never define.
    with pytest.warns(UnknownParameterWarning) as record:
        ir = _ir(
            """
            parameters: {scale: 1}
            tasks:
              a:
                class: x.A
                config:
                  scale: parameters.scal
                  note: tag-parameters.scale-parameters.nope
            """
        )
    messages = [str(w.message) for w in record]
    assert messages[0].startswith("<string>:7: unknown parameter 'scal'")
    assert "(did you mean 'scale'?)" in messages[0]
    assert messages[1].startswith("<string>:8: unknown parameter 'nope'")
    assert ir.tasks["a"].config[0].fields == {
        "scale": "parameters.scal",
        "note": "tag-1-parameters.nope",
    }


def test_task_without_class():
    with pytest.raises(PipelineDefinitionError, match=r"<string>:3: task 'a' has no 'class'"):
        _ir(
            """
            tasks:
              a:
                config: {x: 1}
            """
        )


def test_subset_with_unknown_label():
    with pytest.raises(PipelineDefinitionError, match=r"<string>:5: subset 's' names unknown task"):
        _ir(
            """
            tasks:
              a: x.A
            subsets:
              s: [a, bb]
            """
        )


def test_bad_contract_entry_and_syntax():
    with pytest.raises(PipelineDefinitionError, match=r"<string>:3: a contract must be"):
        _ir("contracts:\n  - a\n  - {contract: 'a.x', message: 'no'}\n")


def test_selector(data_dir):
    ir = PipelineIR.from_file(f"{data_dir / 'base.yaml'}#late,a")
    assert list(ir.tasks) == ["a", "c"]
    assert list(ir.subsets) == ["late"]
    assert [c.contract for c in ir.contracts] == ["a.scale > 0", "c.minCount >= 0"]
    ir = PipelineIR.from_file(f"{data_dir / 'base.yaml'}#b")
    assert list(ir.tasks) == ["b"] and ir.contracts == ()


def test_selector_unknown_label_lists_known(data_dir):
    with pytest.raises(
        PipelineDefinitionError,
        match=r"unknown task or subset label 'bb'.*"
        r"known tasks: \['a', 'b', 'c'\]",
    ):
        PipelineIR.from_file(f"{data_dir / 'base.yaml'}#a,bb")


def test_split_selector():
    assert split_selector("p.yaml") == ("p.yaml", None)
    assert split_selector("p.yaml#a, b") == ("p.yaml", ["a", "b"])


def test_contract_syntax_error_when_subsetting():
    ir = _ir("tasks:\n  a: x.A\n  b: x.B\ncontracts:\n  - 'a.x =='\n")
    with pytest.raises(ContractError, match="not a valid expression"):
        ir.subset(["a"])
