import datetime
import logging

import pytest

from pipeline.config import (
    Config,
    ConfigField,
    ConfigurableField,
    Field,
    RegistryField,
    makeRegistry,
)
from pipeline.task import ResourceConfig, Task, timeMethod
from pipeline.task_metadata import TaskMetadata


class LeafConfig(Config):
    value = Field(int, "A value", default=1)


class LeafTask(Task):
    ConfigClass = LeafConfig
    debugStages = ("psf", "repair")

    @timeMethod
    def run(self):
        self.metadata["nItems"] = self.config.value
        return self.config.value


class AltLeafTask(LeafTask):
    pass


class MiddleConfig(Config):
    subsub = LeafTask.makeField("Leaf subtask")


class MiddleTask(Task):
    ConfigClass = MiddleConfig

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.makeSubtask("subsub")


LEAF_REGISTRY = makeRegistry("leaves")
LEAF_REGISTRY.register("plain", LeafTask)
LEAF_REGISTRY.register("alt", AltLeafTask)


class TopConfig(Config):
    sub = ConfigurableField("Middle subtask", target=MiddleTask)
    chooser = RegistryField("Chosen leaf", LEAF_REGISTRY, default="plain")
    resources = ConfigField(ResourceConfig, "Resources")
    flag = Field(bool, "Not a subtask", default=False)


class TopTask(Task):
    ConfigClass = TopConfig
    _DefaultName = "top"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.makeSubtask("sub")
        self.makeSubtask("chooser")


def test_names_and_task_dict():
    top = TopTask()
    assert top.getName() == "top"
    assert top.sub.getFullName() == "top.sub"
    assert top.sub.subsub.getFullName() == "top.sub.subsub"
    assert top.sub.subsub.getName() == "subsub"
    tasks = top.getTaskDict()
    assert sorted(tasks) == ["top", "top.chooser", "top.sub", "top.sub.subsub"]
    assert tasks["top.sub.subsub"]() is top.sub.subsub
    assert top.sub.subsub.config is top.config.sub.subsub.value
    assert top.sub.subsub.log.name == "top.sub.subsub"


def test_registry_subtask_retarget():
    config = TopConfig()
    config.chooser.name = "alt"
    config.chooser["alt"].value = 9
    top = TopTask(config=config)
    assert type(top.chooser) is AltLeafTask
    assert top.chooser.run() == 9


def test_make_subtask_refuses_config_and_non_subtask_fields():
    top = TopTask()
    with pytest.raises(TypeError, match="config"):
        top.makeSubtask("sub", config=LeafConfig())
    with pytest.raises(TypeError, match="parentTask"):
        top.makeSubtask("sub", parentTask=top)
    with pytest.raises(TypeError, match="TopConfig.flag is not a ConfigurableField"):
        top.makeSubtask("flag")


def test_wrong_config_type():
    with pytest.raises(TypeError, match="not a TopConfig"):
        TopTask(config=LeafConfig())
    with pytest.raises(RuntimeError, match="_DefaultName"):
        LeafTask()


def test_full_metadata_and_timer():
    top = TopTask()
    top.sub.subsub.run()
    with top.timer("block"):
        sum(range(10000))
    full = top.getFullMetadata()
    assert isinstance(full, TaskMetadata)
    assert sorted(full.keys()) == ["top", "top:chooser", "top:sub", "top:sub:subsub"]
    assert full["top:sub:subsub.nItems"] == 1
    for when in ("Start", "End"):
        for what in ("Utc", "CpuTime", "MaxResidentSetSize"):
            assert f"top:sub:subsub.run{when}{what}" in full
            assert f"top.block{when}{what}" in full
    md = top.sub.subsub.metadata
    assert md.getScalar("runEndCpuTime") >= md.getScalar("runStartCpuTime")
    start = datetime.datetime.fromisoformat(md.getScalar("runStartUtc"))
    end = datetime.datetime.fromisoformat(md.getScalar("runEndUtc"))
    assert end >= start
    assert md.getScalar("runEndMaxResidentSetSize") > 0
    top.sub.subsub.run()
    assert len(md.getArray("runStartCpuTime")) == 2
    top.sub.emptyMetadata()
    assert "runStartUtc" not in top.sub.subsub.metadata
    assert "blockStartUtc" in top.metadata


def test_resource_config():
    top = TopTask()
    assert top.getResourceConfig().numberOfCores == 1
    assert top.sub.getResourceConfig() is None


def test_debug_info():
    top = TopTask(debug={"top.sub.subsub": {"psf": True, "frame": 3}})
    info = top.sub.subsub.debugInfo
    assert info.psf is True and info.frame == 3
    assert info.repair is False and info.measure_iter is False
    assert not top.debugInfo
    other = TopTask()
    assert other.sub.subsub.debugInfo.psf is False


def test_log_parent():
    parent = logging.getLogger("skyquanta.test")
    top = TopTask(log=parent)
    assert top.log.name == "skyquanta.test.top"
    assert top.sub.log.name == "skyquanta.test.top.sub"


def test_task_metadata_api():
    md = TaskMetadata()
    md["a.b"] = 1
    md.add("a.c", 2)
    md.add("a.c", 3)
    md["x"] = "y"
    md.add("x", "z")
    assert md["a.b"] == 1 and md.getArray("a.c") == [2, 3] and md.getScalar("a.c") == 3
    assert md.getArray("x") == ["y", "z"]
    assert md.names() == {"a.b", "a.c", "x"}
    assert TaskMetadata.from_dict(md.to_dict()) == md
    with pytest.raises(KeyError, match="'a.q'"):
        md["a.q"]
    with pytest.raises(TypeError, match="'bad'"):
        md["bad"] = object()
