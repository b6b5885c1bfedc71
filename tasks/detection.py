"""SourceDetectionTask: smoothed-image thresholding into footprints with peaks."""

from __future__ import annotations

from typing import Any

from imaging.detection import DetectionConfig, detect_sources
from pipeline import ChoiceField, Config, ConfigField, Field, ListField, RangeField, Struct, Task

from ._convert import options_from_config
from .install_psf import psf_average_position
from .subtract_background import SubtractBackgroundConfig

__all__ = ["SourceDetectionConfig", "SourceDetectionTask"]


class SourceDetectionConfig(Config):
    """Configuration of `SourceDetectionTask` (as CharacterizeImageTask sets it)."""

    thresholdValue = RangeField(float, "Threshold in units of thresholdType", default=5.0, min=0.0)
    thresholdType = ChoiceField(
        str,
        "How the threshold is expressed",
        default="stdev",
        allowed={
            "stdev": "multiples of the smoothed image's clipped stdev",
            "value": "image units",
        },
    )
    includeThresholdMultiplier = RangeField(
        float, "Keep a footprint only if its peak is above threshold x this", default=10.0, min=0.0
    )
    thresholdPolarity = ChoiceField(
        str,
        "Which footprints to return",
        default="positive",
        allowed={"positive": "positive", "negative": "negative", "both": "both"},
    )
    minPixels = RangeField(int, "Minimum footprint area before growing (pixels)", default=1, min=0)
    nSigmaToGrow = RangeField(
        float, "Grow footprints by this many PSF sigmas", default=2.4, min=0.0
    )
    nSigmaForKernel = RangeField(float, "Smoothing kernel size in PSF sigmas", default=7.0, min=1.0)
    statsMask = ListField(
        str, "Planes ignored when measuring the noise", default=["BAD", "SAT", "EDGE", "NO_DATA"]
    )
    saturatedGrow = RangeField(
        int,
        "Peaks within this many pixels of one group of SAT pixels (a saturated star and its "
        "bleed trail) become one peak at the star's wing centroid",
        default=5,
        min=0,
    )
    doMergeSaturated = Field(
        bool, "Merge the peaks and footprints of each saturated star into one", default=True
    )
    reEstimateBackground = Field(
        bool, "Fit and subtract a new background after detection", default=True
    )
    background = ConfigField(SubtractBackgroundConfig, "Background re-estimation")

    def to_options(self) -> DetectionConfig:
        """Return the `imaging.detection.DetectionConfig` these fields describe."""
        return options_from_config(
            DetectionConfig,
            self,
            {
                "threshold_value": "thresholdValue",
                "threshold_type": "thresholdType",
                "include_threshold_multiplier": "includeThresholdMultiplier",
                "polarity": "thresholdPolarity",
                "min_pixels": "minPixels",
                "n_sigma_to_grow": "nSigmaToGrow",
                "n_sigma_for_kernel": "nSigmaForKernel",
                "stats_planes": "statsMask",
                "re_estimate_background": "reEstimateBackground",
                "saturated_grow": "saturatedGrow",
            },
            background=self.background.to_options(),
            **({} if self.doMergeSaturated else {"saturated_planes": ()}),
        )


class SourceDetectionTask(Task):
    """Detect sources on a PSF-smoothed exposure; set DETECTED, EDGE and DETECTED_NEGATIVE."""

    ConfigClass = SourceDetectionConfig
    _DefaultName = "detection"

    def run(self, exposure: Any) -> Struct:
        """Detect sources.

        Parameters
        ----------
        exposure : `imaging.exposure.Exposure`
            Background-subtracted exposure with a PSF; its mask is updated and, when the
            background is re-estimated, its image too.

        Returns
        -------
        result : `Struct`
            ``footprints``, ``labels`` (label image), ``background`` (the re-estimated
            piece or `None`), ``numPos``, ``sigma`` (PSF sigma used), ``level`` and
            ``saturatedCentres`` (``{(peak x, peak y): (x, y)}`` array indices: the wing
            centroids of saturated stars, see `imaging.saturation`).

        Raises
        ------
        RuntimeError
            If the exposure has no PSF.
        """
        if exposure.psf is None:
            raise RuntimeError("SourceDetectionTask needs an exposure with a PSF")
        sigma = float(exposure.psf.sigma(psf_average_position(exposure)))
        with self.timer("detection"):
            result = detect_sources(
                exposure.image,
                exposure.mask.array,
                exposure.variance,
                sigma,
                config=self.config.to_options(),
                planes=exposure.mask.planes,
                xy0=exposure.xy0,
            )
        for key, value in result.metadata.items():
            self.metadata[key] = value
        self.metadata["numPos"] = len(result.footprints)
        self.log.info(
            "Detected %d positive footprints (sigma %.2f px)", len(result.footprints), sigma
        )
        return Struct(
            footprints=result.footprints,
            labels=result.labels,
            background=result.background,
            numPos=len(result.footprints),
            sigma=sigma,
            level=result.level,
            saturatedCentres=result.saturated_centres,
        )
