"""Bright-star stamps: the data model of `ProcessBrightStarsTask`'s output.

A `BrightStarStamp` is one warped cut-out around a reference star: a masked image on the common
model grid (an `~imaging.exposure.Exposure` with ``xy0 = (0, 0)``), the star's Gaia G magnitude
and id, the position (the warped frame's ``xy0`` before the quarter turns), the transform from
detector pixels to the model grid (so that a model can be warped back) and the annular flux
used to normalize it. `BrightStarStamps` is the collection of one detector, with the annulus
radii and the detector's quarter-turn count.

Normalization (`BrightStarStamps.initAndNormalize`, LSST's algorithm): the annulus is the
integer circle of the outer radius minus that of the inner radius (``r_in² < dx² + dy² ≤
r_out²`` around the centre pixel); the annular "flux" is the sigma-clipped mean *per pixel* over
annulus pixels without the bad mask planes; the image plane (not the variance) is divided by
it. A stamp whose annular flux is NaN or not positive (LSST would divide by a negative
noise-dominated flux and flip the stamp), or whose valid annulus fraction is below
``minValidAnnulusFraction``, is dropped (``discardNanFluxObjects``) or kept unnormalized with a
NaN flux; unlike LSST's loop, dropping one never skips the next.

Rules kept from the seed era: all stamps of a collection are normalized or none; a collection
with radii holds only normalized stamps; `append` and `extend` need the same radii and state.

Storage: `imaging.stamps_io` (multi-extension FITS as LSST, and zarr); both round-trip exactly
and read sub-boxes and single stamps without reading the rest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._convolve import clipped_stats
from .exposure import Exposure
from .warping import StampTransform

__all__ = [
    "DEFAULT_BAD_MASK_PLANES",
    "BrightStarStamp",
    "BrightStarStamps",
    "NormalizationError",
    "annulus_mask",
]

DEFAULT_BAD_MASK_PLANES: tuple[str, ...] = (
    "BAD",
    "CR",
    "CROSSTALK",
    "EDGE",
    "NO_DATA",
    "SAT",
    "SUSPECT",
    "UNMASKEDNAN",
)
"""Mask planes ignored in the annulus statistic (LSST's ``badMaskPlanes``)."""

_STATISTICS = ("MEANCLIP", "MEAN", "MEDIAN")


class NormalizationError(RuntimeError):
    """A stamp's annular flux cannot be measured (NaN, or too little valid annulus)."""


def annulus_mask(
    shape: tuple[int, int], center: tuple[int, int], inner_radius: int, outer_radius: int
) -> np.ndarray:
    """Boolean ``[y, x]`` array of the annulus between two integer circles.

    A pixel is in the circle of radius ``r`` when ``dx² + dy² ≤ r²`` (LSST's CIRCLE stencil);
    the annulus is the outer circle minus the inner one.

    Raises
    ------
    ValueError
        If the radii are not ``0 ≤ inner < outer``.
    """
    if not 0 <= inner_radius < outer_radius:
        raise ValueError(
            f"annulus radii must satisfy 0 <= inner < outer, got ({inner_radius}, {outer_radius})"
        )
    ys, xs = np.ogrid[: shape[0], : shape[1]]
    r2 = (xs - center[0]) ** 2 + (ys - center[1]) ** 2
    return (r2 > inner_radius**2) & (r2 <= outer_radius**2)


@dataclass(eq=False)
class BrightStarStamp:
    """One bright-star stamp (LSST's ``BrightStarStamp`` fields).

    Parameters
    ----------
    stamp_im : `~imaging.exposure.Exposure`
        Image, mask and variance on the model grid.
    gaiaGMag : `float`
        Gaia G magnitude.
    gaiaId : `int`
        Gaia source id.
    position : `tuple` [`int`, `int`]
        ``xy0`` of the warped frame before the quarter turns.
    archive_element : `~imaging.warping.StampTransform`, optional
        Detector pixels → model grid (before the quarter turns).
    annularFlux : `float`, optional
        Clipped mean per pixel in the annulus (`None`: not normalized; NaN: failed).
    """

    stamp_im: Exposure
    gaiaGMag: float
    gaiaId: int
    position: tuple[int, int] = (0, 0)
    archive_element: StampTransform | None = None
    annularFlux: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.stamp_im, Exposure):
            raise ValueError(
                f"BrightStarStamp.stamp_im must be an Exposure, got {type(self.stamp_im).__name__}"
            )
        self.gaiaGMag = float(self.gaiaGMag)
        self.gaiaId = int(self.gaiaId)
        self.position = (int(self.position[0]), int(self.position[1]))
        if self.annularFlux is not None:
            self.annularFlux = float(self.annularFlux)

    @property
    def normalized(self) -> bool:
        """`True` once an annular flux was measured (even NaN)."""
        return self.annularFlux is not None

    def measureAndNormalize(
        self,
        annulus: np.ndarray,
        *,
        statistic: str = "MEANCLIP",
        numSigmaClip: float = 4.0,
        numIter: int = 3,
        badMaskPlanes: Sequence[str] = DEFAULT_BAD_MASK_PLANES,
        minValidAnnulusFraction: float = 0.0,
    ) -> float:
        """Measure the annular flux and divide the image plane by it (in place).

        Returns
        -------
        flux : `float`
            The annular flux (per pixel).

        Raises
        ------
        NormalizationError
            If the flux is NaN or the valid fraction of the annulus is too small; the stamp
            is left unchanged.
        ValueError
            For an unknown statistic.
        """
        if statistic not in _STATISTICS:
            raise ValueError(f"annular flux statistic {statistic!r} not in {_STATISTICS}")
        mask = self.stamp_im.mask
        planes = [p for p in badMaskPlanes if p in mask.planes]
        values = self.stamp_im.image[annulus]
        good = np.isfinite(values)
        if planes:
            good &= (mask.array[annulus] & np.uint32(mask.get_plane_bitmask(planes))) == 0
        total = int(np.count_nonzero(annulus))
        fraction = float(np.count_nonzero(good)) / total if total else 0.0
        if fraction < minValidAnnulusFraction:
            raise NormalizationError(
                f"star {self.gaiaId}: valid annulus fraction {fraction:.3f} < "
                f"minValidAnnulusFraction {minValidAnnulusFraction}"
            )
        sample = values[good]
        if statistic == "MEANCLIP":
            flux = clipped_stats(sample, n_sigma=numSigmaClip, n_iter=numIter)[0]
        elif statistic == "MEAN":
            flux = float(np.mean(sample)) if sample.size else math.nan
        else:
            flux = float(np.median(sample)) if sample.size else math.nan
        if not math.isfinite(flux):
            raise NormalizationError(f"star {self.gaiaId}: annular flux is NaN")
        if flux <= 0.0:
            # LSST divides anyway and flips the stamp's sign; a noise-dominated annulus is a
            # failed measurement here.
            raise NormalizationError(f"star {self.gaiaId}: annular flux {flux:.3g} is not positive")
        self.stamp_im.image /= np.float32(flux)
        self.annularFlux = float(flux)
        return self.annularFlux


