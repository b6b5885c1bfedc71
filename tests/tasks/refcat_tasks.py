"""A trivial task with a spatial prerequisite input (reference-catalog shards), for tests."""

from pipeline import (
    Output,
    PipelineTask,
    PipelineTaskConfig,
    PipelineTaskConnections,
    PrerequisiteInput,
    Struct,
)

VISIT_DET = ("instrument", "visit", "detector")


class CountShardsConnections(PipelineTaskConnections, dimensions=VISIT_DET):
    refcat = PrerequisiteInput(
        "gaia_dr2_20200414",
        "SimpleCatalog",
        ("healpix7",),
        multiple=True,
        doc="Reference catalog shards overlapping the detector",
    )
    count = Output("shard_count", "StructuredDataDict", VISIT_DET)


class CountShardsConfig(PipelineTaskConfig, pipelineConnections=CountShardsConnections):
    pass


class CountShards(PipelineTask):
    ConfigClass = CountShardsConfig
    _DefaultName = "countShards"

    def run(self, refcat):
        return Struct(count={"stars": sum(len(t) for t in refcat)})
