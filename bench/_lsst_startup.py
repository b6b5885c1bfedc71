"""LSST's side of the start-up benchmark: run by an interpreter with the LSST middleware.

``python _lsst_startup.py REPO PIPELINE`` creates an LSST data repository holding the same data as
`bench.startup_bench.make_repo` (instrument Sim, 4 visits x 10 detectors of 32x32 float32
``raw`` arrays in run ``raw``); imported as ``lsst_startup`` (the benchmark copies this file
next to the repository), it provides the same three trivial tasks as `bench._startup_tasks`,
written against ``lsst.pipe.base``. It imports nothing of ours.
"""

from __future__ import annotations

import sys

import lsst.pipe.base.connectionTypes as cT
import numpy as np
from lsst.pipe.base import PipelineTask, PipelineTaskConfig, PipelineTaskConnections, Struct

N_VISITS, N_DETECTORS, SHAPE = 4, 10, (32, 32)
VISIT_DET = ("instrument", "visit", "detector")
VISIT = ("instrument", "visit")


class ArrayAConnections(PipelineTaskConnections, dimensions=VISIT_DET):
    raw = cT.Input(name="raw", storageClass="NumpyArray", dimensions=VISIT_DET, doc="array")
    out = cT.Output(name="arr_a", storageClass="NumpyArray", dimensions=VISIT_DET, doc="array")
    schema = cT.InitOutput(name="arr_a_schema", storageClass="StructuredDataDict", doc="schema")


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
    inp = cT.Input(name="arr_a", storageClass="NumpyArray", dimensions=VISIT_DET, doc="array")
    schema = cT.InitInput(name="arr_a_schema", storageClass="StructuredDataDict", doc="schema")
    out = cT.Output(name="arr_b", storageClass="NumpyArray", dimensions=VISIT_DET, doc="array")


class ArrayBConfig(PipelineTaskConfig, pipelineConnections=ArrayBConnections):
    pass


class ArrayB(PipelineTask):
    ConfigClass = ArrayBConfig
    _DefaultName = "arrayB"

    def __init__(self, *, initInputs=None, **kwargs):
        super().__init__(initInputs=initInputs, **kwargs)

    def run(self, inp):
        return Struct(out=inp + 1.0)


class ArrayCConnections(PipelineTaskConnections, dimensions=VISIT):
    inp = cT.Input(
        name="arr_b", storageClass="NumpyArray", dimensions=VISIT_DET, doc="array", multiple=True
    )
    out = cT.Output(name="arr_c", storageClass="StructuredDataDict", dimensions=VISIT, doc="sum")


class ArrayCConfig(PipelineTaskConfig, pipelineConnections=ArrayCConnections):
    pass


class ArrayC(PipelineTask):
    ConfigClass = ArrayCConfig
    _DefaultName = "arrayC"

    def run(self, inp):
        return Struct(out={"n": len(inp), "sum": float(sum(a.sum() for a in inp))})


PIPELINE_YAML = """
description: start-up benchmark, LSST side (A, B per visit+detector, C gathers per visit)
tasks:
  a: lsst_startup.ArrayA
  b: lsst_startup.ArrayB
  c: lsst_startup.ArrayC
"""


def make_repo(root: str) -> None:
    """Create the LSST repository with the benchmark's data."""
    from lsst.daf.butler import Butler, DatasetType

    Butler.makeRepo(root)
    butler = Butler.from_config(root, writeable=True, run="raw")
    registry = butler.registry
    registry.insertDimensionData(
        "instrument", {"name": "Sim", "detector_max": 99, "visit_max": 999, "exposure_max": 999}
    )
    registry.insertDimensionData(
        "physical_filter", {"instrument": "Sim", "name": "r_sim", "band": "r"}
    )
    registry.insertDimensionData("day_obs", {"instrument": "Sim", "id": 20260101})
    detectors = [{"instrument": "Sim", "id": d, "full_name": f"D{d}"} for d in range(N_DETECTORS)]
    registry.insertDimensionData("detector", *detectors)
    visit = {"instrument": "Sim", "physical_filter": "r_sim", "day_obs": 20260101}
    registry.insertDimensionData(
        "visit", *[dict(visit, id=v, name=f"v{v}") for v in range(N_VISITS)]
    )
    registry.insertDimensionData(
        "visit_detector_region",
        *[
            {"instrument": "Sim", "visit": v, "detector": d}
            for v in range(N_VISITS)
            for d in range(N_DETECTORS)
        ],
    )
    registry.registerDatasetType(
        DatasetType("raw", VISIT_DET, "NumpyArray", universe=butler.dimensions)
    )
    for visit in range(N_VISITS):
        for detector in range(N_DETECTORS):
            data = np.full(SHAPE, visit * 100 + detector, dtype=np.float32)
            butler.put(data, "raw", instrument="Sim", visit=visit, detector=detector)


if __name__ == "__main__":
    make_repo(sys.argv[1])
    with open(sys.argv[2], "w") as stream:
        stream.write(PIPELINE_YAML)
