"""RepairTask: find cosmic rays (and interpolate over them unless they are kept)."""

from __future__ import annotations

from typing import Any

import numpy as np

from imaging.cosmic_rays import CosmicRayConfig, find_cosmic_rays, source_model
from pipeline import (
    ChoiceField,
    Config,
    ConfigField,
    Field,
    ListField,
    RangeField,
    Struct,
    Task,
)

from ._convert import options_from_config

__all__ = ["FindCosmicRaysConfig", "RepairConfig", "RepairTask"]


class FindCosmicRaysConfig(Config):
    """Cosmic-ray finder options (LSST's ``FindCosmicRaysConfig`` names)."""

    nCrPixelMax = RangeField(int, "More CR pixels than this is an error", default=10000, min=0)
    minSigma = RangeField(
        float, "CR candidates exceed the background by this many sigma", default=6.0, min=0.0
    )
    min_DN = RangeField(float, "Minimum summed excess of one CR (counts)", default=150.0, min=0.0)
    cond3_fac = RangeField(float, "Noise allowance in the PSF-sharpness test", default=2.5, min=0.0)
    cond3_fac2 = RangeField(float, "Scale of the PSF neighbour/centre ratio", default=0.6, min=0.0)
    niteration = RangeField(int, "Passes that extend CRs to their neighbours", default=3, min=0)
    extendSigma = RangeField(
        float, "A neighbour joins a CR if its excess is above this many sigma", default=2.5, min=0.0
    )
    extendSigmaFlanked = RangeField(
        float,
        "'local' extension: the threshold of a neighbour with >= 4 CR pixels among its 8",
        default=1.9,
        min=0.0,
    )
    extendSigmaLone = RangeField(
        float,
        "'local' extension: the threshold of a neighbour with <= 1 CR pixel among its 8",
        default=3.0,
        min=0.0,
    )
    extendMode = ChoiceField(
        str,
        "How the extension passes judge a CR's neighbours",
        default="local",
        allowed={
            "local": "excess over the median of the ring of a 5x5 box",
            "pairs": "conditions 2 and 3 against neighbour-pair means",
        },
    )
    extendBox = RangeField(
        int,
        "'local' extension: odd box size whose ring's median is a neighbour's local background",
        default=5,
        min=3,
    )
    extendCond3Fac2 = RangeField(
        float,
        "'local' extension: cond3_fac2 of its sharpness test along directions without CR pixels",
        default=0.75,
        min=0.0,
    )
    flankedCount = RangeField(
        int,
        "'local' extension: CR pixels among its 8 neighbours from which extendSigmaFlanked applies",
        default=4,
        min=0,
    )
    loneCount = RangeField(
        int,
        "'local' extension: CR pixels among its 8 neighbours up to which extendSigmaLone applies",
        default=1,
        min=0,
    )
    ringMinSigma = RangeField(
        float,
        "'local' extension: the ring's median is the local background only above this many "
        "sigma (elsewhere the image median and the source model)",
        default=1.0,
        min=0.0,
    )
    saturatedGrow = RangeField(
        int,
        "Pixels within this many rows and columns of a saturated one are never CRs (0: off)",
        default=2,
        min=0,
    )
    trackBox = RangeField(
        int,
        "Track pass: odd box size of the fit of a track's line to the CR pixels around a "
        "pixel; 0 turns the pass off ('local' mode only)",
        default=5,
        min=0,
    )
    trackMinPixels = RangeField(
        int, "Track pass: CR pixels a box needs for a line", default=3, min=1
    )
    trackWidth = RangeField(
        float,
        "Track pass: largest minor/major variance ratio of the CR pixels of a line",
        default=0.15,
        min=0.0,
        max=1.0,
    )
    trackSigma = RangeField(
        float,
        "Track pass: a pixel whose charge estimate (its excess and the charge its line puts in "
        "it, averaged; sigma) exceeds this, less trackNeighbourSlope per CR pixel among its 8 "
        "neighbours, is a CR",
        default=2.15,
        min=0.0,
    )
    trackNeighbourSlope = RangeField(
        float, "Track pass: see trackSigma", default=0.2, min=0.0
    )
    trackChargeSpread = RangeField(
        float,
        "Track pass: error of the charge the line puts in a pixel, in units of that charge "
        "(at least 1 sigma)",
        default=1.0,
        min=0.0,
        inclusiveMin=False,
    )
    trackDiffusion = RangeField(
        float,
        "Track pass: sigma of the Gaussian spread of a track's charge across its line (pixels)",
        default=0.3,
        min=0.0,
        inclusiveMin=False,
    )
    trackMinSigma = RangeField(
        float, "Track pass: a neighbour joins only with an excess above this many sigma",
        default=1.0, min=0.0,
    )
    besideIntrp = Field(
        bool,
        "The first pass also tests pixels beside an INTRP one (a bad column ISR interpolated), "
        "a pair through it being its other pixel",
        default=True,
    )
    modelError = RangeField(
        float,
        "With a source catalog: the assumed error of the sources' PSF model, as a fraction "
        "of its value, added in quadrature to the noise",
        default=0.01,
        min=0.0,
    )
    modelMinPeak = RangeField(
        float,
        "With a source catalog: model the sources whose PSF peak exceeds this many times the "
        "sky noise (fainter ones change no test)",
        default=50.0,
        min=0.0,
    )
    modelFitFlux = Field(
        bool,
        "With a source catalog: fit each modelled source's flux with the exposure's PSF on "
        "its unsaturated, CR-free pixels (the catalog's may be measured with a Gaussian)",
        default=True,
    )
    keepCRs = Field(bool, "Keep CR pixel values (only flag them)", default=False)
    badPlanes = ListField(
        str, "Planes whose pixels are never CRs", default=["BAD", "INTRP", "SAT", "NO_DATA"]
    )

    def to_options(self) -> CosmicRayConfig:
        """Return the `imaging.cosmic_rays.CosmicRayConfig` these fields describe."""
        return options_from_config(
            CosmicRayConfig,
            self,
            {
                "n_cr_pixel_max": "nCrPixelMax",
                "min_sigma": "minSigma",
                "min_dn": "min_DN",
                "cond3_fac": "cond3_fac",
                "cond3_fac2": "cond3_fac2",
                "niteration": "niteration",
                "extend_sigma": "extendSigma",
                "flanked_sigma": "extendSigmaFlanked",
                "lone_sigma": "extendSigmaLone",
                "extend_mode": "extendMode",
                "bad_planes": "badPlanes",
                "model_error": "modelError",
                "extend_box": "extendBox",
                "extend_cond3_fac2": "extendCond3Fac2",
                "flanked_count": "flankedCount",
                "lone_count": "loneCount",
                "ring_min_sigma": "ringMinSigma",
                "saturated_grow": "saturatedGrow",
                "track_box": "trackBox",
                "track_min_pixels": "trackMinPixels",
                "track_width": "trackWidth",
                "track_sigma": "trackSigma",
                "track_neighbour_slope": "trackNeighbourSlope",
                "track_charge_spread": "trackChargeSpread",
                "track_diffusion": "trackDiffusion",
                "track_min_sigma": "trackMinSigma",
                "beside_intrp": "besideIntrp",
            },
        )


