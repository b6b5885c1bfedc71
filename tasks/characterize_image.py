"""CharacterizeImageTask: background, detection, cosmic rays, measurement and the PSF model.

The algorithm, as LSST's (see ``shared/science.md`` §1.3):

1. Install a simple Gaussian PSF if the exposure has none and the PSF is not measured.
2. Fit and subtract the background (replacing any given background list).
3. ``psfIterations`` times (once without PSF measurement), `detectMeasureAndEstimatePsf`:
   install a Gaussian with the current sigma, find cosmic rays keeping their pixels,
   detect (re-estimating the background), measure, measure the PSF. After each
   iteration the PSF sigma at its average position is checked: NaN is an error.
4. Interpolate over cosmic rays with the final PSF; measure again; aperture corrections.

`run` is pure with respect to I/O: the exposure is modified in place and returned
with the catalog and background in a `Struct`; `runQuantum` (the default) does the
butler reads and writes. Debug pictures (the seed's debug stages) go to PNG files.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from astropy.table import Table

from imaging._errors import LengthError
from imaging.aperture_correction import ApCorrConfig, apply_ap_corr, measure_ap_corr
from imaging.background import BackgroundList
from pipeline import (
    ConfigurableField,
    Field,
    InitOutput,
    Input,
    ListField,
    Output,
    PipelineTask,
    PipelineTaskConfig,
    PipelineTaskConnections,
    PrerequisiteInput,
    RangeField,
    Struct,
)

from ._camera import CAMERA_CONNECTION_DOC, registered_detector
from ._pictures import default_debug_dir, write_debug_picture, write_psf_picture
from .detection import SourceDetectionTask
from .install_psf import InstallGaussianPsfTask, psf_average_position
from .measure_psf import MeasurePsfTask
from .repair import RepairTask
from .single_frame_measurement import SingleFrameMeasurementTask
from .subtract_background import SubtractBackgroundTask

__all__ = ["CharacterizeImageConfig", "CharacterizeImageConnections", "CharacterizeImageTask"]

_DIMENSIONS = ("instrument", "visit", "detector")


class CharacterizeImageConnections(PipelineTaskConnections, dimensions=_DIMENSIONS):
    """Connections of `CharacterizeImageTask` (LSST's dataset type names)."""

    exposure = Input(
        "postISRCCD", "Exposure", _DIMENSIONS, doc="Input exposure, defects interpolated"
    )
    characterized = Output("icExp", "ExposureF", _DIMENSIONS, doc="Characterized exposure")
    sourceCat = Output("icSrc", "SourceCatalog", _DIMENSIONS, doc="Bright sources used for the PSF")
    backgroundModel = Output(
        "icExpBackground", "Background", _DIMENSIONS, doc="Subtracted background"
    )
    outputSchema = InitOutput(
        "icSrc_schema", "SourceCatalog", doc="Schema of icSrc (an empty catalog)"
    )
    camera = PrerequisiteInput("camera", "Camera", ("instrument",), doc=CAMERA_CONNECTION_DOC)


class CharacterizeImageConfig(PipelineTaskConfig, pipelineConnections=CharacterizeImageConnections):
    """Configuration of `CharacterizeImageTask` (defaults as LSST's after setDefaults)."""

    doMeasurePsf = Field(bool, "Measure the PSF (else keep or install a simple one)", default=True)
    psfIterations = RangeField(int, "Detect-measure-PSF iterations", default=2, min=1)
    useSimplePsf = Field(
        bool, "Install a Gaussian with the current sigma at each iteration", default=True
    )
    requireCrForPsf = Field(
        bool, "A CR failure inside the PSF loop is an error (else a warning)", default=True
    )
    doApCorr = Field(bool, "Measure and apply aperture corrections", default=True)
    background = ConfigurableField(
        target=SubtractBackgroundTask, doc="Initial background subtraction"
    )
    detection = ConfigurableField(target=SourceDetectionTask, doc="Source detection")
    repair = ConfigurableField(target=RepairTask, doc="Cosmic-ray repair")
    measurement = ConfigurableField(target=SingleFrameMeasurementTask, doc="Source measurement")
    measurePsf = ConfigurableField(target=MeasurePsfTask, doc="PSF measurement")
    installSimplePsf = ConfigurableField(
        target=InstallGaussianPsfTask, doc="Simple PSF installation"
    )
    apCorrRefFlux = Field(
        str, "Reference flux of aperture corrections", default="base_CircularApertureFlux_12_0"
    )
    apCorrOrder = RangeField(int, "Order of the aperture-correction fields", default=2, min=0)
    doSplitBlendedPeaks = Field(
        bool,
        "Measure every significant peak of a blended footprint as its own source (a minimal "
        "deblender: peaks above the include threshold and 2 PSF sigmas from a brighter one)",
        default=True,
    )
    doRemoveCosmicRaySources = Field(
        bool,
        "Drop detections that fall below the inclusion level once their CRs are interpolated",
        default=True,
    )
    debugStages = ListField(
        str,
        "Debug pictures to write: repair_iter, background_iter, measure_iter, psf, repair, "
        "measure, or all",
        default=[],
    )
    debugDir = Field(str, "Folder of debug pictures (default: <datastore>/<run>/debug)", default="")

    def setDefaults(self) -> None:
        """Set LSST's CharacterizeImageTask overrides of the subtask defaults."""
        super().setDefaults()
        self.detection.thresholdValue = 5.0
        self.detection.includeThresholdMultiplier = 10.0

    def validate(self) -> None:
        """Check consistency.

        Raises
        ------
        RuntimeError
            If aperture corrections are asked for without PSF measurement (LSST's intent).
        """
        super().validate()
        if self.doApCorr and not self.doMeasurePsf:
            raise RuntimeError(
                "Must measure PSF to measure aperture correction, because flags determined "
                "by PSF measurement are used to identify sources used to measure aperture "
                "correction"
            )


class CharacterizeImageTask(PipelineTask):
    """Measure bright sources and use them to estimate the background and PSF of an exposure.

    Parameters
    ----------
    butler : `None`
        Compatibility parameter; must be `None`.
    refObjLoader : `object`, optional
        Unused (the object-size star selector needs no reference catalog).
    schema : `CatalogSchema`, optional
        Initial schema of icSrc (unused: the schema is that of the measurement).
    **kwargs
        Passed to `PipelineTask`.
    """

    ConfigClass = CharacterizeImageConfig
    _DefaultName = "characterizeImage"
    canMultiprocess = True
    debugStages = (
        "frame",
        "repair_iter",
        "background_iter",
        "measure_iter",
        "psf",
        "repair",
        "measure",
    )

    def __init__(
        self, butler: Any = None, refObjLoader: Any = None, schema: Any = None, **kwargs: Any
    ) -> None:
        if butler is not None:
            raise TypeError("butler must be None (compatibility parameter)")
        super().__init__(**kwargs)
        for name in (
            "background",
            "installSimplePsf",
            "repair",
            "detection",
            "measurement",
            "measurePsf",
        ):
            self.makeSubtask(name)
        self.outputSchema = _empty_catalog()
        stages = set(self.config.debugStages)
        for stage in self.debugStages:
            if "all" in stages or stage in stages:
                setattr(self.debugInfo, stage, True)
        self._debug_dir = self.config.debugDir
        self._debug_tag = "exposure"

    # -- butler I/O -----------------------------------------------------------------------

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:
        """Read the exposure, characterize it, write icExp, icSrc and icExpBackground."""
        inputs = butlerQC.get(inputRefs)
        data_id = butlerQC.dataId
        exp_id = int(data_id["visit"]) * 1000 + int(data_id["detector"])
        self._debug_tag = f"{data_id['instrument']}_{data_id['visit']}_{data_id['detector']}"
        if not self._debug_dir and self.config.debugStages:
            self._debug_dir = default_debug_dir(butlerQC, outputRefs)
        exposure = inputs["exposure"]
        if "camera" in inputs:  # the registered geometry, not the raw's header keywords
            exposure.detector = registered_detector(
                inputs["camera"], exposure.detector, f"postISRCCD {dict(data_id.required)}"
            )
        result = self.run(exposure, exposureIdInfo=exp_id)
        butlerQC.put(result, outputRefs)

    # -- algorithm ------------------------------------------------------------------------

    def run(
        self, exposure: Any, exposureIdInfo: Any = None, background: BackgroundList | None = None
    ) -> Struct:
        """Characterize a science image.

        Parameters
        ----------
        exposure : `imaging.exposure.Exposure`
            Exposure to characterize; modified in place.
        exposureIdInfo : `int`, optional
            Exposure ID (source IDs are ``id * 2**32 + n``; 0 when not given, so not unique).
        background : `BackgroundList`, optional
            Ignored and replaced, as in LSST: the initial background is re-fitted.

        Returns
        -------
        result : `Struct`
            ``exposure``, ``sourceCat``, ``background``, ``psfCellSet``, ``characterized``
            (= exposure) and ``backgroundModel`` (= background).

        Raises
        ------
        RuntimeError
            "PSF sigma is NaN, cannot continue PSF determination." when the PSF fails.
        """
        exp_id = int(exposureIdInfo or 0)
        if not self.config.doMeasurePsf and not exposure.has_psf():
            self.installSimplePsf.run(exposure)
        background = self.background.run(exposure).background
        self._display("background_iter", exposure)
        iterations = self.config.psfIterations if self.config.doMeasurePsf else 1
        result = None
        # the CR finder's condition-2 pixels (a full-image pass) do not change with the
        # smooth background subtracted between its calls: found once, passed on
        cr_candidates = None
        for iteration in range(iterations):
            with self.timer(f"psfIteration{iteration}"):
                result = self.detectMeasureAndEstimatePsf(
                    exposure, exp_id, background, crCandidates=cr_candidates
                )
            cr_candidates = result.crCandidates
            position = psf_average_position(exposure)
            sigma = float(exposure.psf.sigma(position))
            size = exposure.psf.kernel_image(position).shape
            # median of the background image on every 8th pixel: the logged summary does
            # not need the full 4k^2 evaluation (0.1-0.3 s per iteration)
            median_bg = float(
                np.median(background.evaluate(exposure.image.shape, exposure.xy0, step=8))
            )
            self.log.info(
                "iteration %d: PSF sigma=%.3f px, dimensions=%s, median background=%.2f",
                iteration + 1,
                sigma,
                size,
                median_bg,
            )
            if math.isnan(sigma):
                raise RuntimeError("PSF sigma is NaN, cannot continue PSF determination.")
        assert result is not None
        self._display("psf", exposure, result.sourceCat)
        # judged against the measured sources' PSF model: a CR on a bright star is found
        n_cr_pixels = self.repair.run(
            exposure, keepCRs=None, crCandidates=cr_candidates, sources=result.sourceCat
        ).nCrPixels
        self._display("repair", exposure, result.sourceCat)
        detections, flags = result.detections, result.sourceCat
        if self.config.doRemoveCosmicRaySources:
            level = detections.level * self.config.detection.includeThresholdMultiplier
            keep = _not_cosmic_rays(detections, exposure, level)
            detections = Struct(
                footprints=[f for f, k in zip(detections.footprints, keep, strict=True) if k],
                labels=detections.labels,
                sigma=detections.sigma,
                level=detections.level,
                saturatedCentres=getattr(detections, "saturatedCentres", None),
            )
            flags = flags[keep]
            self.metadata["numCosmicRaySourcesRemoved"] = int(np.count_nonzero(~keep))
        source_cat = self._measure(exposure, detections, exp_id, flags_from=flags)
        if self.config.doApCorr:
            with self.timer("apCorr"):
                height, width = exposure.image.shape
                x0, y0 = exposure.xy0
                ap_corr = measure_ap_corr(
                    source_cat,
                    (x0, y0, x0 + width - 1, y0 + height - 1),
                    config=ApCorrConfig(
                        ref_flux=self.config.apCorrRefFlux, order=self.config.apCorrOrder
                    ),
                )
                apply_ap_corr(source_cat, ap_corr)
                exposure.metadata["APCORR"] = True
            exposure.ap_corr_map = ap_corr
        self._display("measure", exposure, source_cat)
        self._record(exposure, source_cat, n_cr_pixels)
        return Struct(
            exposure=exposure,
            sourceCat=source_cat,
            background=background,
            psfCellSet=result.psfCellSet,
            characterized=exposure,
            backgroundModel=background,
        )

    def detectMeasureAndEstimatePsf(
        self,
        exposure: Any,
        exposureIdInfo: Any,
        background: BackgroundList,
        crCandidates: Any = None,
    ) -> Struct:
        """Perform one iteration of detect, measure, and estimate PSF.

        ``crCandidates`` are those of an earlier iteration's CR repair (see
        `RepairTask.run`), or `None`.

        Returns
        -------
        result : `Struct`
            ``exposure``, ``sourceCat``, ``background``, ``psfCellSet``, ``detections``
            and ``crCandidates`` (the CR repair's, or those given).

        Raises
        ------
        imaging._errors.LengthError
            If there are too many CR pixels (and ``requireCrForPsf``).
        """
        exp_id = int(exposureIdInfo or 0)
        if not exposure.has_psf() or (self.config.doMeasurePsf and self.config.useSimplePsf):
            self.installSimplePsf.run(exposure)
        cr_candidates = crCandidates
        try:
            cr_candidates = self.repair.run(
                exposure, keepCRs=True, crCandidates=crCandidates
            ).crCandidates
        except LengthError:
            if self.config.requireCrForPsf:
                raise
            self.log.warning("Too many CR pixels inside the PSF loop; continuing without CR repair")
        self._display("repair_iter", exposure)
        if background is None:
            background = BackgroundList()
        detections = self.detection.run(exposure)
        if self.config.doSplitBlendedPeaks:
            level = detections.level * self.config.detection.includeThresholdMultiplier
            detections.footprints = split_blended_peaks(
                detections.footprints, min_value=level, min_separation=2.0 * detections.sigma
            )
        if detections.background is not None:
            background.append(detections.background)
        source_cat = self._measure(exposure, detections, exp_id)
        cell_set = None
        if self.config.doMeasurePsf:
            cell_set = self.measurePsf.run(exposure, source_cat, expId=exp_id).cellSet
        self._display("measure_iter", exposure, source_cat)
        return Struct(
            exposure=exposure,
            sourceCat=source_cat,
            background=background,
            psfCellSet=cell_set,
            detections=detections,
            crCandidates=cr_candidates,
        )

    def _measure(
        self, exposure: Any, detections: Struct, exp_id: int, flags_from: Table | None = None
    ) -> Table:
        table = self.measurement.run(
            exposure,
            detections.footprints,
            detections.labels,
            id_offset=exp_id << 32,
            saturatedCentres=getattr(detections, "saturatedCentres", None),
        ).sourceCat
        if flags_from is not None:
            for column in ("calib_psf_candidate", "calib_psf_used", "calib_psf_reserved"):
                table[column] = flags_from[column]
        return table

    def _record(self, exposure: Any, source_cat: Table, n_cr_pixels: int) -> None:
        position = psf_average_position(exposure)
        self.metadata["numSources"] = len(source_cat)
        self.metadata["numPsfStars"] = int(np.count_nonzero(source_cat["calib_psf_used"]))
        self.metadata["psfSigma"] = float(exposure.psf.sigma(position))
        self.metadata["psfFwhm"] = float(exposure.psf.fwhm(position))
        self.metadata["nCrPixels"] = int(n_cr_pixels)

    # -- debugging ------------------------------------------------------------------------------

    def display(self, itemName: str, exposure: Any, sourceCat: Table | None = None) -> None:
        """Write a debug picture of ``exposure`` (and sources) if stage ``itemName`` is on."""
        self._display(itemName, exposure, sourceCat)

    def _display(self, stage: str, exposure: Any, source_cat: Table | None = None) -> None:
        if not getattr(self.debugInfo, stage, False):
            return
        folder = self._debug_dir or os.path.join(os.getcwd(), "debug")
        path = os.path.join(folder, f"{self._debug_tag}_{stage}.png")
        title = f"{self._debug_tag}: {stage}"
        if stage == "psf" and exposure.psf is not None:  # the model itself, not the image again
            write_psf_picture(exposure, path, title=title)
            path_image = os.path.join(folder, f"{self._debug_tag}_{stage}_stars.png")
            write_debug_picture(exposure, path_image, sources=source_cat, title=title)
            self.log.info("debug pictures %s %s", path, path_image)
            return
        write_debug_picture(exposure, path, sources=source_cat, title=title)
        self.log.info("debug picture %s", path)


def split_blended_peaks(footprints: Any, *, min_value: float, min_separation: float) -> list[Any]:
    """Turn each significant peak of a multi-peak footprint into its own footprint.

    Parameters
    ----------
    footprints : sequence of `imaging.detection.Footprint`
        Detected footprints, peaks brightest first.
    min_value : `float`
        A secondary peak is kept if its smoothed value is at least this.
    min_separation : `float`
        ... and if it is at least this far (pixels) from every brighter kept peak.

    Returns
    -------
    footprints : `list`
        The footprints, with each kept secondary peak as a footprint sharing its parent's
        pixels and label (so measurement still hides other blends, not the siblings).
    """
    from imaging.detection import Footprint, Peaks

    result = []
    for fp in footprints:
        peaks = fp.peaks
        kept = [0]
        for k in range(1, len(peaks)):
            if peaks.value[k] < min_value:
                break
            dx = peaks.x[kept] - peaks.x[k]
            dy = peaks.y[kept] - peaks.y[k]
            if np.min(np.hypot(dx, dy)) >= min_separation:
                kept.append(k)
        if len(kept) == 1:
            result.append(fp)
            continue
        for k in kept:
            child = Peaks(
                x=peaks.x[k : k + 1],
                y=peaks.y[k : k + 1],
                value=peaks.value[k : k + 1],
                significance=peaks.significance[k : k + 1],
            )
            result.append(
                Footprint(
                    id=fp.id, slices=fp.slices, area=fp.area, peaks=child, negative=fp.negative
                )
            )
    return result


def _not_cosmic_rays(detections: Struct, exposure: Any, min_value: float) -> np.ndarray:
    """Boolean array over footprints: False for those that were only a cosmic ray.

    A footprint touching CR pixels is re-tested after the CRs were interpolated: the
    PSF-smoothed image around its brightest peak must still reach the inclusion level
    (``level x includeThresholdMultiplier``) that made it a detection.
    """
    from imaging._convolve import gaussian_kernel_1d, kernel_size_for_sigma

    cr_bit = np.uint32(exposure.mask.get_plane_bitmask("CR"))
    size = kernel_size_for_sigma(detections.sigma)
    kernel_1d = gaussian_kernel_1d(detections.sigma, size)
    kernel = np.outer(kernel_1d, kernel_1d)
    image = exposure.image
    height, width = image.shape
    keep = np.ones(len(detections.footprints), bool)
    for i, fp in enumerate(detections.footprints):
        if not np.any((exposure.mask.array[fp.slices] & cr_bit) & fp.pixel_mask(detections.labels)):
            continue
        x, y = int(fp.peaks.x[0]) - exposure.xy0[0], int(fp.peaks.y[0]) - exposure.xy0[1]
        best = -np.inf
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                cy, cx = y + dy, x + dx
                y0, y1, x0, x1 = (
                    cy - size // 2,
                    cy + size // 2 + 1,
                    cx - size // 2,
                    cx + size // 2 + 1,
                )
                if y0 < 0 or x0 < 0 or y1 > height or x1 > width:
                    continue
                best = max(best, float(np.sum(kernel * image[y0:y1, x0:x1])))
        if best < min_value:
            keep[i] = False
    return keep


def _empty_catalog() -> Table:
    """Return an empty icSrc-like catalog carrying the schema (``icSrc_schema``)."""
    from imaging.measurement import MeasurementConfig, measure_sources

    image = np.zeros((8, 8), np.float32)
    table = measure_sources(
        image,
        np.zeros((8, 8), np.uint32),
        np.ones((8, 8), np.float32),
        [],
        None,
        config=MeasurementConfig(),
    )
    return table[:0]
