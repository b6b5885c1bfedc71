"""Trivial array tasks of the start-up benchmark (`bench.startup_bench`).

Shaped like ``tests/pipeline/trivial_tasks.py``: ArrayA per visit+detector scales the raw
32x32 array and writes an init-output schema, ArrayB reads that schema at init and offsets
the array, ArrayC gathers a visit's arrays into one small dict. The module imports only
`pipeline`'s public names, so the benchmark copies it next to its repository as
``startup_tasks.py`` and the same file serves any source tree it times (``BENCH_STARTUP_BASE``).
"""

from pipeline import (
    InitInput,
    InitOutput,
    Input,
    Output,
    PipelineTask,
    PipelineTaskConfig,
    PipelineTaskConnections,
    Struct,
)

VISIT_DET = ("instrument", "visit", "detector")


class ArrayAConnections(PipelineTaskConnections, dimensions=VISIT_DET):
    raw = Input("raw", "NumpyArray", VISIT_DET)
    out = Output("arr_a", "NumpyArray", VISIT_DET)
    schema = InitOutput("arr_a_schema", "StructuredDataDict")


class ArrayAConfig(PipelineTaskConfig, pipelineConnections=ArrayAConnections):
    pass


class ArrayA(PipelineTask):
    ConfigClass = ArrayAConfig
    _DefaultName = "arrayA"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.schema = {"columns": ["value"]}

    def run(self, raw):
        return Struct(out=raw * 2.0)


class ArrayBConnections(PipelineTaskConnections, dimensions=VISIT_DET):
    inp = Input("arr_a", "NumpyArray", VISIT_DET)
    schema = InitInput("arr_a_schema", "StructuredDataDict")
    out = Output("arr_b", "NumpyArray", VISIT_DET)


class ArrayBConfig(PipelineTaskConfig, pipelineConnections=ArrayBConnections):
    pass


class ArrayB(PipelineTask):
    ConfigClass = ArrayBConfig
    _DefaultName = "arrayB"

    def run(self, inp):
        return Struct(out=inp + 1.0)


class ArrayCConnections(PipelineTaskConnections, dimensions=("instrument", "visit")):
    inp = Input("arr_b", "NumpyArray", VISIT_DET, multiple=True)
    out = Output("arr_c", "StructuredDataDict", ("instrument", "visit"))


class ArrayCConfig(PipelineTaskConfig, pipelineConnections=ArrayCConnections):
    pass


class ArrayC(PipelineTask):
    ConfigClass = ArrayCConfig
    _DefaultName = "arrayC"

    def run(self, inp):
        return Struct(out={"n": len(inp), "sum": float(sum(a.sum() for a in inp))})


ARRAY_PIPELINE_YAML = """
description: start-up benchmark (A, B per visit+detector on 32x32 arrays, C gathers per visit)
tasks:
  a: startup_tasks.ArrayA
  b: startup_tasks.ArrayB
  c: startup_tasks.ArrayC
"""
