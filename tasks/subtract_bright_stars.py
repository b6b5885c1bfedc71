"""SubtractBrightStarsTask: remove the extended PSF model from the bright stars of a detector.

Per (instrument, visit, detector): read the exposure the stamps were cut from, its
``brightStarStamps`` and the band's ``extended_psf``; scale the detector's model to each star,
warp it back with the stamp's stored transform and quarter turns (or, for a radially aligned
model, ``ALIGNMENT = RADIAL`` in its metadata, the star's focal-plane angle), subtract it
(`imaging.bright_star_subtraction`), and write the subtracted exposure and the model image
that was removed. A detector without stamps has no quantum input and raises
`~pipeline.NoWorkFound` (LSST's 2023 task, science.md §4.1 era notes).
"""

from __future__ import annotations

from typing import Any

from imaging.bright_star_subtraction import subtract_bright_stars
from imaging.exposure import Exposure
from imaging.extended_psf import ExtendedPsf
from imaging.stamps import DEFAULT_BAD_MASK_PLANES, BrightStarStamps
from pipeline import (
    ChoiceField,
    Input,
    ListField,
    Output,
    PipelineTask,
    PipelineTaskConfig,
    PipelineTaskConnections,
    Struct,
)

__all__ = [
    "SubtractBrightStarsConfig",
    "SubtractBrightStarsConnections",
    "SubtractBrightStarsTask",
]

_DIMENSIONS = ("instrument", "visit", "detector")


class SubtractBrightStarsConnections(PipelineTaskConnections, dimensions=_DIMENSIONS):
    """Connections of `SubtractBrightStarsTask`."""

    inputExposure = Input("calexp", "ExposureF", _DIMENSIONS, doc="Exposure the stamps came from")
    inputBrightStarStamps = Input(
        "brightStarStamps", "BrightStarStamps", _DIMENSIONS, doc="The detector's stamps"
    )
    inputExtendedPsf = Input(
        "extended_psf", "ExtendedPsf", ("band", "instrument"), doc="The band's extended PSF"
    )
    outputExposure = Output(
        "brightStarSubtracted_calexp",
        "ExposureF",
        _DIMENSIONS,
        doc="The exposure with its bright stars' extended PSF removed",
    )
    outputModel = Output(
        "brightStarSubtracted_model",
        "ExposureF",
        _DIMENSIONS,
        doc="The model image that was removed",
    )


class SubtractBrightStarsConfig(
    PipelineTaskConfig, pipelineConnections=SubtractBrightStarsConnections
):
    """Configuration of `SubtractBrightStarsTask`."""

    scalingType = ChoiceField(
        str,
        "How the model is scaled to each star",
        default="ANNULAR_FLUX",
        allowed={
            "ANNULAR_FLUX": "the star's annular flux (the model has annulus mean 1)",
            "LEAST_SQUARES": "a least-squares fit of the model to the stamp",
        },
    )
    badMaskPlanes = ListField(
        str,
        "Mask planes left out of the least-squares scaling",
        default=list(DEFAULT_BAD_MASK_PLANES),
    )


class SubtractBrightStarsTask(PipelineTask):
    """Subtract the scaled extended PSF of every bright star of a detector.

    Parameters
    ----------
    initInputs : `dict`, optional
        Unused (no init-inputs).
    **kwargs
        Passed to `PipelineTask`.
    """

    ConfigClass = SubtractBrightStarsConfig
    _DefaultName = "subtractBrightStars"
    canMultiprocess = True

    def __init__(self, initInputs: Any = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:
        """Read the exposure, stamps and model; run; write both outputs."""
        inputs = butlerQC.get(inputRefs)
        detector = int(butlerQC.dataId["detector"])
        result = self.run(
            inputs["inputExposure"],
            inputs["inputBrightStarStamps"],
            inputs["inputExtendedPsf"],
            detector=detector,
        )
        butlerQC.put(result, outputRefs)

    def run(
        self,
        inputExposure: Exposure,
        inputBrightStarStamps: BrightStarStamps,
        inputExtendedPsf: ExtendedPsf,
        *,
        detector: int | None = None,
    ) -> Struct:
        """Subtract the model of every star of ``inputBrightStarStamps`` from the exposure.

        Returns
        -------
        result : `Struct`
            ``outputExposure`` (the subtracted exposure, a new object) and ``outputModel``
            (an exposure holding the model image removed).

        Raises
        ------
        imaging.extended_psf.ExtendedPsfError
            If the extended PSF has no model for the detector.
        """
        model = inputExtendedPsf(detector)
        subtracted = inputExposure.clone()
        result = subtract_bright_stars(
            subtracted,
            inputBrightStarStamps,
            model.image,
            scaling=self.config.scalingType,
            bad_mask_planes=tuple(self.config.badMaskPlanes),
            alignment=str(inputExtendedPsf.metadata.get("ALIGNMENT", "QUARTER_TURNS")),
        )
        self.metadata["subtractedStarCount"] = result.n_subtracted
        self.log.info(
            "Subtracted the extended PSF of %d of %d bright stars",
            result.n_subtracted,
            len(inputBrightStarStamps),
        )
        removed = Exposure(
            result.model_image,
            wcs=inputExposure.wcs,
            detector=inputExposure.detector,
            visit=inputExposure.visit,
            xy0=inputExposure.xy0,
        )
        return Struct(outputExposure=subtracted, outputModel=removed)
