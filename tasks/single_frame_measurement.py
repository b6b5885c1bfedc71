"""SingleFrameMeasurementTask: centroids, shapes, fluxes and pixel flags of detected sources."""

from __future__ import annotations

from collections.abc import Mapping
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
        self,
        exposure: Any,
        footprints: Any,
        labels: np.ndarray,
        *,
        id_offset: int = 0,
        saturatedCentres: Mapping[tuple[int, int], tuple[float, float]] | None = None,  # noqa: N803
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
        saturatedCentres : mapping, optional
            ``{(peak x, peak y): (x, y)}`` in array indices (detection's ``saturatedCentres``):
            a source whose brightest peak is a key is a saturated star, and its centroid is the
            wing centroid given (its core has no usable pixel for the PSF-weighted centroid).

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
            if saturatedCentres:
                n = _use_wing_centroids(table, footprints, saturatedCentres, exposure.xy0)
                self.metadata["numSaturatedCentroids"] = n
        self.metadata["numSources"] = len(table)
        return Struct(sourceCat=table)


def _use_wing_centroids(
    table: Table,
    footprints: Any,
    centres: Mapping[tuple[int, int], tuple[float, float]],
    xy0: tuple[int, int],
) -> int:
    """Set the centroid of saturated stars to their wing centroid; return how many."""
    rows, xs, ys = [], [], []
    for i, fp in enumerate(footprints):
        centre = centres.get((int(fp.peaks.x[0]), int(fp.peaks.y[0])))
        if centre is not None:
            rows.append(i)
            xs.append(centre[0] + xy0[0])
            ys.append(centre[1] + xy0[1])
    if rows:
        for stem in ("base_SdssCentroid", "base_SdssShape"):
            table[f"{stem}_x"][rows] = xs
            table[f"{stem}_y"][rows] = ys
        table["base_SdssCentroid_flag"][rows] = False
        table["base_SdssCentroid_flag_resetToPeak"][rows] = False
    return len(rows)
