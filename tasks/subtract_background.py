"""SubtractBackgroundTask: fit a smooth background model and subtract it."""

from __future__ import annotations

from typing import Any

from imaging.background import BackgroundConfig, BackgroundList, subtract_background
from pipeline import ChoiceField, Config, Field, ListField, RangeField, Struct, Task

from ._convert import options_from_config

__all__ = ["SubtractBackgroundConfig", "SubtractBackgroundTask"]


class SubtractBackgroundConfig(Config):
    """Configuration of `SubtractBackgroundTask` (LSST's defaults)."""

    binSize = RangeField(int, "Background cell size (pixels)", default=128, min=8)
    statisticsProperty = ChoiceField(
        str,
        "Statistic of each cell",
        default="MEANCLIP",
        allowed={"MEANCLIP": "3-sigma clipped mean", "MEDIAN": "median"},
    )
    useApprox = Field(
        bool, "Fit a Chebyshev approximation (else interpolate the cells)", default=True
    )
    approxOrderX = RangeField(int, "Chebyshev order", default=6, min=0)
    weighting = Field(bool, "Weight the fit by inverse variance of the cells", default=True)
    algorithm = ChoiceField(
        str,
        "Interpolation when useApprox is False",
        default="AKIMA_SPLINE",
        allowed={"AKIMA_SPLINE": "Akima spline", "LINEAR": "linear", "CONSTANT": "constant"},
    )
    undersampleStyle = ChoiceField(
        str,
        "What to do with too few cells for the order",
        default="REDUCE_INTERP_ORDER",
        allowed={"REDUCE_INTERP_ORDER": "lower the order", "THROW_EXCEPTION": "raise"},
    )
    ignoredPixelMask = ListField(
        str,
        "Mask planes ignored",
        default=["BAD", "EDGE", "DETECTED", "DETECTED_NEGATIVE", "NO_DATA"],
    )

    def to_options(self) -> BackgroundConfig:
        """Return the `imaging.background.BackgroundConfig` these fields describe."""
        return options_from_config(
            BackgroundConfig,
            self,
            {
                "bin_size": "binSize",
                "use_approx": "useApprox",
                "approx_order": "approxOrderX",
                "weighting": "weighting",
                "algorithm": "algorithm",
                "undersample_style": "undersampleStyle",
                "ignored_planes": "ignoredPixelMask",
                "statistic": "statisticsProperty",
            },
        )


class SubtractBackgroundTask(Task):
    """Fit the background of an exposure and subtract it in place."""

    ConfigClass = SubtractBackgroundConfig
    _DefaultName = "subtractBackground"

    def run(self, exposure: Any, background: BackgroundList | None = None) -> Struct:
        """Subtract the background from ``exposure``.

        Parameters
        ----------
        exposure : `imaging.exposure.Exposure`
            Modified in place; ``BGMEAN`` and ``BGVAR`` are written to its metadata.
        background : `BackgroundList`, optional
            List to append the new piece to; a new list if `None`.

        Returns
        -------
        result : `Struct`
            ``background``: the list with the new piece.
        """
        background = BackgroundList() if background is None else background
        with self.timer("subtractBackground"):
            model, stats = subtract_background(
                exposure.image,
                exposure.mask.array,
                exposure.variance,
                config=self.config.to_options(),
                planes=exposure.mask.planes,
                xy0=exposure.xy0,
            )
        for key, value in stats.items():
            exposure.metadata[key] = float(value)
            self.metadata[key] = float(value)
        background.append(model)
        return Struct(background=background)