class RepairConfig(Config):
    """Configuration of `RepairTask`."""

    doCosmicRay = Field(bool, "Find cosmic rays", default=True)
    cosmicray = ConfigField(FindCosmicRaysConfig, "Cosmic-ray finder")


class RepairTask(Task):
    """Find cosmic rays with the PSF, set the CR plane and interpolate (setting INTRP)."""

    ConfigClass = RepairConfig
    _DefaultName = "repair"

    def run(
        self,
        exposure: Any,
        keepCRs: bool | None = None,
        crCandidates: Any = None,
        sources: Any = None,
    ) -> Struct:
        """Repair cosmic rays in ``exposure`` (in place).

        Parameters
        ----------
        exposure : `imaging.exposure.Exposure`
            Exposure with a PSF.
        keepCRs : `bool`, optional
            Keep CR pixel values; `None` uses ``config.cosmicray.keepCRs``.
        crCandidates : `tuple` of `numpy.ndarray`, optional
            The ``crCandidates`` of an earlier run on the same exposure, changed since
            by a smooth background at most (see `imaging.cosmic_rays.find_cosmic_rays`'s
            ``candidates``): the full-image condition-2 pass is skipped.
        sources : `astropy.table.Table`, optional
            Sources measured on ``exposure`` (``base_SdssCentroid_x/y``,
            ``base_PsfFlux_instFlux``, ``base_PsfFlux_flag``): the PSF model scaled to those
            brighter than ``modelMinPeak`` is the ``model`` the CR tests judge against (a CR
            on a bright star is then found; see `imaging.cosmic_rays.find_cosmic_rays`).

        Returns
        -------
        result : `Struct`
            ``nCrPixels``: number of CR pixels found; ``nCosmicRays``; ``crCandidates``
            (`None` when ``doCosmicRay`` is off).

        Raises
        ------
        imaging._errors.TooManyCosmicRaysError
            "Too many CR pixels (max N)", a `LengthError`.
        """
        if not self.config.doCosmicRay:
            return Struct(nCrPixels=0, nCosmicRays=0, crCandidates=None)
        keep = self.config.cosmicray.keepCRs if keepCRs is None else keepCRs
        with self.timer("cosmicRay"):
            model = None if sources is None else self._source_model(exposure, sources)
            result = find_cosmic_rays(
                exposure.image,
                exposure.mask.array,
                exposure.variance,
                exposure.psf,
                config=self.config.cosmicray.to_options(),
                keep_crs=keep,
                planes=exposure.mask.planes,
                xy0=exposure.xy0,
                candidates=crCandidates,
                model=model,
            )
        n_pixels = int(result.y.size)
        self.metadata["nCrPixels"] = n_pixels
        self.metadata["nCosmicRays"] = int(result.n_cosmic_rays)
        self.log.info(
            "Found %d cosmic rays (%d pixels)%s",
            result.n_cosmic_rays,
            n_pixels,
            "" if keep else ", interpolated",
        )
        return Struct(
            nCrPixels=n_pixels,
            nCosmicRays=int(result.n_cosmic_rays),
            crCandidates=result.candidates,
        )

    def _source_model(self, exposure: Any, sources: Any) -> np.ndarray | None:
        """Return the PSF model scaled to the sources brighter than ``modelMinPeak``."""
        h, w = exposure.image.shape
        x0, y0 = exposure.xy0
        kernel = exposure.psf.kernel_image((x0 + 0.5 * (w - 1), y0 + 0.5 * (h - 1)))
        sky_sd = float(np.sqrt(max(np.median(exposure.variance[::16, ::16]), 0.0)))
        flux = np.asarray(sources["base_PsfFlux_instFlux"], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            bright = ~np.asarray(sources["base_PsfFlux_flag"], dtype=bool) & (
                flux * kernel.max() > self.config.cosmicray.modelMinPeak * sky_sd
            )
        if not bright.any():
            return None
        self.metadata["nCrModelSources"] = int(bright.sum())
        image, mask = exposure.image, exposure.mask
        sample = image[::16, ::16]
        sample = sample[np.isfinite(sample)]
        # fluxes fitted with this PSF (the catalog's may come from a Gaussian stand-in)
        # on the pixels a CR, a defect or saturation leaves alone
        return source_model(
            (h, w),
            exposure.psf,
            np.asarray(sources["base_SdssCentroid_x"])[bright],
            np.asarray(sources["base_SdssCentroid_y"])[bright],
            flux[bright],
            xy0=exposure.xy0,
            image=image if self.config.cosmicray.modelFitFlux else None,
            mask=mask.array,
            excluded_bits=mask.get_plane_bitmask(["BAD", "NO_DATA", "CR", "INTRP"]),
            saturated_bits=mask.get_plane_bitmask("SAT"),
            background=float(np.median(sample)) if sample.size else 0.0,
            variance=exposure.variance,
        )
