import pickle

import pytest

from pipeline._errors import PipelineDefinitionError
from pipeline.config import Field
from pipeline.connections import (
    InitOutput,
    Input,
    InputQuantizedConnection,
    Output,
    OutputQuantizedConnection,
    PipelineTaskConnections,
    PrerequisiteInput,
    connections_for,
)
from pipeline.pipeline_task import PipelineTask, PipelineTaskConfig, QuantumContext
from pipeline.struct import Struct


class BrightStarConnections(
    PipelineTaskConnections,
    dimensions=("instrument", "visit", "detector"),
    defaultTemplates={"calexpType": "calexp"},
):
    inputExposure = Input("{calexpType}", "ExposureF", ("instrument", "visit", "detector"))
    skyCorr = Input("skyCorr", "Background", ("instrument", "visit", "detector"))
    refCat = PrerequisiteInput("gaia_dr2_20200414", "SimpleCatalog", ("htm7",),
                               multiple=True, deferLoad=True)
    brightStarStamps = Output("brightStarStamps", "BrightStarStamps",
                              ("instrument", "visit", "detector"))
    outputSchema = InitOutput("brightStar_schema", "SourceCatalog")

    def __init__(self, *, config=None):
        super().__init__(config=config)
        if config is not None and not config.doApplySkyCorr:
            self.inputs.remove("skyCorr")


class BrightStarConfig(PipelineTaskConfig, pipelineConnections=BrightStarConnections):
    doApplySkyCorr = Field(bool, "Apply sky correction", default=True)
    scale = Field(float, "Scale factor", default=2.0)


def test_connection_kinds_and_defaults():
    conn = Input("calexp", "ExposureF", "visit")
    assert conn.dimensions == ("visit",) and conn.minimum == 1 and not conn.multiple
    with pytest.raises(AttributeError):
        conn.name = "other"
    assert BrightStarConnections.dimensions == ("instrument", "visit", "detector")


def test_resolved_connections_default():
    c = connections_for(BrightStarConfig())
    assert c.inputs == {"inputExposure", "skyCorr"}
    assert c.prerequisiteInputs == {"refCat"}
    assert c.outputs == {"brightStarStamps"}
    assert c.initInputs == set() and c.initOutputs == {"outputSchema"}
    assert c.dimensions == {"instrument", "visit", "detector"}
    assert c.inputExposure.name == "calexp"
    assert c.refCat.deferLoad and c.refCat.multiple


def test_rename_and_template_through_config():
    config = BrightStarConfig()
    config.connections.calexpType = "icExp"
    config.connections.brightStarStamps = "myStamps"
    c = connections_for(config)
    assert c.inputExposure.name == "icExp"
    assert c.brightStarStamps.name == "myStamps"
    config.connections.inputExposure = "postISRCCD"
    assert connections_for(config).inputExposure.name == "postISRCCD"


def test_conditional_removal():
    config = BrightStarConfig(doApplySkyCorr=False)
    c = connections_for(config)
    assert "skyCorr" not in c.inputs
    assert "skyCorr" not in c.allConnections
    with pytest.raises(AttributeError, match="'skyCorr' was removed"):
        c.skyCorr  # noqa: B018


def test_bad_templates():
    with pytest.raises(TypeError, match="noSuchTemplate"):
        class Bad(PipelineTaskConnections, dimensions=()):
            a = Input("{noSuchTemplate}x", "X")
    config = BrightStarConfig()
    config.connections.inputExposure = "{other}"
    with pytest.raises(PipelineDefinitionError, match="inputExposure"):
        connections_for(config)
    with pytest.raises(PipelineDefinitionError, match="pipelineConnections"):
        connections_for(PipelineTaskConfig())


def test_quantized_connection():
    refs = InputQuantizedConnection(inputExposure="ref1", refCat=["r1", "r2"])
    assert refs.inputExposure == "ref1"
    assert sorted(refs.keys()) == ["inputExposure", "refCat"]
    assert dict(iter(refs)) == {"inputExposure": "ref1", "refCat": ["r1", "r2"]}
    with pytest.raises(AttributeError, match="'nope'"):
        refs.nope  # noqa: B018
    again = pickle.loads(pickle.dumps(refs))
    assert dict(iter(again)) == dict(iter(refs))


class InMemoryQuantumContext:
    """A tiny butler for one quantum: refs are plain strings, storage a dict."""

    def __init__(self, store, dataId):
        self.store = dict(store)
        self._dataId = dataId

    @property
    def dataId(self):
        return self._dataId

    def get(self, dataset):
        if isinstance(dataset, InputQuantizedConnection):
            return {name: self.get(ref) for name, ref in dataset}
        if isinstance(dataset, list):
            return [self.store[ref] for ref in dataset]
        return self.store[dataset]

    def put(self, values, dataset):
        if isinstance(dataset, OutputQuantizedConnection):
            for name, ref in dataset:
                self.put(getattr(values, name), ref)
        else:
            self.store[dataset] = values


class BrightStarTask(PipelineTask):
    ConfigClass = BrightStarConfig
    _DefaultName = "processBrightStars"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.outputSchema = ["id", "flux"]

    def run(self, inputExposure, refCat, skyCorr=None):
        if not refCat:
            return None
        stamps = [inputExposure * self.config.scale - (skyCorr or 0) for _ in refCat]
        return Struct(brightStarStamps=stamps)


def test_run_quantum_default():
    butler = InMemoryQuantumContext(
        {"calexp/1": 10.0, "sky/1": 1.0, "gaia/a": "A", "gaia/b": "B"}, {"visit": 1})
    assert isinstance(butler, QuantumContext)
    task = BrightStarTask()
    inputs = InputQuantizedConnection(inputExposure="calexp/1", skyCorr="sky/1",
                                      refCat=["gaia/a", "gaia/b"])
    outputs = OutputQuantizedConnection(brightStarStamps="stamps/1")
    task.runQuantum(butler, inputs, outputs)
    assert butler.store["stamps/1"] == [19.0, 19.0]
    assert task.getInitOutputDatasets() == {"outputSchema": ["id", "flux"]}


def test_run_quantum_none_writes_nothing():
    butler = InMemoryQuantumContext({"calexp/1": 10.0}, {"visit": 1})
    task = BrightStarTask()
    task.runQuantum(butler, InputQuantizedConnection(inputExposure="calexp/1", refCat=[]),
                    OutputQuantizedConnection(brightStarStamps="stamps/1"))
    assert "stamps/1" not in butler.store


def test_pipeline_task_is_abstract():
    class NoRun(PipelineTask):
        _DefaultName = "noRun"

    with pytest.raises(TypeError, match="abstract"):
        NoRun()
