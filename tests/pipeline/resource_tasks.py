"""A task with resource hints (``getResourceConfig``), for the dask executor tests."""

from pipeline import (
    ConfigField,
    Input,
    Output,
    PipelineTask,
    PipelineTaskConfig,
    PipelineTaskConnections,
    ResourceConfig,
    Struct,
)

VISIT_DET = ("instrument", "visit", "detector")


class HungryConnections(PipelineTaskConnections, dimensions=VISIT_DET):
    inp = Input("raw", "StructuredDataDict", VISIT_DET)
    out = Output("hungry_out", "StructuredDataDict", VISIT_DET)


class HungryConfig(PipelineTaskConfig, pipelineConnections=HungryConnections):
    resources = ConfigField(ResourceConfig, "Resources this task needs")


class Hungry(PipelineTask):
    ConfigClass = HungryConfig
    _DefaultName = "hungry"

    def run(self, inp):
        return Struct(out={"value": inp["value"]})
