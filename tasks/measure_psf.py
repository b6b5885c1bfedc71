"""MeasurePsfTask: select stars, make candidates, reserve some, and fit a PSF model.

Subtasks are chosen from registries, as in LSST: ``starSelector`` (``objectSize``)
and ``psfDeterminer`` (``psfex``: skyquanta's PSFEx-like pixel-basis model with a
polynomial spatial variation).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.table import Table

from imaging.psf_determiner import PixelPsfDeterminer, PixelPsfDeterminerConfig, reserve_sources
from imaging.star_selector import ObjectSizeStarSelectorConfig, select_stars_object_size
from pipeline import (
    ChoiceField,
    Config,
    ConfigField,
    Field,
    ListField,
    RangeField,
    RegistryField,
    Struct,
    Task,
    makeRegistry,
)

from ._convert import options_from_config

__all__ = [
    "MakePsfCandidatesConfig",
    "MeasurePsfConfig",
    "MeasurePsfTask",
    "ObjectSizeStarSelectorTask",
    "PixelPsfDeterminerTask",
    "ReserveSourcesConfig",
    "psfDeterminerRegistry",
    "starSelectorRegistry",
]

starSelectorRegistry = makeRegistry("Star selectors")  # noqa: N816 (LSST name)
psfDeterminerRegistry = makeRegistry("PSF determiners")  # noqa: N816 (LSST name)


class ObjectSizeStarSelectorTaskConfig(Config):
    """Options of the object-size star selector (LSST names)."""

    sourceFluxField = Field(
        str, "Flux column used for the flux cut", default="base_GaussianFlux_instFlux"
    )
    doFluxLimit = Field(bool, "Apply the flux limits", default=True)
    fluxMin = Field(float, "Minimum flux", default=12500.0)
    fluxMax = Field(float, "Maximum flux (0: none)", default=0.0)
    doSignalToNoiseLimit = Field(bool, "Apply the S/N limits", default=False)
    signalToNoiseMin = Field(float, "Minimum S/N", default=50.0)
    signalToNoiseMax = Field(float, "Maximum S/N (0: none)", default=0.0)
    widthMin = Field(float, "Minimum width (pixels)", default=0.0)
    widthMax = Field(float, "Maximum width (pixels)", default=10.0)
    nSigmaClip = Field(float, "Clipping of the stellar locus (sigmas)", default=2.0)
    widthStdAllowed = Field(
        float, "Stop refining when the locus scatter is below this x median", default=0.15
    )
    badFlags = ListField(
        str,
        "Sources with any of these flags are never stars",
        default=[
            "base_PixelFlags_flag_edge",
            "base_PixelFlags_flag_interpolatedCenter",
            "base_PixelFlags_flag_saturatedCenter",
            "base_PixelFlags_flag_crCenter",
            "base_PixelFlags_flag_bad",
            "base_PixelFlags_flag_interpolated",
        ],
    )
    isolationRadius = Field(
        float, "Sources with another source closer than this (pixels) are never stars (0: off)",
        default=15.0,
    )


class ObjectSizeStarSelectorTask(Task):
    """Select stars as the tightest cluster of source sizes."""

    ConfigClass = ObjectSizeStarSelectorTaskConfig
    _DefaultName = "starSelector"

    def run(self, sourceCat: Table) -> Struct:
        """Return ``Struct(selected=bool array)`` over the rows of ``sourceCat``."""
        options = options_from_config(
            ObjectSizeStarSelectorConfig,
            self.config,
            {
                "flux_field": "sourceFluxField",
                "do_flux_limit": "doFluxLimit",
                "flux_min": "fluxMin",
                "flux_max": "fluxMax",
                "do_signal_to_noise_limit": "doSignalToNoiseLimit",
                "signal_to_noise_min": "signalToNoiseMin",
                "signal_to_noise_max": "signalToNoiseMax",
                "width_min": "widthMin",
                "width_max": "widthMax",
                "n_sigma_clip": "nSigmaClip",
                "width_std_allowed": "widthStdAllowed",
                "bad_flags": "badFlags",
                "isolation_radius": "isolationRadius",
            },
        )
        selected = select_stars_object_size(sourceCat, config=options)
        self.metadata["numStars"] = int(np.count_nonzero(selected))
        return Struct(selected=selected)


starSelectorRegistry.register("objectSize", ObjectSizeStarSelectorTask)


class PixelPsfDeterminerTaskConfig(Config):
    """Options of the PSFEx-like pixel-basis determiner."""

    kernelSize = Field(
        float, "Kernel size: absolute if >= 15, else in units of sqrt(rms size)", default=25.0
    )
    kernelSizeMin = Field(int, "Smallest kernel (pixels)", default=25)
    kernelSizeMax = Field(int, "Largest kernel (pixels)", default=45)
    spatialOrder = RangeField(int, "Order of the spatial polynomial", default=2, min=0)
    quadraticVariation = ChoiceField(
        str,
        "What varies at degree 2 of the spatial polynomial",
        default="radial",
        allowed={
            "radial": "the size only, as one term (isotropic stretch times x^2 + y^2)",
            "full": "every derivative image of the mean PSF on u^2, uv and v^2",
        },
    )
    samplingSize = Field(float, "Model pixel size in image pixels", default=1.0)
    badMaskBits = ListField(
        str, "Planes ignored in the stamps", default=["INTRP", "SAT", "CR", "BAD", "NO_DATA"]
    )
    spatialReject = Field(float, "Reject stars with residual chi above this", default=3.0)
    nIterReject = Field(int, "Rejection iterations", default=3)


class PixelPsfDeterminerTask(Task):
    """Fit a spatially varying pixel-basis PSF model (skyquanta's PSFEx-like determiner)."""

    ConfigClass = PixelPsfDeterminerTaskConfig
    _DefaultName = "psfDeterminer"

    def determine(self, exposure: Any, stars: Table, reserved: np.ndarray | None) -> Any:
        """Fit the model on ``stars`` (minus ``reserved``); return the determiner's result."""
        options = options_from_config(
            PixelPsfDeterminerConfig,
            self.config,
            {
                "kernel_size": "kernelSize",
                "kernel_size_min": "kernelSizeMin",
                "kernel_size_max": "kernelSizeMax",
                "spatial_order": "spatialOrder",
                "quadratic_variation": "quadraticVariation",
                "sampling": "samplingSize",
                "bad_planes": "badMaskBits",
                "spatial_reject": "spatialReject",
                "n_iter_reject": "nIterReject",
            },
        )
        return PixelPsfDeterminer(options).determine(
            exposure.image,
            exposure.mask.array,
            exposure.variance,
            stars,
            reserved=reserved,
            planes=exposure.mask.planes,
            xy0=exposure.xy0,
        )


psfDeterminerRegistry.register("psfex", PixelPsfDeterminerTask)


class MakePsfCandidatesConfig(Config):
    """Options of PSF candidate making."""

    kernelSize = RangeField(int, "Candidate stamp size (pixels)", default=25, min=3)
    borderWidth = RangeField(int, "Extra border around the stamp (pixels)", default=0, min=0)


class ReserveSourcesConfig(Config):
    """Options of reserving PSF candidates for validation."""

    fraction = RangeField(
        float, "Fraction of candidates reserved", default=0.0, min=0.0, max=1.0, inclusiveMax=True
    )
    seed = Field(int, "Random seed (combined with the exposure ID)", default=1)


class MeasurePsfConfig(Config):
    """Configuration of `MeasurePsfTask`."""

    starSelector = RegistryField("Star selector", starSelectorRegistry, default="objectSize")
    makePsfCandidates = ConfigField(MakePsfCandidatesConfig, "PSF candidate stamps")
    reserve = ConfigField(ReserveSourcesConfig, "Candidates kept out of the fit, for validation")
    psfDeterminer = RegistryField("PSF determiner", psfDeterminerRegistry, default="psfex")


class MeasurePsfTask(Task):
    """Measure the PSF of an exposure from its bright isolated stars; set it on the exposure."""

    ConfigClass = MeasurePsfConfig
    _DefaultName = "measurePsf"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.makeSubtask("starSelector")
        self.makeSubtask("psfDeterminer")

    def run(self, exposure: Any, sources: Table, expId: int = 0) -> Struct:
        """Select stars, fit the PSF, flag ``calib_psf_*`` in ``sources`` and set ``exposure.psf``.

        Returns
        -------
        result : `Struct`
            ``psf``, ``cellSet`` (an `astropy.table.Table` of candidates with their status:
            ``used``, ``reserved`` or ``rejected``).

        Raises
        ------
        imaging._errors.NoStarsSelectedError
            "No objects passed our cuts for consideration as psf stars".
        imaging._errors.NoPsfCandidatesError
            "No PSF candidates supplied." / "No good PSF candidates to pass to PSFEx".
        """
        selected = self.starSelector.run(sources).selected
        half = (
            self.config.makePsfCandidates.kernelSize // 2
            + self.config.makePsfCandidates.borderWidth
        )
        x = np.asarray(sources["base_SdssCentroid_x"], dtype=float) - exposure.xy0[0]
        y = np.asarray(sources["base_SdssCentroid_y"], dtype=float) - exposure.xy0[1]
        height, width = exposure.image.shape
        inside = np.isfinite(x) & np.isfinite(y) & (x >= half) & (y >= half)
        inside &= (x < width - half) & (y < height - half)
        candidates = np.flatnonzero(selected & inside)
        reserved = reserve_sources(
            candidates.size,
            fraction=self.config.reserve.fraction,
            seed=self.config.reserve.seed,
            exp_id=expId,
        )
        sources["calib_psf_candidate"][:] = False
        sources["calib_psf_used"][:] = False
        sources["calib_psf_reserved"][:] = False
        sources["calib_psf_candidate"][candidates] = True
        sources["calib_psf_reserved"][candidates[reserved]] = True
        stars = sources[candidates]
        with self.timer("psfDeterminer"):
            result = self.psfDeterminer.determine(exposure, stars, reserved)
        used = np.asarray(result.used, dtype=bool)
        sources["calib_psf_used"][candidates[used]] = True
        exposure.psf = result.psf
        for key, value in result.metadata.items():
            self.metadata[key] = value
        self.log.info(
            "PSF from %d of %d candidates (%d reserved)",
            int(used.sum()),
            candidates.size,
            int(np.count_nonzero(reserved)),
        )
        status = np.where(used, "used", np.where(reserved, "reserved", "rejected"))
        cell_set = Table(
            {
                "id": np.asarray(stars["id"]),
                "x": stars["base_SdssCentroid_x"],
                "y": stars["base_SdssCentroid_y"],
                "status": status,
            }
        )
        return Struct(psf=result.psf, cellSet=cell_set)
