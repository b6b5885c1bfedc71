"""Source detection: PSF-smoothed thresholding into grown, merged footprints.

Design (after LSST ``SourceDetectionTask.detectFootprints`` as configured by
``CharacterizeImageTask``):

1. Smooth with a separable Gaussian of the PSF sigma, kernel size
   ``(int(7σ + 0.5)//2)*2 + 1``; the border of width ``size//2`` is marked EDGE.
   Pixels of ``ignore_planes`` (CR, BAD, NO_DATA) enter the smoothing as zeros.
2. level = ``threshold_value`` × clipped stdev (3σ×3) of the smoothed image, ignoring
   the ``stats_planes`` pixels and the border.
3. Footprints = 8-connected pixels ≥ level (and ≤ −level for the negative polarity);
   a footprint is kept only if its maximum ≥ level × ``include_threshold_multiplier``
   and it has ≥ ``min_pixels`` pixels.
4. Peaks = 3×3 local maxima of the smoothed image inside the kept footprints (1-pixel
   margin from the image edge), brightest first; significance = value / (level /
   ``threshold_value``).
5. Grow all kept footprints together by ``int(2.4σ + 0.5)`` pixels with a diamond
   (Manhattan) element, so touching ones merge, and relabel; write DETECTED and
   DETECTED_NEGATIVE.
6. Saturated stars: the peaks inside one group of SAT pixels (grown by ``saturated_grow``)
   become one peak at the star's wing centroid, and footprints sharing such a group merge
   (`imaging.saturation`); otherwise a bleed trail's flat ridge gives a peak every few pixels.
7. Optionally re-estimate and subtract the background (DETECTED pixels now excluded).

The result holds one label image plus per-footprint `Footprint` records (label, bounding
slices, peaks); no state is kept between calls.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ._convolve import (
    bitmask,
    clipped_stats,
    connected_components_8,
    kernel_size_for_sigma,
    plane_map,
    smooth_gaussian,
)
from ._footprint_kernels import above_sorted, grow_sorted, label_boxes, label_max
from .background import BackgroundConfig, BackgroundModel, subtract_background
from .footprint import Footprint, Peaks
from .saturation import merge_saturated_peaks, saturated_regions

__all__ = [
    "DetectionConfig",
    "DetectionResult",
    "Footprint",
    "Peaks",
    "detect_sources",
]

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class DetectionConfig:
    """Options of `detect_sources` (LSST defaults as set by CharacterizeImageTask).

    Attributes
    ----------
    threshold_value : float
        Threshold in units of the smoothed image's clipped stdev (``thresholdValue``).
    threshold_type : str
        ``"stdev"`` (level = value × stdev) or ``"value"`` (level = value, image units).
    include_threshold_multiplier : float
        A footprint survives only if its peak ≥ level × this (``includeThresholdMultiplier``).
    polarity : str
        ``"positive"``, ``"negative"`` or ``"both"``: which footprints are returned.
    min_pixels : int
        Minimum footprint area before growing, pixels.
    n_sigma_to_grow : float
        Grow radius in PSF sigmas (``nSigmaToGrow``).
    n_sigma_for_kernel : float
        Smoothing-kernel size in PSF sigmas (``nSigmaForKernel``).
    stats_planes : tuple of str
        Planes ignored when measuring the stdev (``statsMask``).
    ignore_planes : tuple of str
        Planes whose pixels enter the smoothing as zeros (the background), so that the
        cosmic rays flagged (but kept) by the preceding repair and uninterpolated dead
        columns make no detections.  LSST has no such option: its CRs are detected and
        then rejected by their flags.  ``()`` restores that behaviour.
    saturated_planes : tuple of str
        Planes of saturated pixels; ``()`` turns the saturated-star merging off.
    saturated_grow : int
        Grow radius of the SAT groups (pixels): peaks within it belong to the star.
    saturated_wing_radius : float
        Wing-centroid window beyond a SAT group's half-size, in PSF sigmas.
    re_estimate_background : bool
        Fit and subtract a new background piece after detection.
    background : BackgroundConfig
        Options of that re-estimate.
    """

    threshold_value: float = 5.0
    threshold_type: str = "stdev"
    include_threshold_multiplier: float = 10.0
    polarity: str = "positive"
    min_pixels: int = 1
    n_sigma_to_grow: float = 2.4
    n_sigma_for_kernel: float = 7.0
    stats_planes: tuple[str, ...] = ("BAD", "SAT", "EDGE", "NO_DATA")
    ignore_planes: tuple[str, ...] = ("BAD", "CR", "NO_DATA")
    saturated_planes: tuple[str, ...] = ("SAT",)
    saturated_grow: int = 5
    saturated_wing_radius: float = 6.0
    re_estimate_background: bool = True
    background: BackgroundConfig = field(default_factory=BackgroundConfig)


@dataclass(frozen=True, slots=True, eq=False)
class DetectionResult:
    """Output of `detect_sources`.

    Attributes
    ----------
    footprints : list of Footprint
        Positive footprints (in label order).
    labels : ndarray
        int32 label image of the grown positive footprints (0 = none).
    negative_footprints : list of Footprint
        Negative footprints (empty unless polarity asks for them).
    negative_labels : ndarray or None
        Label image of the negative footprints.
    level : float
        Detection level in image units.
    stdev : float
        Clipped stdev of the smoothed image.
    sigma : float
        PSF sigma used, pixels.
    kernel_width : int
        Smoothing-kernel size, pixels.
    n_grow : int
        Grow radius, pixels.
    background : BackgroundModel or None
        The re-estimated background piece, already subtracted from the image.
    smoothed : ndarray
        The smoothed image.
    saturated_centres : dict
        ``{(peak x, peak y): (x, y)}`` pixel indices: peaks that stand for a saturated star and
        the star's sub-pixel wing centroid (`imaging.saturation.wing_centroid`).
    """

    footprints: list[Footprint]
    labels: np.ndarray
    negative_footprints: list[Footprint]
    negative_labels: np.ndarray | None
    level: float
    stdev: float
    sigma: float
    kernel_width: int
    n_grow: int
    background: BackgroundModel | None
    smoothed: np.ndarray
    saturated_centres: dict[tuple[int, int], tuple[float, float]] = field(default_factory=dict)

    @property
    def metadata(self) -> dict[str, float | int | bool]:
        """LSST-style detection metadata."""
        return {
            "doSmooth": True, "sigma": self.sigma, "smoothingKernelWidth": self.kernel_width,
            "nGrow": self.n_grow, "nPositive": len(self.footprints),
            "nNegative": len(self.negative_footprints),
        }


def _boxes(y: np.ndarray, x: np.ndarray, lab: np.ndarray, n: int) -> np.ndarray:
    """(n, 4) inclusive boxes (y0, y1, x0, x1) of labelled pixel lists."""
    return label_boxes(np.asarray(y, np.int64), np.asarray(x, np.int64), lab, n)


def _grow(
    ay: np.ndarray, ax: np.ndarray, shape: tuple[int, int], n_grow: int
) -> tuple[np.ndarray, np.ndarray]:
    """Dilate a pixel list by a Manhattan radius; return the grown (y, x) in raster order.

    A row sweep over the runs of the list (`grow_sorted`): no full-image temporary, and no
    per-object work (the union of the objects' dilations is the dilation of their union).
    """
    if n_grow <= 0 or ay.size == 0:
        return ay, ax
    h, w = shape
    flat = ay * w + ax
    if flat.size > 1 and not (flat[1:] > flat[:-1]).all():
        flat = np.unique(flat)
    grown = grow_sorted(flat, h, w, n_grow)
    return grown // w, grown % w


def _above(
    smoothed: np.ndarray, half: int, level: float, sign: float, low: float = -np.inf
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(y, x) of the pixels at least ``half`` from the edge with sign·value ≥ level.

    Also tells whether any of those middle pixels is NaN or at or below ``low`` (what
    ``not smoothed[middle].min() > low`` says), found in the same pass.
    """
    h, w = smoothed.shape
    if h <= 2 * half or w <= 2 * half:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), False
    # float32 v > low  <=>  v > the largest float32 <= low
    with np.errstate(over="ignore"):  # beyond the float32 range: ±inf, still right
        low32 = np.float32(low)
    if float(low32) > low:  # (a Python float would be compared as a float32)
        low32 = np.nextafter(low32, np.float32(-np.inf))
    flat, any_low = above_sorted(np.ascontiguousarray(smoothed, np.float32), half,
                                 np.float32(level), sign > 0, low32)
    return flat // w, flat % w, bool(any_low)


