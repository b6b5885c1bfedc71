"""MeasureExtendedPsfTask: one extended PSF per band from every bright-star stamp of the band.

A gather in the quantum graph (science.md §4.1): the quantum's dimensions are (band,
instrument) and its input is every ``brightStarStamps`` (visit, detector) of the band, as a
deferred, multiple input: nothing is read up front; the stacker reads each sub-box of each
input through the formatter's ``bbox``/``indices`` partial reads
(`imaging.stamp_stacking`), so memory stays bounded however many stamps go in.

With ``detectors_focal_plane_regions`` empty, everything is stacked into the default model.
Otherwise the stamps of each region's detectors are stacked into that region's model; a
detector with stamps but no region is ignored with one warning (per detector), a region
without stamps is skipped with a warning. No stamps at all: `~pipeline.NoWorkFound` (no
output; the quantum counts as done).

``normalization`` chooses the era (`imaging.extended_psf_model`): ``ANNULUS`` stacks the
stamps as ProcessBrightStarsTask normalized them; ``PSF_AMPLITUDE`` fits each stamp's
amplitude and background pedestal, against the model and then the stack, ``fit_iterations``
times. The output's metadata records which one made the model (``NORMALIZATION``, and for
``PSF_AMPLITUDE`` ``FIT_ITER``, ``BKG_ORDER`` and ``FIT_START``, the first fit's model: the
stamps carry no PSF kernel, so it is the annulus-normalized stack, ``ANNULUS_STACK``).
``alignment`` chooses between the detectors' quarter turns and a radial alignment of every
stamp (`imaging.radial_alignment`); ``ALIGNMENT`` records it, and SubtractBrightStarsTask
follows it.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from imaging.extended_psf import ExtendedPsf
from imaging.extended_psf_model import measure_model
from imaging.geometry import Box
from imaging.stamp_amplitude_fit import AmplitudeFitConfig
from imaging.stamp_stacking import (
    DEFAULT_MAX_CUBE_BYTES,
    STACKING_STATISTICS,
    NoStampsError,
    StackingConfig,
)
from imaging.stamps import DEFAULT_BAD_MASK_PLANES, BrightStarStamps
from pipeline import (
    ChoiceField,
    Config,
    ConfigField,
    DictField,
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

__all__ = [
    "MeasureExtendedPsfConfig",
    "MeasureExtendedPsfConnections",
    "MeasureExtendedPsfTask",
    "StackBrightStarsConfig",
]


class MeasureExtendedPsfConnections(PipelineTaskConnections, dimensions=("band", "instrument")):
    """Connections of `MeasureExtendedPsfTask` (LSST's names)."""

    input_brightStarStamps = Input(
        "brightStarStamps",
        "BrightStarStamps",
        ("instrument", "visit", "detector"),
        multiple=True,
        deferLoad=True,
        doc="Normalized bright-star stamps of every detector and visit of the band",
    )
    extended_psf = Output(
        "extended_psf", "ExtendedPsf", ("band", "instrument"), doc="Extended PSF models"
    )


class StackBrightStarsConfig(Config):
    """How stamps are stacked (LSST's ``StackBrightStarsConfig`` plus a memory budget)."""

    subregion_size = ListField(int, "Size of the stacked sub-boxes (pixels)", default=[100, 100])
    stacking_statistic = ChoiceField(
        str,
        "Pixel statistic along the stamps",
        default="MEANCLIP",
        allowed={name: name for name in STACKING_STATISTICS},
    )
    num_sigma_clip = Field(float, "Sigma of MEANCLIP", default=4.0)
    num_iter = Field(int, "Iterations of MEANCLIP", default=3)
    bad_mask_planes = ListField(
        str, "Mask planes whose pixels are not stacked", default=list(DEFAULT_BAD_MASK_PLANES)
    )
    do_mag_cut = Field(bool, "Stack only stars brighter than mag_limit", default=False)
    mag_limit = Field(float, "Magnitude limit of the cut", default=18.0)
    max_cube_bytes = Field(
        int,
        "Memory budget of one stack cube (stamps x strip pixels x 4 bytes); strips of the "
        "sub-boxes are read so that it holds (the default keeps a 100² box of up to 10,000 "
        "stamps in one strip: each stored chunk decompressed once)",
        default=DEFAULT_MAX_CUBE_BYTES,
    )
    num_threads = Field(
        int,
        "Threads reading and stacking each strip (one cube at a time whatever the threads; "
        "the result is bit for bit the serial one). The gather is a barrier of the pipeline: "
        "while it runs the other worker's core is idle. 480 stamps through the butler, 1 vs "
        "2 threads (`python -m bench extended_psf`, median of 3 interleaved rounds, load 1 on "
        "2 cores): zarr (shards read directly, the GIL released) 1.97 vs 1.64 s wall, FITS "
        "(astropy's reads hold the GIL) 3.12 vs 3.92 s: 1 by default, as the default "
        "repository stores stamps as FITS; 2 for zarr stamps",
        default=1,
    )

    def to_stacking(self) -> StackingConfig:
        """Return the `~imaging.stamp_stacking.StackingConfig` of these fields."""
        return StackingConfig(
            subregion_size=tuple(self.subregion_size),
            statistic=self.stacking_statistic,
            num_sigma_clip=self.num_sigma_clip,
            num_iter=self.num_iter,
            bad_mask_planes=tuple(self.bad_mask_planes),
            do_mag_cut=self.do_mag_cut,
            mag_limit=self.mag_limit,
            max_cube_bytes=self.max_cube_bytes,
            num_threads=self.num_threads,
        )


class MeasureExtendedPsfConfig(
    PipelineTaskConfig, pipelineConnections=MeasureExtendedPsfConnections
):
    """Configuration of `MeasureExtendedPsfTask`."""

    stack_bright_stars = ConfigField(dtype=StackBrightStarsConfig, doc="Stacking")
    detectors_focal_plane_regions = DictField(
        int,
        str,
        "Detector id -> focal-plane region name; empty: one model for the whole focal plane",
        default={},
    )
    normalization = ChoiceField(
        str,
        "How stamps are normalized before stacking",
        default="ANNULUS",
        allowed={
            "ANNULUS": "LSST 2022: the annular flux ProcessBrightStarsTask measured",
            "PSF_AMPLITUDE": "LSST 2026: a fitted amplitude and polynomial pedestal per stamp, "
            "against the model, then the stack, for fit_iterations",
        },
    )
    alignment = ChoiceField(
        str,
        "How stamps are oriented before stacking",
        default="QUARTER_TURNS",
        allowed={
            "QUARTER_TURNS": "LSST 2022: as stored, turned by their detector's quarter turns",
            "RADIAL": "LSST 2026: rotated by the star's focal-plane angle (radial along +x), "
            "from the detector geometry in the stamps' metadata and the stored transform",
        },
    )
    fit_iterations = Field(int, "PSF_AMPLITUDE: fit-and-stack iterations", default=5)
    fit_background = Field(
        bool,
        "PSF_AMPLITUDE: fit a polynomial pedestal with each amplitude. Without a PSF model the "
        "first fit is against the annulus stack, whose zero level the iterations keep: a "
        "pedestal then trades with a faint halo; sky-subtracted stamps need none",
        default=True,
    )
    background_order = Field(int, "PSF_AMPLITUDE: order of the pedestal polynomial", default=2)
    pedestal_radius = Field(
        float,
        "PSF_AMPLITUDE: usable pixels at least this far from the star constrain the "
        "pedestal; 0: the stamps' annulus outer radius",
        default=0.0,
    )

    def validate(self) -> None:
        """Check the stacking fields.

        Raises
        ------
        ValueError
            On values that cannot work.
        """
        super().validate()
        self.stack_bright_stars.to_stacking()  # raises ValueError with the field's problem
        if self.fit_iterations < 1:
            raise ValueError(f"fit_iterations must be >= 1, got {self.fit_iterations}")
        if self.background_order < 0 or self.pedestal_radius < 0:
            raise ValueError(
                f"background_order and pedestal_radius must be >= 0, got "
                f"{self.background_order}, {self.pedestal_radius}"
            )

    def to_amplitude_fit(self) -> AmplitudeFitConfig:
        """Return the per-stamp fit of ``PSF_AMPLITUDE`` (radius 0: the annulus outer one)."""
        return AmplitudeFitConfig(
            background_order=self.background_order if self.fit_background else None,
            pedestal_radius=self.pedestal_radius or None,
            bad_mask_planes=tuple(self.stack_bright_stars.bad_mask_planes),
        )


class ButlerStampSource:
    """One ``brightStarStamps`` input read in parts through the quantum's butler.

    The input is opened once (``butlerQC.open_reader``: the formatter parses the stamps
    table and metadata then) and every sub-box is a partial read of that reader; a quantum
    context without ``open_reader`` is read with ``get(ref, parameters=...)`` each time.
    `close` releases the reader.
    """

    def __init__(self, butlerQC: Any, ref: Any) -> None:
        self._butlerQC = butlerQC
        self.ref = ref
        self._reader: Any = None
        self._opening = threading.Lock()  # stacking threads may ask at once

    def read(
        self,
        *,
        bbox: Box | None = None,
        indices: Sequence[int] | None = None,
        planes: Sequence[str] | None = None,
    ) -> BrightStarStamps:
        """Read ``bbox`` of the stamps ``indices``, ``planes`` (a formatter partial read)."""
        parameters: dict[str, Any] = {}
        if bbox is not None:
            parameters["bbox"] = bbox
        if indices is not None:
            parameters["indices"] = list(indices)
        if planes is not None:
            parameters["planes"] = list(planes)
        if not parameters or not hasattr(self._butlerQC, "open_reader"):
            return self._butlerQC.get(self.ref, parameters=parameters or None)
        with self._opening:
            if self._reader is None:
                self._reader = self._butlerQC.open_reader(self.ref)
        return self._reader.read(parameters)

    def close(self) -> None:
        """Close the input's reader, if one was opened."""
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.close()


class MeasureExtendedPsfTask(PipelineTask):
    """Stack the bright-star stamps of a band into extended PSF models.

    Parameters
    ----------
    initInputs : `dict`, optional
        Unused (no init-inputs).
    **kwargs
        Passed to `PipelineTask`.
    """

    ConfigClass = MeasureExtendedPsfConfig
    _DefaultName = "measureExtendedPsf"
    canMultiprocess = True

    def __init__(self, initInputs: Any = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.regions_by_detector = {
            int(d): str(r).upper() for d, r in self.config.detectors_focal_plane_regions.items()
        }

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:
        """Wrap every stamps input in a partial-read source, run, write the model."""
        refs = list(inputRefs.input_brightStarStamps or [])
        sources = [ButlerStampSource(butlerQC, ref) for ref in refs]
        detectors = [int(ref.data_id["detector"]) for ref in refs]
        try:
            result = self.run(sources, detectors)
        finally:
            for source in sources:
                source.close()
        butlerQC.put(result, outputRefs)

    def select_detector_stamps(
        self, sources: Sequence[Any], detectors: Sequence[int]
    ) -> dict[str | None, list[tuple[Any, int]]]:
        """Group sources by region (``None``: the default model); warn once per lost detector."""
        groups: dict[str | None, list[tuple[Any, int]]] = defaultdict(list)
        if not self.regions_by_detector:
            groups[None] = list(zip(sources, detectors, strict=True))
            return groups
        warned: set[int] = set()
        for source, detector in zip(sources, detectors, strict=True):
            region = self.regions_by_detector.get(int(detector))
            if region is None:
                if detector not in warned:
                    warned.add(detector)
                    self.log.warning(
                        "Bright stars were found on detector %d, but it is not included in "
                        "any focal-plane region: its stamps are not stacked.",
                        detector,
                    )
                continue
            groups[region].append((source, detector))
        return groups

    def run(self, sources: Sequence[Any], detectors: Sequence[int]) -> Struct:
        """Stack the stamps of each region into its model.

        Parameters
        ----------
        sources : sequence of `~imaging.stamp_stacking.StampSource`
            One per ``brightStarStamps`` input.
        detectors : sequence of `int`
            The detector of each source.

        Returns
        -------
        result : `Struct`
            ``extended_psf`` (`~imaging.extended_psf.ExtendedPsf`).

        Raises
        ------
        NoWorkFound
            If no region has a stamp to stack.
        """
        config = self.config
        stacking = config.stack_bright_stars.to_stacking()
        metadata = {
            "NORMALIZATION": config.normalization,
            "ALIGNMENT": config.alignment,
            "STATISTIC": stacking.statistic,
            "NSIGCLIP": float(stacking.num_sigma_clip),
            "NITER": int(stacking.num_iter),
        }
        if stacking.do_mag_cut:
            metadata["MAG_LIMIT"] = float(stacking.mag_limit)
        if config.normalization == "PSF_AMPLITUDE":
            metadata["FIT_ITER"] = int(config.fit_iterations)
            order = int(config.background_order) if config.fit_background else -1
            metadata["BKG_ORDER"] = order  # -1: no pedestal
        groups = self.select_detector_stamps(sources, detectors)
        region_names = [None] if not self.regions_by_detector else sorted(
            set(self.regions_by_detector.values())
        )
        extended_psf = ExtendedPsf()
        total = 0
        for region in region_names:
            members = groups.get(region, [])
            region_detectors = sorted(
                {d for d, r in self.regions_by_detector.items() if r == region}
            )
            label = "the focal plane" if region is None else f"region {region}"
            if not members:
                if region is not None:
                    self.log.warning("No stamps for %s: its model is skipped.", label)
                continue
            try:
                model, report = measure_model(
                    [s for s, _ in members],
                    stacking,
                    normalization=config.normalization,
                    detector_list=region_detectors,
                    amplitude_fit=config.to_amplitude_fit(),
                    fit_iterations=config.fit_iterations,
                    alignment=config.alignment,
                )
            except NoStampsError as err:
                self.log.warning("Nothing to stack for %s: %s", label, err)
                continue
            self.log.info(
                "%s: stacked %d stamps from %d inputs (%s, %s)",
                label,
                report.n_stamps,
                len(members),
                config.normalization,
                stacking.statistic,
            )
            total += report.n_stamps
            if report.fit_start is not None and config.normalization == "PSF_AMPLITUDE":
                # the stamps carry no PSF kernel: the first fit is against the annulus stack
                metadata["FIT_START"] = report.fit_start
            if region is None:
                extended_psf.set_default(model)
            else:
                extended_psf.add_regional_extended_psf(model, region, region_detectors)
        self.metadata["stampCount"] = total
        extended_psf.metadata.update(metadata)
        if not extended_psf.regions:
            raise NoWorkFound("no bright-star stamp to stack for this band")
        return Struct(extended_psf=extended_psf)


