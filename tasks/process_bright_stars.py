"""ProcessBrightStarsTask: warped, normalized postage stamps of the bright stars of a detector.

The algorithm, as LSST's (``shared/science.md`` §2.3):

1. `applySkyCorr` (with ``doApplySkyCorr``): subtract the full focal-plane sky correction.
2. `extractStamps`: load the reference stars around the detector (its box grown by
   ``stampSize - minPixelsWithinFrame``), keep those brighter than ``magLimit``, and cut a
   ``stampSize`` box around the nearest pixel of each; a box that leaves the detector is padded
   with NaN and ``NO_DATA`` (one overlapping pixel is enough). With ``doRemoveDetected`` the
   other ``DETECTED`` footprints of the stamp become ``BAD`` (the central one is the footprint
   containing the star's pixel).
3. `warpStamps`: resample each stamp through PIXELS → TAN_PIXELS (``doApplyTransform``) plus
   the shift that puts the star on the centre pixel of the ``int(stampSize ×
   modelStampBuffer)`` (made odd) model grid, then turn it by the detector's quarter turns.
4. Drop the stamps with no valid pixel (finite and not ``NO_DATA``), with one log line
   counting them (``noDataStarCount`` in the metadata): a star beside the detector whose
   stamp overlaps it by a few pixels keeps none once warped (the kernel needs valid pixels
   on every side), and such a stamp carries nothing, neither a flux nor a pixel to stack.
   This is the only threshold on the whole stamp, whatever ``discardNanFluxStars``: a stamp
   with some data is kept or dropped by its annulus (``minValidAnnulusFraction``,
   ``discardNanFluxStars``), which is what its normalization needs, and the stacker uses
   each of its pixels that is valid.
5. Normalize by the annular flux (`~imaging.stamps.BrightStarStamps.initAndNormalize`).

No star bright enough: "No suitable bright star found." and `run` returns `None`; `runQuantum`
then raises `~pipeline.NoWorkFound` (no output, the quantum counts as done).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import numpy as np

from imaging.exposure import Exposure
from imaging.footprint import connected_region
from imaging.geometry import Box
from imaging.mask import Mask
from imaging.radial_alignment import geometry_metadata
from imaging.refcat_loader import ReferenceObjectLoader, julian_epoch, mag_to_njy
from imaging.stamps import DEFAULT_BAD_MASK_PLANES, BrightStarStamp, BrightStarStamps
from imaging.warping import (
    KERNEL_HALF_WIDTHS,
    StampTransform,
    nb90_rotations,
    warp_masked_image,
)
from pipeline import (
    ChoiceField,
    Config,
    ConfigField,
    Field,
    Input,
    ListField,
    NoWorkFound,
    Output,
    PipelineTask,
    PipelineTaskConfig,
    PipelineTaskConnections,
    PrerequisiteInput,
    RangeField,
    Struct,
)

from ._camera import CAMERA_CONNECTION_DOC, registered_detector
from ._pictures import default_debug_dir

__all__ = [
    "LoadReferenceObjectsConfig",
    "ProcessBrightStarsConfig",
    "ProcessBrightStarsConnections",
    "ProcessBrightStarsTask",
]

_DIMENSIONS = ("instrument", "visit", "detector")


class ProcessBrightStarsConnections(PipelineTaskConnections, dimensions=_DIMENSIONS):
    """Connections of `ProcessBrightStarsTask` (LSST's names; rename ``inputExposure`` freely)."""

    inputExposure = Input("calexp", "ExposureF", _DIMENSIONS, doc="Exposure to cut stamps from")
    skyCorr = Input("skyCorr", "Background", _DIMENSIONS, doc="Full focal-plane sky correction")
    refCat = PrerequisiteInput(
        "gaia_dr2_20200414",
        "SimpleCatalog",
        ("healpix7",),
        multiple=True,
        deferLoad=True,
        doc="Reference catalog shards overlapping the detector",
    )
    camera = PrerequisiteInput(
        "camera",
        "Camera",
        ("instrument",),
        doc=CAMERA_CONNECTION_DOC,
    )
    brightStarStamps = Output(
        "brightStarStamps", "BrightStarStamps", _DIMENSIONS, doc="Normalized bright-star stamps"
    )

    def __init__(self, *, config: Any = None) -> None:
        super().__init__(config=config)
        if config is not None and not config.doApplySkyCorr:
            del self.skyCorr


class LoadReferenceObjectsConfig(Config):
    """Configuration of the reference object loader (LSST's LoadReferenceObjectsConfig)."""

    pixelMargin = RangeField(int, "Padding of the pixel box (pixels)", default=250, min=0)
    filterName = Field(
        str,
        "Column prefix of the reference flux (<name>_flux, nJy) or magnitude (<name>_mag)",
        default="phot_g_mean",
    )
    requireProperMotion = Field(
        bool,
        "Require proper-motion columns (else positions stay at the catalog epoch)",
        default=False,
    )


class ProcessBrightStarsConfig(
    PipelineTaskConfig, pipelineConnections=ProcessBrightStarsConnections
):
    """Configuration of `ProcessBrightStarsTask` (LSST's defaults, science.md §2.2)."""

    magLimit = Field(float, "Magnitude limit: stars brighter than this get stamps", default=18.0)
    stampSize = ListField(
        int, "Size of the cut-outs (pixels, width and height)", default=[250, 250]
    )
    modelStampBuffer = Field(
        float,
        "Model grid size over stampSize (the grid is made odd): 1.1 gives 275 x 275",
        default=1.1,
    )
    doRemoveDetected = Field(
        bool, "Mark DETECTED footprints other than the central star's as BAD", default=True
    )
    doApplyTransform = Field(
        bool, "Warp through PIXELS -> TAN_PIXELS (removes the optical distortion)", default=True
    )
    warpingKernelName = ChoiceField(
        str,
        "Warping kernel",
        default="lanczos5",
        allowed={name: name for name in KERNEL_HALF_WIDTHS},
    )
    annularFluxRadii = ListField(
        int, "Inner and outer radius of the normalization annulus (pixels)", default=[40, 50]
    )
    annularFluxStatistic = ChoiceField(
        str,
        "Statistic of the annulus pixels",
        default="MEANCLIP",
        allowed={"MEANCLIP": "clipped mean", "MEAN": "mean", "MEDIAN": "median"},
    )
    numSigmaClip = Field(float, "Sigma for MEANCLIP", default=4.0)
    numIter = Field(int, "Iterations of MEANCLIP", default=3)
    badMaskPlanes = ListField(
        str, "Mask planes ignored in the annulus statistic", default=list(DEFAULT_BAD_MASK_PLANES)
    )
    minPixelsWithinFrame = Field(
        int,
        "Stars are searched up to stampSize - minPixelsWithinFrame pixels beyond the edges",
        default=50,
    )
    doApplySkyCorr = Field(bool, "Subtract the full focal-plane sky correction", default=True)
    discardNanFluxStars = Field(
        bool, "Drop stars whose annular flux is NaN (else keep them unnormalized)", default=False
    )
    minValidAnnulusFraction = Field(
        float,
        "Smallest fraction of annulus pixels without bad planes for a star to be normalized",
        default=0.0,
    )
    refObjLoader = ConfigField(dtype=LoadReferenceObjectsConfig, doc="Reference object loader")
    debugStages = ListField(
        str, "Debug pictures to write: stamps (a mosaic PNG per quantum), or all", default=[]
    )
    debugDir = Field(str, "Folder of debug pictures (default: <datastore>/<run>/debug)", default="")

    def validate(self) -> None:
        """Check the sizes and radii.

        Raises
        ------
        ValueError
            On a stamp size, buffer or annulus that cannot work.
        """
        super().validate()
        if len(self.stampSize) != 2 or min(self.stampSize) <= 0:
            raise ValueError(f"stampSize must be two positive integers, got {self.stampSize}")
        if self.modelStampBuffer < 1.0:
            raise ValueError(f"modelStampBuffer must be >= 1, got {self.modelStampBuffer}")
        inner, outer = (list(self.annularFluxRadii) + [0, 0])[:2]
        if len(self.annularFluxRadii) != 2 or not 0 <= inner < outer:
            raise ValueError(
                f"annularFluxRadii must be (inner, outer) with 0 <= inner < outer, got "
                f"{list(self.annularFluxRadii)}"
            )
        if not 0.0 <= self.minValidAnnulusFraction <= 1.0:
            raise ValueError(
                f"minValidAnnulusFraction must be in [0, 1], got {self.minValidAnnulusFraction}"
            )


def model_stamp_shape(config: ProcessBrightStarsConfig) -> tuple[int, int]:
    """Model grid ``(width, height)``: ``int(stampSize * modelStampBuffer)`` made odd."""
    sizes = []
    for size in config.stampSize:
        model = int(size * config.modelStampBuffer)
        sizes.append(model if model % 2 else model + 1)
    return sizes[0], sizes[1]


class ProcessBrightStarsTask(PipelineTask):
    """Extract, warp and normalize postage stamps of the bright stars of an exposure.

    Parameters
    ----------
    butler : `None`
        Compatibility parameter; must be `None`.
    initInputs : `dict`, optional
        Unused (no init-inputs).
    **kwargs
        Passed to `PipelineTask`.
    """

    ConfigClass = ProcessBrightStarsConfig
    _DefaultName = "processBrightStars"
    canMultiprocess = True
    debugStages = ("stamps",)

    def __init__(self, butler: Any = None, initInputs: Any = None, *args: Any, **kwargs: Any):
        if butler is not None:
            raise TypeError("butler must be None (compatibility parameter)")
        super().__init__(*args, **kwargs)
        self.modelStampSize = model_stamp_shape(self.config)
        self.modelCenter = (self.modelStampSize[0] // 2, self.modelStampSize[1] // 2)
        self._debug_dir = self.config.debugDir
        self._debug_tag = "stamps"
        stages = set(self.config.debugStages)
        for stage in self.debugStages:
            if "all" in stages or stage in stages:
                setattr(self.debugInfo, stage, True)

    # -- butler I/O -----------------------------------------------------------------------------

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:
        """Read the exposure, build a loader over the refcat shards, run, write the stamps."""
        data_id = butlerQC.dataId
        exposure = butlerQC.get(inputRefs.inputExposure)
        name = inputRefs.inputExposure.dataset_type.name
        label = f"{name} {dict(data_id.required) if hasattr(data_id, 'required') else data_id}"
        if exposure.wcs is None:
            raise RuntimeError(f"{label} has no WCS: cannot place reference stars on it")
        if "camera" in inputRefs:
            camera = butlerQC.get(inputRefs.camera)
            exposure.detector = registered_detector(camera, exposure.detector, label)
        shard_refs = list(inputRefs.refCat) if "refCat" in inputRefs else []
        loader = ReferenceObjectLoader(
            [ref.data_id for ref in shard_refs],
            [_Deferred(butlerQC, ref) for ref in shard_refs],
            name=inputRefs.refCat[0].dataset_type.name if shard_refs else "gaia_dr2_20200414",
            pixelMargin=self.config.refObjLoader.pixelMargin,
        )
        self._region_name = f"detector {data_id['detector']} of visit {data_id['visit']}"
        sky_corr = None
        if self.config.doApplySkyCorr:
            sky_corr = butlerQC.get(inputRefs.skyCorr)
        self._debug_tag = f"{data_id['instrument']}_{data_id['visit']}_{data_id['detector']}"
        if not self._debug_dir and self.config.debugStages:
            self._debug_dir = default_debug_dir(butlerQC, outputRefs)
        result = self.run(exposure, refObjLoader=loader, dataId=str(data_id), skyCorr=sky_corr)
        if result is None:
            raise NoWorkFound(f"No suitable bright star found on {self._region_name}")
        butlerQC.put(result, outputRefs)

    # -- algorithm ------------------------------------------------------------------------------

    def applySkyCorr(self, calexp: Exposure, skyCorr: Any) -> None:
        """Subtract the sky correction from the exposure's image, in place.

        Raises
        ------
        ValueError
            If ``skyCorr`` is `None` (LSST fails with an AttributeError here).
        """
        if skyCorr is None:
            raise ValueError("doApplySkyCorr is set but no skyCorr was given")
        sky = skyCorr.evaluate(calexp.image.shape, calexp.xy0)
        calexp.image -= sky.astype(np.float32)

    def run(
        self,
        inputExposure: Exposure,
        refObjLoader: ReferenceObjectLoader | None = None,
        dataId: Any = None,
        skyCorr: Any = None,
    ) -> Struct | None:
        """Extract, warp and normalize the bright-star stamps of ``inputExposure``.

        Returns
        -------
        result : `Struct` or `None`
            ``brightStarStamps``; `None` when no star qualifies.
        """
        if self.config.doApplySkyCorr:
            self.applySkyCorr(inputExposure, skyCorr)
        with self.timer("extractStamps"):
            extracted = self.extractStamps(inputExposure, refObjLoader=refObjLoader)
        self.metadata["allStarCount"] = len(extracted.starIms)
        if not extracted.starIms:
            self.log.info("No suitable bright star found.")
            self.metadata["validStarCount"] = 0
            self.metadata["noDataStarCount"] = 0
            return None
        with self.timer("warpStamps"):
            warped = self.warpStamps(extracted.starIms, extracted.pixCenters)
        stamps = [
            BrightStarStamp(
                stamp_im=image,
                gaiaGMag=mag,
                gaiaId=gaia_id,
                position=xy0,
                archive_element=transform,
            )
            for image, mag, gaia_id, xy0, transform in zip(
                warped.warpedStars,
                extracted.GMags,
                extracted.gaiaIds,
                warped.xy0s,
                warped.warpTransforms,
                strict=True,
            )
        ]
        with_data = [stamp for stamp in stamps if _has_valid_pixel(stamp.stamp_im)]
        self.metadata["noDataStarCount"] = len(stamps) - len(with_data)
        if len(with_data) < len(stamps):
            self.log.info(
                "dropped %d of %d bright-star stamps with no valid pixel (stars beside the "
                "detector: nothing of it is left in their warped stamps)",
                len(stamps) - len(with_data),
                len(stamps),
            )
        stamps = with_data
        inner, outer = self.config.annularFluxRadii
        metadata: dict[str, Any] = {"MAGLIMIT": float(self.config.magLimit)}
        if dataId is not None:
            metadata["DATAID"] = str(dataId)[:60]
        if inputExposure.detector is not None:
            # where each star lies on the focal plane, for a radial alignment downstream
            metadata.update(geometry_metadata(inputExposure.detector))
        with self.timer("normalize"):
            stamps_out = BrightStarStamps.initAndNormalize(
                stamps,
                innerRadius=inner,
                outerRadius=outer,
                nb90Rots=warped.nb90Rots,
                metadata=metadata,
                use_archive=True,
                imCenter=self.modelCenter,
                discardNanFluxObjects=self.config.discardNanFluxStars,
                statistic=self.config.annularFluxStatistic,
                numSigmaClip=self.config.numSigmaClip,
                numIter=self.config.numIter,
                badMaskPlanes=list(self.config.badMaskPlanes),
                minValidAnnulusFraction=self.config.minValidAnnulusFraction,
            )
        self.metadata["validStarCount"] = len(stamps_out)
        self.metadata["nb90Rots"] = warped.nb90Rots
        if self.debugInfo.stamps and len(stamps_out):
            self._write_mosaic(stamps_out)
        if not len(stamps_out):
            self.log.info("No suitable bright star found.")
            return None
        return Struct(brightStarStamps=stamps_out)

    def extractStamps(
        self, inputExposure: Exposure, refObjLoader: ReferenceObjectLoader | None = None
    ) -> Struct:
        """Cut a stamp around every reference star brighter than ``magLimit``.

        Returns
        -------
        result : `Struct`
            ``starIms`` (list of `~imaging.exposure.Exposure`), ``pixCenters`` (list of
            ``(x, y)``), ``GMags`` (list of `float`), ``gaiaIds`` (`numpy.ndarray`).

        Raises
        ------
        AttributeError
            If no loader is given (as LSST).
        RuntimeError
            If the exposure has no WCS.
        """
        if refObjLoader is None:
            raise AttributeError("extractStamps needs a reference object loader (refObjLoader)")
        if inputExposure.wcs is None:
            raise RuntimeError("the input exposure has no WCS: cannot place reference stars")
        width, height = self.config.stampSize
        bbox = inputExposure.bbox
        grow = max(width, height) - self.config.minPixelsWithinFrame
        visit = inputExposure.visit
        refs = refObjLoader.loadPixelBox(
            bbox.dilated(grow),
            inputExposure.wcs,
            filterName=self.config.refObjLoader.filterName,
            epoch=julian_epoch(visit.mjd) if visit is not None else None,
            region_name=getattr(self, "_region_name", f"the exposure box {bbox}"),
        )
        flux_col = f"{self.config.refObjLoader.filterName}_flux"
        mag_col = f"{self.config.refObjLoader.filterName}_mag"
        flux_limit = float(mag_to_njy(self.config.magLimit))
        bright = refs[np.asarray(refs[flux_col]) > flux_limit]
        star_ims: list[Exposure] = []
        centers: list[tuple[float, float]] = []
        mags: list[float] = []
        ids: list[int] = []
        for row in bright:
            cpix = (float(row["centroid_x"]), float(row["centroid_y"]))
            nearest = (int(math.floor(cpix[0] + 0.5)), int(math.floor(cpix[1] + 0.5)))
            box = Box(nearest[0] - width // 2, nearest[1] - height // 2, width, height)
            stamp = _cutout(inputExposure, box)
            if stamp is None:
                continue
            if self.config.doRemoveDetected:
                self._remove_other_detections(stamp, nearest, int(row["id"]))
            star_ims.append(stamp)
            centers.append(cpix)
            mags.append(float(row[mag_col]))
            ids.append(int(row["id"]))
        return Struct(
            starIms=star_ims, pixCenters=centers, GMags=mags, gaiaIds=np.asarray(ids, np.int64)
        )

    def _remove_other_detections(
        self, stamp: Exposure, center: tuple[int, int], gaia_id: int
    ) -> None:
        """Mark BAD every DETECTED footprint of the stamp but the one through its centre."""
        mask = stamp.mask
        if "DETECTED" not in mask.planes:
            return
        detected = mask.is_set("DETECTED")
        if not detected.any():
            self.log.warning(
                "Failed to uniquely identify central DETECTION footprint for star %d "
                "(no footprint)",
                gaia_id,
            )
            return
        central = connected_region(detected, center[0] - stamp.xy0[0], center[1] - stamp.xy0[1])
        if central is None:
            self.log.warning(
                "Failed to uniquely identify central DETECTION footprint for star %d "
                "(0 footprints contain it)",
                gaia_id,
            )
        else:
            detected &= ~central
        mask.set("BAD", detected)

    def warpStamps(self, stamps: list[Exposure], pixCenters: list[tuple[float, float]]) -> Struct:
        """Warp every stamp onto the common model grid, star on the centre pixel.

        Returns
        -------
        result : `Struct`
            ``warpedStars`` (list of `~imaging.exposure.Exposure`), ``warpTransforms`` (list
            of `~imaging.warping.StampTransform`), ``xy0s`` (warped-frame corners before the
            quarter turns) and ``nb90Rots`` (`int`).
        """
        model_w, model_h = self.modelStampSize
        width, height = self.config.stampSize
        buffer = ((model_w - width) / 2.0, (model_h - height) / 2.0)
        detector = stamps[0].detector if stamps else None
        nb90 = nb90_rotations(detector.orientation if detector is not None else 0.0)
        wcs = stamps[0].wcs if stamps else None
        pix_to_tan = (
            StampTransform.from_wcs(wcs) if self.config.doApplyTransform else StampTransform()
        )
        warped, transforms, xy0s = [], [], []
        for stamp, cpix in zip(stamps, pixCenters, strict=True):
            bl_x, bl_y = pix_to_tan.apply(stamp.xy0[0], stamp.xy0[1])
            new_bl = (
                int(math.floor(float(bl_x) - buffer[0] + 0.5)),
                int(math.floor(float(bl_y) - buffer[1] + 0.5)),
            )
            cx, cy = pix_to_tan.apply(cpix[0], cpix[1])
            shift = (
                self.modelCenter[0] + new_bl[0] - float(cx),
                self.modelCenter[1] + new_bl[1] - float(cy),
            )
            transform = pix_to_tan.then_shift(*shift)
            result = warp_masked_image(
                stamp.image,
                stamp.mask,
                None,
                transform=transform,
                source_xy0=stamp.xy0,
                dest_box=Box(new_bl[0], new_bl[1], model_w, model_h),
                kernel=self.config.warpingKernelName,
                quarter_turns=nb90,
            )
            if self.log.isEnabledFor(logging.DEBUG) and not np.isfinite(result.image).any():
                self.log.debug("warp of the stamp at %s produced no good pixel", stamp.xy0)
            warped.append(Exposure(result.image, mask=result.mask))
            transforms.append(transform)
            xy0s.append(new_bl)
        return Struct(warpedStars=warped, warpTransforms=transforms, xy0s=xy0s, nb90Rots=nb90)

    # -- pictures -------------------------------------------------------------------------------

    def _write_mosaic(self, stamps: BrightStarStamps) -> None:
        from imaging.stamp_mosaic import write_stamp_mosaic

        folder = self._debug_dir or os.path.join(os.getcwd(), "debug")
        path = os.path.join(folder, f"{self._debug_tag}_brightStarStamps.png")
        write_stamp_mosaic(stamps, path, title=f"{self._debug_tag}: bright-star stamps")
        self.log.info("debug picture %s", path)


class _Deferred:
    """A deferred-load handle on one refcat shard (read when the loader needs it)."""

    def __init__(self, butlerQC: Any, ref: Any) -> None:
        self._butlerQC = butlerQC
        self._ref = ref

    def get(self) -> Any:
        return self._butlerQC.get(self._ref)


def _has_valid_pixel(stamp: Exposure) -> bool:
    """Whether a warped stamp has a pixel with data: finite and not ``NO_DATA``."""
    valid = np.isfinite(stamp.image)
    if "NO_DATA" in stamp.mask.planes:
        valid &= ~stamp.mask.is_set("NO_DATA")
    return bool(valid.any())


def _cutout(exposure: Exposure, box: Box) -> Exposure | None:
    """Return a copy of the part of ``exposure`` in ``box`` (off-edge: NaN and ``NO_DATA``).

    The detector's header cards stay behind: a stamp needs none of them.
    """
    inside = exposure.bbox.intersection(box)
    if inside.is_empty():
        return None
    if inside == box:
        rows, cols = box.slices(exposure.xy0)
        image = exposure.image[rows, cols].copy()
        mask = exposure.mask[rows, cols].copy()
        variance = exposure.variance[rows, cols].copy()
    else:
        image = np.full(box.shape, np.nan, dtype=np.float32)
        mask = Mask(box.shape, exposure.mask.planes)
        mask.array[:] = np.uint32(mask.get_plane_bitmask("NO_DATA"))
        variance = np.full(box.shape, np.inf, dtype=np.float32)
        dst = inside.slices(box.origin)
        src = inside.slices(exposure.xy0)
        image[dst] = exposure.image[src]
        mask.array[dst] = exposure.mask.array[src]
        variance[dst] = exposure.variance[src]
    return Exposure(
        image,
        mask=mask,
        variance=variance,
        wcs=exposure.wcs,
        psf=exposure.psf,
        detector=exposure.detector,
        visit=exposure.visit,
        zero_point=exposure.zero_point,
        xy0=box.origin,
    )
