"""A stand-in for ProcessBrightStarsTask in the extended-PSF pipeline tests.

``MakeStamps`` (per visit and detector) reads a ``raw`` and writes ``brightStarStamps`` made by
`tests/imaging/_extended_psf_factory` (stars with a known core + halo profile, the detector's
quarter turns), or raises NoWorkFound for the visits in ``noWorkVisits``, as
ProcessBrightStarsTask does without a bright star.
"""

import sys
from pathlib import Path

import numpy as np

from pipeline import (
    Field,
    Input,
    ListField,
    NoWorkFound,
    Output,
    PipelineTask,
    PipelineTaskConfig,
    PipelineTaskConnections,
    Struct,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "imaging"))
from _extended_psf_factory import make_star_stamps  # noqa: E402

VISIT_DET = ("instrument", "visit", "detector")


class MakeStampsConnections(PipelineTaskConnections, dimensions=VISIT_DET):
    raw = Input("raw", "NumpyArray", VISIT_DET)
    brightStarStamps = Output("brightStarStamps", "BrightStarStamps", VISIT_DET)


class MakeStampsConfig(PipelineTaskConfig, pipelineConnections=MakeStampsConnections):
    noWorkVisits = ListField(int, "visits without bright stars", default=[])
    nStamps = Field(int, "stamps per detector", default=6)
    size = Field(int, "stamp size", default=41)


class MakeStamps(PipelineTask):
    ConfigClass = MakeStampsConfig
    _DefaultName = "makeStamps"

    def runQuantum(self, butlerQC, inputRefs, outputRefs):
        data_id = butlerQC.dataId
        result = self.run(int(data_id["visit"]), int(data_id["detector"]))
        butlerQC.put(result, outputRefs)

    def run(self, visit, detector):
        if visit in self.config.noWorkVisits:
            raise NoWorkFound(f"no bright star on visit {visit}")
        rng = np.random.default_rng([visit, detector])
        stamps = make_star_stamps(
            rng,
            self.config.nStamps,
            size=self.config.size,
            radii=(8, 12),
            nb90Rots=detector % 4,
            first_id=1000 * visit + 100 * detector,
        )
        return Struct(brightStarStamps=stamps)
