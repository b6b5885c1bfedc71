"""A per-band gather task for the graph-builder tests (imported by dotted name).

``BandGather`` has dimensions (band, instrument) and reads every ``b_out`` (instrument, visit,
detector) of its band: the band is not a dimension of the input, it is implied by the visit.
"""

from pipeline.connections import Input, Output, PipelineTaskConnections
from pipeline.pipeline_task import PipelineTask, PipelineTaskConfig
from pipeline.struct import Struct

BAND = ("band", "instrument")
VISIT_DET = ("instrument", "visit", "detector")


class BandGatherConnections(PipelineTaskConnections, dimensions=BAND):
    inp = Input("b_out", "Image", VISIT_DET, multiple=True, deferLoad=True)
    out = Output("band_out", "Catalog", BAND)


class BandGatherConfig(PipelineTaskConfig, pipelineConnections=BandGatherConnections):
    pass


class BandGather(PipelineTask):
    ConfigClass = BandGatherConfig
    _DefaultName = "bandGather"

    def run(self, inp):
        return Struct(out=[handle.get() for handle in inp])
