"""SingleFrameMeasurementTask: centroids, shapes, fluxes and pixel flags of detected sources."""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.table import Table

from imaging.measurement import MeasurementConfig, measure_sources
from pipeline import Config, Field, ListField, Struct, Task

from ._convert import options_from_config

__all__ = ["SingleFrameMeasurementConfig", "SingleFrameMeasurementTask"]


class SingleFrameMeasurementConfig(Config):
    """Configuration of `SingleFrameMeasurementTask`."""

    plugins = ListField(
        str,
        "Measurement plugins (informational: all of these are always run)",
        default=[
            "base_PixelFlags",
            "base_SdssCentroid",
            "base_SdssShape",
            "base_GaussianFlux",
            "base_PsfFlux",
            "base_CircularApertureFlux",
        ],
    )
    apertureRadii = ListField(
        float, "Circular aperture radii (pixels)", default=[3.0, 4.5, 6.0, 9.0, 12.0, 17.0]
    )
    centroidMaxIter = Field(int, "Centroid iterations", default=12)
    centroidMaxShift = Field(float, "Largest centroid shift from the peak (pixels)", default=2.0)
    shapeMaxIter = Field(int, "Adaptive moment iterations", default=100)
    shapeTol = Field(float, "Adaptive moment convergence tolerance", default=1e-4)
    doReplaceWithNoise = Field(bool, "Hide other sources while measuring each one", default=True)

    def to_options(self) -> MeasurementConfig:
        """Return the `imaging.measurement.MeasurementConfig` these fields describe."""
        return options_from_config(
            MeasurementConfig,
            self,
            {
                "aperture_radii": "apertureRadii",
                "centroid_max_iter": "centroidMaxIter",
                "centroid_max_shift": "centroidMaxShift",
                "shape_max_iter": "shapeMaxIter",
                "shape_tol": "shapeTol",
                "mask_other_sources": "doReplaceWithNoise",
            },
        )


class SingleFrameMeasurementTask(Task):
    """Measure every footprint of a detection on an exposure."""

    ConfigClass = SingleFrameMeasurementConfig
    _DefaultName = "measurement"

    def run(
        self, exposure: Any, footprints: Any, labels: np.ndarray, *, id_offset: int = 0
    ) -> Struct:
        """Measure sources.

        Parameters
        ----------
        exposure : `imaging.exposure.Exposure`
            Exposure with a PSF.
        footprints : sequence of `imaging.detection.Footprint`
            What to measure.
        labels : `numpy.ndarray`
            Label image of the footprints.
        id_offset : `int`
            Added to 1..N to make source IDs (unique per exposure when built from its ID).

        Returns
        -------
        result : `Struct`
            ``sourceCat``: an `astropy.table.Table` with LSST column names.
        """
        ids = np.arange(1, len(footprints) + 1, dtype=np.int64) + id_offset
        with self.timer("measurement"):
            table: Table = measure_sources(
                exposure.image,
                exposure.mask.array,
                exposure.variance,
                footprints,
                exposure.psf,
                labels=labels,
                config=self.config.to_options(),
                planes=exposure.mask.planes,
                ids=ids,
                xy0=exposure.xy0,
            )
        self.metadata["numSources"] = len(table)
        return Struct(sourceCat=table)
