"""Three trivial PipelineTasks for the pipeline tests (imported by dotted name ``trivial_tasks``).

A: per (instrument, visit, detector), reads ``raw``, writes ``a_out`` and the init-output
``a_schema``. B: reads ``a_out`` (and ``a_schema`` at init), writes ``b_out``. C: gathers every
detector's ``b_out`` (``multiple=True``) into one per-visit ``c_out``.
"""

from pipeline.config import Field
from pipeline.connections import InitInput, InitOutput, Input, Output, PipelineTaskConnections
from pipeline.pipeline_task import PipelineTask, PipelineTaskConfig
from pipeline.struct import Struct

VISIT_DET = ("instrument", "visit", "detector")
VISIT = ("instrument", "visit")


class AConnections(PipelineTaskConnections, dimensions=VISIT_DET):
    inp = Input("raw", "Image", VISIT_DET)
    out = Output("a_out", "Image", VISIT_DET)
    schema = InitOutput("a_schema", "Schema")


class AConfig(PipelineTaskConfig, pipelineConnections=AConnections):
    scale = Field(float, "multiply the input by this", default=1.0)
    note = Field(str, "free text", default="")
    nIter = Field(int, "iterations", default=1)

    def setDefaults(self):
        super().setDefaults()
        self.nIter = 2


class TaskA(PipelineTask):
    ConfigClass = AConfig
    _DefaultName = "a"

    def run(self, inp):
        return Struct(out=inp * self.config.scale)


class BConnections(PipelineTaskConnections, dimensions=VISIT_DET):
    inp = Input("a_out", "Image", VISIT_DET)
    schema = InitInput("a_schema", "Schema")
    out = Output("b_out", "Image", VISIT_DET)


class BConfig(PipelineTaskConfig, pipelineConnections=BConnections):
    offset = Field(float, "add this", default=0.0)


class TaskB(PipelineTask):
    ConfigClass = BConfig
    _DefaultName = "b"

    def run(self, inp):
        return Struct(out=inp + self.config.offset)


class CConnections(PipelineTaskConnections, dimensions=VISIT):
    inp = Input("b_out", "Image", VISIT_DET, multiple=True)
    out = Output("c_out", "Catalog", VISIT)


class CConfig(PipelineTaskConfig, pipelineConnections=CConnections):
    minCount = Field(int, "fewest detectors", default=1)


class TaskC(PipelineTask):
    ConfigClass = CConfig
    _DefaultName = "c"

    def run(self, inp):
        return Struct(out=list(inp))


class CatalogBConnections(BConnections, dimensions=VISIT_DET):
    inp = Input("a_out", "Catalog", VISIT_DET)


class CatalogBConfig(PipelineTaskConfig, pipelineConnections=CatalogBConnections):
    pass


class CatalogB(PipelineTask):
    """Like B but reads ``a_out`` as a Catalog (storage class mismatch)."""

    ConfigClass = CatalogBConfig
    _DefaultName = "catalogB"

    def run(self, inp):
        return Struct(out=inp)


class NotATask:
    pass
