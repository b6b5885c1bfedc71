"""Trivial pipeline tasks used by the benchmarks (A, B per visit+detector; C gathers per visit)."""

from __future__ import annotations

from pipeline import (
    Input,
    Output,
    PipelineTask,
    PipelineTaskConfig,
    PipelineTaskConnections,
    Struct,
)

VISIT_DET = ("instrument", "visit", "detector")


class AConnections(PipelineTaskConnections, dimensions=VISIT_DET):
    raw = Input("raw", "StructuredDataDict", VISIT_DET)
    out = Output("a_out", "StructuredDataDict", VISIT_DET)


class AConfig(PipelineTaskConfig, pipelineConnections=AConnections):
    pass


class BenchA(PipelineTask):
    ConfigClass = AConfig
    _DefaultName = "a"

    def run(self, raw):
        return Struct(out={"v": raw.get("v", 0) + 1})


class BConnections(PipelineTaskConnections, dimensions=VISIT_DET):
    inp = Input("a_out", "StructuredDataDict", VISIT_DET)
    out = Output("b_out", "StructuredDataDict", VISIT_DET)


class BConfig(PipelineTaskConfig, pipelineConnections=BConnections):
    pass


class BenchB(PipelineTask):
    ConfigClass = BConfig
    _DefaultName = "b"

    def run(self, inp):
        return Struct(out={"v": inp["v"] + 1})


class CConnections(PipelineTaskConnections, dimensions=("instrument", "visit")):
    inp = Input("b_out", "StructuredDataDict", VISIT_DET, multiple=True)
    out = Output("c_out", "StructuredDataDict", ("instrument", "visit"))


class CConfig(PipelineTaskConfig, pipelineConnections=CConnections):
    pass


class BenchC(PipelineTask):
    ConfigClass = CConfig
    _DefaultName = "c"

    def run(self, inp):
        return Struct(out={"n": len(inp)})


PIPELINE_YAML = """
description: benchmark pipeline (A, B per visit+detector, C gathers per visit)
tasks:
  a: bench._tasks.BenchA
  b: bench._tasks.BenchB
  c: bench._tasks.BenchC
"""