class BrightStarStamps:
    """The bright-star stamps of one detector (LSST's ``BrightStarStamps``).

    Parameters
    ----------
    starStamps : iterable of `BrightStarStamp`
        The stamps.
    innerRadius, outerRadius : `int`, optional
        Annulus radii; given means the collection is normalized.
    nb90Rots : `int`, optional
        Quarter turns applied to every stamp.
    metadata : `dict`, optional
        Extra collection metadata (simple values).
    use_mask, use_variance, use_archive : `bool`
        Which per-stamp parts are stored.

    Raises
    ------
    ValueError
        If an element is not a `BrightStarStamp`.
    AttributeError
        If the stamps mix normalized and unnormalized ones, or radii are given for
        unnormalized stamps, or normalized stamps come without radii.
    """

    def __init__(
        self,
        starStamps: Iterable[BrightStarStamp] = (),
        innerRadius: int | None = None,
        outerRadius: int | None = None,
        nb90Rots: int | None = None,
        metadata: dict[str, Any] | None = None,
        use_mask: bool = True,
        use_variance: bool = False,
        use_archive: bool = False,
    ) -> None:
        stamps = list(starStamps)
        for stamp in stamps:
            _check_type(stamp)
        self._stamps = stamps
        self.innerRadius = None if innerRadius is None else int(innerRadius)
        self.outerRadius = None if outerRadius is None else int(outerRadius)
        if (self.innerRadius is None) != (self.outerRadius is None):
            raise AttributeError("BrightStarStamps: give both annulus radii or neither")
        self.normalized = self.innerRadius is not None
        self.nb90Rots = None if nb90Rots is None else int(nb90Rots)
        # Metadata keys are FITS keywords: stored upper case in every format.
        self.metadata: dict[str, Any] = {str(k).upper(): v for k, v in (metadata or {}).items()}
        self.use_mask = bool(use_mask)
        self.use_variance = bool(use_variance)
        self.use_archive = bool(use_archive)
        self._check_normalization(self._stamps)

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def initAndNormalize(
        cls,
        starStamps: Iterable[BrightStarStamp],
        innerRadius: int,
        outerRadius: int,
        nb90Rots: int | None = None,
        metadata: dict[str, Any] | None = None,
        use_mask: bool = True,
        use_variance: bool = False,
        use_archive: bool = False,
        imCenter: tuple[int, int] | None = None,
        discardNanFluxObjects: bool = True,
        statistic: str = "MEANCLIP",
        numSigmaClip: float = 4.0,
        numIter: int = 3,
        badMaskPlanes: Sequence[str] = DEFAULT_BAD_MASK_PLANES,
        minValidAnnulusFraction: float = 0.0,
    ) -> BrightStarStamps:
        """Normalize unnormalized stamps by their annular flux and collect them.

        Stamps whose flux cannot be measured are dropped with ``discardNanFluxObjects``, else
        kept unnormalized with ``annularFlux = NaN``. Every stamp is visited exactly once.

        Raises
        ------
        AttributeError
            If a stamp is already normalized.
        ValueError
            If an element is not a `BrightStarStamp`.
        """
        stamps = list(starStamps)
        for stamp in stamps:
            _check_type(stamp)
            if stamp.normalized:
                raise AttributeError(
                    "initAndNormalize: stamps are already normalized (annularFlux is set)"
                )
        kept: list[BrightStarStamp] = []
        annuli: dict[tuple[tuple[int, int], tuple[int, int]], np.ndarray] = {}
        for stamp in stamps:
            shape = stamp.stamp_im.image.shape
            center = imCenter or (shape[1] // 2, shape[0] // 2)
            key = (shape, center)
            if key not in annuli:
                annuli[key] = annulus_mask(shape, center, innerRadius, outerRadius)
            try:
                stamp.measureAndNormalize(
                    annuli[key],
                    statistic=statistic,
                    numSigmaClip=numSigmaClip,
                    numIter=numIter,
                    badMaskPlanes=badMaskPlanes,
                    minValidAnnulusFraction=minValidAnnulusFraction,
                )
            except NormalizationError:
                if discardNanFluxObjects:
                    continue
                stamp.annularFlux = math.nan
            kept.append(stamp)
        return cls(
            kept,
            innerRadius=innerRadius,
            outerRadius=outerRadius,
            nb90Rots=nb90Rots,
            metadata=metadata,
            use_mask=use_mask,
            use_variance=use_variance,
            use_archive=use_archive,
        )

    def _check_normalization(self, stamps: Sequence[BrightStarStamp]) -> None:
        flagged = [s.normalized for s in stamps]
        if self.normalized and not all(flagged):
            raise AttributeError(
                f"BrightStarStamps normalized with radii ({self.innerRadius}, "
                f"{self.outerRadius}) cannot hold unnormalized stamps"
            )
        if not self.normalized and any(flagged):
            raise AttributeError(
                "BrightStarStamps without annulus radii cannot hold normalized stamps; give "
                "innerRadius and outerRadius"
            )

    def _check_radii(self, innerRadius: int | None, outerRadius: int | None) -> None:
        if (innerRadius, outerRadius) != (self.innerRadius, self.outerRadius):
            raise AttributeError(
                f"annulus radii ({innerRadius}, {outerRadius}) differ from the collection's "
                f"({self.innerRadius}, {self.outerRadius})"
            )

    def append(
        self, item: BrightStarStamp, innerRadius: int | None = None, outerRadius: int | None = None
    ) -> None:
        """Add one stamp normalized with the same radii (or unnormalized into an unnormalized set).

        Raises
        ------
        ValueError
            If ``item`` is not a `BrightStarStamp`.
        AttributeError
            If its state or radii differ from the collection's.
        """
        _check_type(item)
        if item.normalized != self.normalized:
            state = "a normalized" if item.normalized else "an unnormalized"
            raise AttributeError(
                f"cannot append {state} stamp to "
                f"{'a normalized' if self.normalized else 'an unnormalized'} BrightStarStamps"
            )
        self._check_radii(innerRadius, outerRadius)
        self._stamps.append(item)

    def extend(self, other: BrightStarStamps) -> None:
        """Add every stamp of ``other`` (same radii and normalization state).

        Raises
        ------
        ValueError
            If ``other`` is not a `BrightStarStamps`.
        AttributeError
            If its state or radii differ.
        """
        if not isinstance(other, BrightStarStamps):
            raise ValueError(f"extend takes BrightStarStamps, got {type(other).__name__}")
        if other.normalized != self.normalized:
            raise AttributeError("cannot extend with a collection of another normalization state")
        self._check_radii(other.innerRadius, other.outerRadius)
        self._stamps.extend(other._stamps)

    # -- access -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._stamps)

    def __getitem__(self, index: int) -> BrightStarStamp:
        return self._stamps[index]

    def __iter__(self) -> Iterator[BrightStarStamp]:
        return iter(self._stamps)

    def __repr__(self) -> str:
        return (
            f"BrightStarStamps({len(self)} stamps, radii=({self.innerRadius}, "
            f"{self.outerRadius}), nb90Rots={self.nb90Rots})"
        )

    def getMaskedImages(self) -> list[Exposure]:
        """Masked images of the stamps."""
        return [s.stamp_im for s in self._stamps]

    def getArchiveElements(self) -> list[StampTransform | None]:
        """Return the transforms (detector pixels → model grid) of the stamps."""
        return [s.archive_element for s in self._stamps]

    def getMagnitudes(self) -> list[float]:
        """Gaia G magnitudes."""
        return [s.gaiaGMag for s in self._stamps]

    def getGaiaIds(self) -> list[int]:
        """Gaia source ids."""
        return [s.gaiaId for s in self._stamps]

    def getPositions(self) -> list[tuple[int, int]]:
        """Warped-frame ``xy0`` of each stamp (before the quarter turns)."""
        return [s.position for s in self._stamps]

    def getAnnularFluxes(self) -> list[float | None]:
        """Annular fluxes (`None` for unnormalized stamps)."""
        return [s.annularFlux for s in self._stamps]

    def selectByMag(
        self, magMin: float | None = None, magMax: float | None = None
    ) -> BrightStarStamps:
        """Return the stamps with ``magMin < mag < magMax`` (strict; `None` is unbounded)."""
        selected = [
            s
            for s in self._stamps
            if (magMin is None or s.gaiaGMag > magMin) and (magMax is None or s.gaiaGMag < magMax)
        ]
        return self._with(selected)

    def _with(self, stamps: list[BrightStarStamp]) -> BrightStarStamps:
        return BrightStarStamps(
            stamps,
            innerRadius=self.innerRadius,
            outerRadius=self.outerRadius,
            nb90Rots=self.nb90Rots,
            metadata=self.metadata,
            use_mask=self.use_mask,
            use_variance=self.use_variance,
            use_archive=self.use_archive,
        )

    def equals(self, other: object, *, compare_variance: bool | None = None) -> bool:
        """Exact equality of everything that is stored (pixels bit for bit, NaN equal to NaN)."""
        if not isinstance(other, BrightStarStamps) or len(self) != len(other):
            return False
        same_meta = (
            self.innerRadius == other.innerRadius
            and self.outerRadius == other.outerRadius
            and self.nb90Rots == other.nb90Rots
            and self.metadata == other.metadata
            and self.use_mask == other.use_mask
            and self.use_variance == other.use_variance
            and self.use_archive == other.use_archive
        )
        if not same_meta:
            return False
        variance = self.use_variance if compare_variance is None else compare_variance
        for a, b in zip(self, other, strict=True):
            if (a.gaiaGMag, a.gaiaId, a.position) != (b.gaiaGMag, b.gaiaId, b.position):
                return False
            if not _same_float(a.annularFlux, b.annularFlux):
                return False
            if self.use_archive and a.archive_element != b.archive_element:
                return False
            ia, ib = a.stamp_im, b.stamp_im
            if ia.xy0 != ib.xy0 or not np.array_equal(ia.image, ib.image, equal_nan=True):
                return False
            if self.use_mask and ia.mask != ib.mask:
                return False
            if variance and not np.array_equal(ia.variance, ib.variance, equal_nan=True):
                return False
        return True


def _same_float(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def _check_type(item: Any) -> None:
    if not isinstance(item, BrightStarStamp):
        raise ValueError(
            f"BrightStarStamps hold BrightStarStamp objects, got {type(item).__name__}"
        )