def _find_footprints(
    smoothed: np.ndarray, half: int, level: float, include: float, min_pixels: int,
    n_grow: int, threshold_value: float, *, with_peaks: bool = True, sign: float = 1.0,
    above: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[list[Footprint], np.ndarray | None, tuple[np.ndarray, np.ndarray]]:
    """Threshold, keep, grow and label; works on pixel lists (cost ~ detected pixels).

    ``sign=-1`` finds negative footprints (values are then ``-smoothed``).  Returns the
    footprints, their label image and the ``(y, x)`` pixel lists of the grown footprints
    in raster order (what the mask plane gets; the label image's nonzero pixels).  Without
    ``with_peaks`` no footprints nor label image (`None`) are made.  ``above``: the
    thresholded pixels when already found (`_above`).
    """
    h, w = smoothed.shape
    ay, ax = _above(smoothed, half, level, sign)[:2] if above is None else above
    n, al = connected_components_8(ay, ax, w)
    labels_img = np.zeros(smoothed.shape, np.int32) if with_peaks else None
    if n == 0:
        return [], labels_img, (ay, ax)
    av = sign * smoothed[ay, ax]
    maxima = label_max(al, av, n)
    areas = np.bincount(al, minlength=n)
    keep = (maxima >= level * include) & (areas >= min_pixels)
    sel = keep[al]
    ay, ax, av, al = ay[sel], ax[sel], av[sel], al[sel]
    if ay.size == 0:
        return [], labels_img, (ay, ax)
    gy, gx = _grow(ay, ax, (h, w), n_grow)
    if not with_peaks:
        return [], None, (gy, gx)
    ng, gl = connected_components_8(gy, gx, w)
    labels_img[gy, gx] = gl + 1
    # Peaks: 3x3 local maxima of the smoothed image inside the kept footprints, with a
    # 1-pixel margin from the image edge.
    inner = (ay > 0) & (ay < h - 1) & (ax > 0) & (ax < w - 1)
    ay, ax, av = ay[inner], ax[inner], av[inner]
    is_peak = np.ones(ay.size, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                is_peak &= av >= sign * smoothed[ay + dy, ax + dx]
    py, px = ay[is_peak], ax[is_peak]
    pv = av[is_peak].astype(np.float64)
    pl = labels_img[py, px]
    # Footprints without a local maximum get their brightest pixel as the peak.
    has_peak = np.zeros(ng + 1, bool)
    has_peak[pl] = True
    missing = np.nonzero(~has_peak[1:])[0] + 1
    if missing.size:
        kl = labels_img[ay, ax]
        o = np.lexsort((-av, kl))
        first = o[np.searchsorted(kl[o], missing)]
        my, mx = ay[first], ax[first]
        py, px = np.concatenate([py, my]), np.concatenate([px, mx])
        pv = np.concatenate([pv, sign * smoothed[my, mx]])
        pl = np.concatenate([pl, missing])
    order = np.lexsort((-pv, pl))
    py, px, pv, pl = py[order], px[order], pv[order], pl[order]
    bounds = np.searchsorted(pl, np.arange(1, ng + 2))
    noise = level / threshold_value
    gbox = _boxes(gy, gx, gl, ng)
    garea = np.bincount(gl, minlength=ng)
    footprints = []
    for i in range(ng):
        a, b = bounds[i], bounds[i + 1]
        peaks = Peaks(
            x=px[a:b].astype(np.int64), y=py[a:b].astype(np.int64), value=pv[a:b],
            significance=pv[a:b] / noise,
        )
        y0, y1, x0, x1 = gbox[i]
        footprints.append(Footprint(id=i + 1, slices=(slice(int(y0), int(y1) + 1),
                                                      slice(int(x0), int(x1) + 1)),
                                    area=int(garea[i]), peaks=peaks))
    return footprints, labels_img, (gy, gx)


def detect_sources(
    image: np.ndarray,
    mask: np.ndarray,
    variance: np.ndarray | None,
    psf_sigma: float,
    *,
    config: DetectionConfig | None = None,
    planes: Mapping[str, int] | None = None,
    xy0: tuple[int, int] = (0, 0),
) -> DetectionResult:
    """Detect sources above a PSF-smoothed threshold.

    Parameters
    ----------
    image : ndarray
        (H, W) background-subtracted image (counts); modified in place only when the
        background is re-estimated.
    mask : ndarray
        (H, W) uint32 mask, updated in place: EDGE border, DETECTED, DETECTED_NEGATIVE
        (cleared unless the negative polarity is requested).
    variance : ndarray or None
        Variance plane (weights of the saturated stars' wing centroids only).
    psf_sigma : float
        PSF determinant radius at the average position, pixels.
    config : DetectionConfig, optional
        Options; CharacterizeImageTask defaults when None.
    planes : mapping, optional
        ``{plane name: bit number}``; LSST numbering when None.
    xy0 : tuple of int
        Parent coordinates of pixel (0, 0), passed to the background piece.

    Returns
    -------
    DetectionResult
        Footprints, label images, threshold and the re-estimated background piece.

    Raises
    ------
    RuntimeError
        If ``psf_sigma`` is not a positive finite number.
    """
    config = config or DetectionConfig()
    planes = plane_map(planes)
    if not np.isfinite(psf_sigma) or psf_sigma <= 0:
        raise RuntimeError(f"Invalid PSF sigma {psf_sigma!r}: cannot smooth for detection")
    det_bit = bitmask(planes, ["DETECTED"])
    neg_bit = bitmask(planes, ["DETECTED_NEGATIVE"])
    edge_bit = bitmask(planes, ["EDGE"])
    mask &= np.uint32(~(det_bit | neg_bit) & 0xFFFFFFFF)

    size = kernel_size_for_sigma(psf_sigma, config.n_sigma_for_kernel)
    half = size // 2
    smoothed = smooth_gaussian(image, psf_sigma, size, mask=mask,
                               zero_bits=bitmask(planes, config.ignore_planes))
    h, w = image.shape
    if edge_bit:
        e = np.uint32(edge_bit)
        mask[:half] |= e
        mask[h - half:] |= e
        mask[:, :half] |= e
        mask[:, w - half:] |= e

    # Clipped stdev of the smoothed middle, on a regular sample of ~2.5e5 pixels (the
    # statistic is then known to ~0.15%, far below the threshold's own uncertainty).
    stats_bits = bitmask(planes, config.stats_planes)
    step = max(1, int(np.sqrt(h * w / 2.5e5)))
    mid = (slice(half, h - half, step), slice(half, w - half, step))
    sample = smoothed[mid]
    if stats_bits:
        sample = sample[(mask[mid] & np.uint32(stats_bits)) == 0]
    _, stdev, _ = clipped_stats(sample)
    if config.threshold_type == "stdev":
        level = config.threshold_value * stdev
        tvalue = config.threshold_value
    else:
        level = config.threshold_value
        tvalue = level / stdev if stdev > 0 else 1.0
    n_grow = int(config.n_sigma_to_grow * psf_sigma + 0.5)

    want = config.polarity in ("negative", "both")
    # the negative threshold pass is needed when negative footprints are asked for or
    # masked for the background re-estimate; for the latter only those reaching
    # -level x include would be kept: with no such pixel (nor NaN) it is skipped
    ay, ax, any_low = _above(smoothed, half, level, 1.0,
                             -(level * config.include_threshold_multiplier))
    footprints, labels, grown = _find_footprints(
        smoothed, half, level, config.include_threshold_multiplier, config.min_pixels, n_grow,
        tvalue, above=(ay, ax),
    )
    saturated_centres: dict[tuple[int, int], tuple[float, float]] = {}
    if config.saturated_planes and footprints:
        regions = saturated_regions(
            mask, planes, grow=config.saturated_grow, sat_planes=config.saturated_planes
        )
        if regions.n:
            footprints, saturated_centres = merge_saturated_peaks(
                footprints, labels, regions, image, mask,
                bad_bits=bitmask(planes, config.ignore_planes),
                sat_bits=bitmask(planes, config.saturated_planes),
                wing_radius=config.saturated_wing_radius * psf_sigma, variance=variance,
            )
    if det_bit:  # the merging relabels pixels, but the labelled set stays the grown one
        mask[grown] |= np.uint32(det_bit)
    neg_fps: list[Footprint] = []
    neg_labels = None
    if not want and config.re_estimate_background and h > 2 * half and w > 2 * half and (
        not any_low
    ):
        neg = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    elif config.re_estimate_background or want:
        neg_fps, neg_labels, neg = _find_footprints(
            smoothed, half, level, config.include_threshold_multiplier, config.min_pixels,
            n_grow, tvalue, with_peaks=want, sign=-1.0,
        )
        neg_fps = [Footprint(f.id, f.slices, f.area, f.peaks, True) for f in neg_fps]
        if neg_bit:
            mask[neg] |= np.uint32(neg_bit)
    _log.info("Detected %d positive peaks in %d footprints and %d negative footprints "
              "to %.1f sigma", sum(len(f.peaks) for f in footprints), len(footprints),
              len(neg_fps), tvalue)

    background = None
    if config.re_estimate_background:
        background, _ = subtract_background(
            image, mask, config=config.background, planes=planes, xy0=xy0, stats=False
        )
    if config.polarity == "positive":
        if neg_bit and neg_labels is None and config.re_estimate_background:
            # only the pixels set above carry the bit (it was cleared at the start)
            mask[neg[0], neg[1]] &= np.uint32(~neg_bit & 0xFFFFFFFF)
        elif neg_bit:
            mask &= np.uint32(~neg_bit & 0xFFFFFFFF)
        neg_fps, neg_labels = [], None
    if config.polarity == "negative":
        if det_bit:
            mask &= np.uint32(~det_bit & 0xFFFFFFFF)
        footprints, labels = neg_fps, neg_labels
    return DetectionResult(
        footprints=footprints, labels=labels, negative_footprints=neg_fps,
        negative_labels=neg_labels, level=float(level), stdev=float(stdev),
        sigma=float(psf_sigma), kernel_width=size, n_grow=n_grow, background=background,
        smoothed=smoothed, saturated_centres=saturated_centres,
    )
