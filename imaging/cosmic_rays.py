"""Cosmic-ray detection and repair, in the spirit of LSST ``findCosmicRays`` (CR.cc).

Design, on a background-subtracted working copy ``v`` (background = image median):

* condition 2 — the pixel exceeds the mean of at least one of its four neighbour pairs
  (N–S, E–W, SW–NE, NW–SE) by more than ``min_sigma``·√var; evaluated for the whole
  image with array slices (or taken from an earlier call on the same exposure:
  ``candidates``), everything else only on the surviving pixels;
* condition 3 — it is sharper than the PSF allows: for some direction d,
  ``thres_d·(v − f·σ) > mean_d + f·σ_mean_d`` with ``thres_d = cond3_fac2 ×
  (mean PSF value one pixel from the centre along d) / (central PSF value)`` and
  ``f = cond3_fac``; a star, however bright, has neighbours at least
  ``psf_1/psf_0`` of its peak and never passes;
* condition 4 — the pixel is not BAD/INTRP/SAT/NO_DATA, touches no INTRP pixel (but see
  the extension and ``beside_intrp`` below) and lies more than ``saturated_grow`` rows
  and columns from a SAT pixel (a bleed trail's tip);
* a flagged pixel is replaced at once by the pair mean, and its neighbours are
  re-examined until nothing changes (the vectorised analogue of CR.cc's raster scan);
* 8-connected groups whose summed excess is below ``min_dn`` are dropped (condition 1);
* ``niteration`` passes look at the 8 neighbours of the CRs again: with
  ``extend_mode="local"`` (default) a neighbour joins when its own excess over its local
  background (the median of the ring of its ``extend_box``² box, CR pixels left out)
  exceeds a threshold·√var and it is sharper than the PSF relative to the sky along
  some direction (condition 3 with ``cond3_fac = 0``: a CR on a star does not spread
  into the star's core).  The threshold falls with the CR pixels among its 8
  neighbours: ``flanked_sigma`` (1.9) with ``flanked_count`` (4) or more, as along the
  side of a track that runs near a pixel edge, ``lone_sigma`` (3.0) with
  ``lone_count`` (1) or fewer (a track's end, noise beside a one-pixel hit),
  ``extend_sigma`` (2.5) between.  On four 4k² simulated detectors (seeds 1-4, truth:
  deposit > 3σ of the sky noise) one threshold of 2.5 gave recall 0.984-0.987 with
  490-540 false pixels; these give 0.986-0.992 (mean 0.990) with 700-780; a single
  2.0 gave 0.992 with 1,200.  The older ``"pairs"`` mode re-ran conditions 2 and 3
  with ``extend_sigma`` and ``cond3_fac = 0`` against the neighbour-pair means, whose
  means already hold CR charge and replaced estimates: on a 4k² simulated detector it
  reached recall 0.976 with 1,070 false pixels (95% within 1.5 px of a track), the local
  test 0.983 with 720 (astroscrappy at its default: 0.924 and 830);
* the extension's sharpness test (against the sky, as condition 3 with ``cond3_fac = 0``)
  uses ``extend_cond3_fac2`` (0.75) instead of ``cond3_fac2`` (0.6) along directions whose
  two pixels are not CRs: a track's faint pixels on a bright star's slope then join
  (edge 90° 2048² detector of the characterize tests: recall 0.979 → 0.982, worst
  quadrant 0.951 → 0.962, false pixels 167 → 167; corner 0° one unchanged at 0.990);
  through a CR pixel the pair holds a replaced value, too low on a star's slope, and 0.6
  stays (0.75 everywhere flagged star-core pixels beside tracks, 0.9 on clean pairs too);
* the extension's local background is the ring's median only where that exceeds
  ``ring_min_sigma`` (1.0)·√var, light the background and model lack (a galaxy, a faint
  star, a star's slope without a model); elsewhere it is 0 (the image median, with the
  model).  Beside a track the ring holds the track's own unflagged faint charge and adds
  its noise: on the characterize tests' 2048² detectors (with the model; seeds 21, 22,
  0° and 90°) recall 0.990/0.989/0.991/0.989 → 0.994/0.993/0.994/0.990, worst region
  0.987/0.985/0.989/0.985 → 0.989/0.991/0.991/0.985, false pixels 206/170/208/191 →
  197/175/210/183 (always 0: 203/186/210/193, above astroscrappy's 178 on one; 0.75:
  fewer CR pixels, 1.5: more false ones);
* the extension also looks at the outermost rows and columns, which conditions 2 and 3
  never see (they need a pixel on each side): there a pair with a pixel outside is its
  pixel inside (the characterize tests' 2048² detectors lost 1-3 such pixels each);
* the extension also looks at pixels beside an INTRP one (a bad column ISR interpolated),
  which condition 4 keeps from the first pass, with pairs through void or INTRP pixels
  taken as their other pixel (a 2048² detector of the characterize tests lost the 4
  pixels beside such a column of a track crossing it; recall 0.990 → 0.992 there);
* so does the first pass (``beside_intrp``), which otherwise never starts a CR there: a
  track running along such a column was missed whole.  Conditions 2 and 3 then take a
  pair through a void or INTRP pixel as its other pixel, two pixels from a star centred
  on the void one, against ``cond3_fac2`` times the PSF's two-pixel ratio (its value two
  pixels from the centre over one pixel's; `_psf_side_thresholds`); with a ``model``
  only on the sky (the model of a star beside the column is fitted to one side of it: a
  70σ star's core pixel was flagged).  Characterize tests' 2048² detectors: seeds 23-26
  misses 131 → 121 (false pixels 1,471 → 1,471), held-out seeds 27-30 135 → 114 (1,378 →
  1,378; 90° seed 29's worst region 0.969 → 0.989), seeds 21, 22 unchanged;
* with a source ``model`` (the PSF scaled to the measured sources, `source_model`) every
  test judges the image less the model, and ``model_error`` (0.05) times the model is
  added in quadrature to the noise.  Against the sky a CR's pixels on a bright star are
  not sharper than the PSF; against the star's model they are, while the star's core,
  the model's own, is not.  On the edge 90° 2048² detectors of the characterize tests
  (seeds 21, 22) recall 0.982/0.983 → 0.988/0.988, worst quadrant 0.962/0.969 →
  0.981/0.985, false pixels 168/188 → 170/191 (corner 0° ones unchanged: no track
  crossed a bright star); a model error of 0.1 gave 0.985/0.986, 0.02-0.03 0.989/0.989.
  Those models scaled the catalog's fluxes, measured with characterizeImage's Gaussian
  stand-in PSF: 10% low on unsaturated stars, up to 50% on saturated ones (the star
  ~15% off under a track near the 90° detector's edge was saturated).  `source_model`
  now fits each source's flux and centre to the image (``image=``; saturated pixels and
  their neighbours, CR pixels and pixels far above the model left out): within 1% of
  the truth, and ``model_error`` 0.01 (0.02-0.05: 3 more misses on those four detectors,
  1-4 more on eight others);
* a last pass judges track edges by the track's line (``track_box`` > 0, ``"local"``
  mode): for the extension's pixels and the CRs' 8 neighbours, the line is the principal
  axis of the CR pixels in the ``track_box``² box around the pixel, weighted by their
  light (`imaging._cr_track.track_distance`; where a track runs near a pixel edge the
  charge shared across it moves the line there).  Lines need ``track_min_pixels`` (3) CR
  pixels whose minor/major variance ratio is at most ``track_width`` (0.15).  The pass
  judges each such pixel by the charge the line puts in it: the track's charge, spread
  across the line by diffusion (a Gaussian of ``track_diffusion``, 0.3 px, as the
  simulator's), is shared between the pixel centres at 1 px steps across it, so the pixel
  expects its CR neighbour's light (the brightest, in σ) times the share of a centre at
  the line's distance from it over the rest (`_flank_share`: 0.5 px away 1, 0.7 px 0.11,
  0.8 px 0.036, 0.9 px 0.012).  That expectation is averaged with the pixel's own excess
  (noise 1σ) with weights by their errors, the expectation's taken as its own size (at
  least 1σ, ``track_charge_spread`` times): on the characterize tests' detectors the
  deposit of such pixels scatters by about a factor two about it (median deposit 1.1,
  2.5, 3.9σ where it expects 0.3-1, 1-2, 2-3σ).  A pixel whose average exceeds
  ``track_sigma`` (2.15) less ``track_neighbour_slope`` (0.2) per CR pixel among its 8
  neighbours (a pixel flanked along a track holds its charge more likely) is a CR: an
  extension pixel below it is dropped, a neighbour above it and ``track_min_sigma`` (1σ)
  joins on the sky only (where its ring's median shows light, a star's core beside a
  track could join; no test of sharpness: the line is the test, and the inner corner of
  a diagonal track's step, between two CR pixels, often fails it against their replaced
  values: on the characterize tests' seeds 21, 22 the sharpness test cost 2 pixels).
  This replaced a rule by the distance alone (a neighbour within 0.8 px of the line
  joined above 1.5σ, an extension pixel 0.9 px or more from it stayed only above 3σ);
  measured on the characterize tests' 2048² detectors (0° and 90°, with the fitted
  source model; misses / false pixels / detectors with 0.99 in every region): seeds
  21, 22 55 / 712 / 2 of 4 → 46 / 713 / 4 of 4; seeds 23-26 (where ``track_sigma`` and
  the weights were chosen, from a logistic fit on their pixels) 143 / 1,480 / 2 of 8 →
  131 / 1,471 / 2 of 8; seeds 27-30, held out, 148 / 1,402 / 2 of 8 → 135 / 1,378 / 3
  of 8.  ``track_sigma`` 2.05 buys 12 more pixels at 200 more false ones on seeds
  23-26 (above astroscrappy's on 3 detectors); 2.25 loses 26 and saves 180;
* pixels of ``void_planes`` (BAD, NO_DATA) and non-finite ones never serve as neighbours:
  a dead column would otherwise make its neighbours look sharp, and each replaced
  neighbour would make the next column look sharp in turn;
* more than ``n_cr_pixel_max`` flagged pixels raises `TooManyCosmicRaysError`.

Finally the CR plane is set, and unless ``keep_crs`` the pixels are interpolated from
their good neighbours (iterative 8-neighbour weighted mean, inwards) and get INTRP.
No state is kept between calls.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ._convolve import bitmask, clip_index, connected_components_8, plane_map
from ._cr_track import track_distance
from ._errors import TooManyCosmicRaysError
from ._source_model import source_model

__all__ = [
    "CosmicRayConfig",
    "CosmicRayResult",
    "find_cosmic_rays",
    "interpolate_pixels",
    "source_model",
]

_log = logging.getLogger(__name__)

# Neighbour pairs: (dy1, dx1), (dy2, dx2), direction class (0 = vertical, 1 = horizontal,
# 2 = diagonal).
_PAIRS = (((-1, 0), (1, 0), 0), ((0, -1), (0, 1), 1), ((1, -1), (-1, 1), 2),
          ((-1, -1), (1, 1), 2))
_VOID = np.float32(1e30)
_NEIGHBOURS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)


@dataclass(slots=True)
class CosmicRayConfig:
    """Options of `find_cosmic_rays` (LSST ``FindCosmicRaysConfig`` defaults).

    Attributes
    ----------
    n_cr_pixel_max : int
        Maximum number of CR pixels before `TooManyCosmicRaysError` (``nCrPixelMax``).
    min_sigma : float
        Excess over a neighbour-pair mean, in units of the pixel noise (``minSigma``).
    min_dn : float
        Minimum summed excess of one CR, counts (``min_DN``).
    cond3_fac : float
        Noise allowance in the PSF-sharpness test (``cond3_fac``).
    cond3_fac2 : float
        Scale of the PSF neighbour/centre ratio (``cond3_fac2``).
    niteration : int
        Passes that extend CRs to contaminated neighbours (``niteration``).
    bad_planes : tuple of str
        Planes whose pixels are never CRs (condition 4).
    void_planes : tuple of str
        Planes whose pixels are never used as neighbours (dead columns, no data).
    extend_sigma : float
        Noise threshold of the extension passes (LSST: ``min_sigma / 2``); in the
        ``"local"`` mode, that of a neighbour with 2 or 3 CR neighbours (see
        ``flanked_sigma``, ``lone_sigma``).
    extend_mode : str
        ``"local"``: a neighbour's excess over the median of its box's ring;
        ``"pairs"``: conditions 2 and 3 against neighbour-pair means (see module docstring).
    extend_box : int
        Odd box size of the ``"local"`` background.
    saturated_planes : tuple of str
        Planes of saturated pixels (bleed trails).
    saturated_grow : int
        Pixels within this many rows and columns of a saturated one are never CRs: the
        charge spilled past a trail's last full-well pixel is a step sharper than the PSF
        (on a 4k² simulated detector 8 such tips were flagged).  0 turns this off.
    flanked_sigma : float
        ``"local"`` extension threshold of a neighbour with at least ``flanked_count``
        CR pixels among its 8 neighbours.
    flanked_count : int
        See ``flanked_sigma``.
    lone_sigma : float
        ``"local"`` extension threshold of a neighbour with at most ``lone_count`` CR
        pixels among its 8 neighbours.
    lone_count : int
        See ``lone_sigma``; neighbours between the two counts use ``extend_sigma``.
    extend_cond3_fac2 : float
        ``"local"`` extension: the ``cond3_fac2`` of its sharpness test along directions
        whose two pixels are not CRs (through a CR pixel ``cond3_fac2`` applies).
    model_error : float
        With a source ``model`` (see `find_cosmic_rays`): its assumed error as a fraction of
        its value, added in quadrature to the pixel noise in every test.
    ring_min_sigma : float
        ``"local"`` extension: the median of the box's ring is a neighbour's background
        only where it exceeds this many times the noise; elsewhere the background is the
        image median (and the model).
    track_box : int
        Odd box size of the track pass's line fit; 0 turns the pass off (``"local"``
        mode only).
    track_min_pixels : int
        CR pixels (of positive light) a box needs for a line.
    track_width : float
        Largest ratio of the minor to the major variance of those pixels for a line.
    track_sigma : float
        Track pass: a pixel whose charge estimate (its excess and the charge its line
        puts in it, averaged; in σ) exceeds this, less ``track_neighbour_slope`` per CR
        pixel among its 8 neighbours, is a CR.
    track_neighbour_slope : float
        See ``track_sigma``.
    track_charge_spread : float
        Track pass: error of the charge the line puts in a pixel, in units of that charge
        (at least 1σ), in the average with the pixel's own excess.
    track_diffusion : float
        Track pass: σ of the Gaussian spread of a track's charge across its line, pixels.
    track_min_sigma : float
        Track pass: a neighbour joins only with an excess above this many σ.
    beside_intrp : bool
        The first pass also tests pixels beside an INTRP one, a pair through a void or
        INTRP pixel being its other pixel (see the module docstring).
    """

    n_cr_pixel_max: int = 10000
    min_sigma: float = 6.0
    min_dn: float = 150.0
    cond3_fac: float = 2.5
    cond3_fac2: float = 0.6
    niteration: int = 3
    bad_planes: tuple[str, ...] = ("BAD", "INTRP", "SAT", "NO_DATA")
    void_planes: tuple[str, ...] = ("BAD", "NO_DATA")
    extend_sigma: float = 2.5
    extend_mode: str = "local"
    extend_box: int = 5
    saturated_planes: tuple[str, ...] = ("SAT",)
    saturated_grow: int = 2
    flanked_sigma: float = 1.9
    flanked_count: int = 4
    lone_sigma: float = 3.0
    lone_count: int = 1
    extend_cond3_fac2: float = 0.75
    model_error: float = 0.01
    ring_min_sigma: float = 1.0
    track_box: int = 5
    track_min_pixels: int = 3
    track_width: float = 0.15
    track_sigma: float = 2.15
    track_neighbour_slope: float = 0.2
    track_charge_spread: float = 1.0
    track_diffusion: float = 0.3
    track_min_sigma: float = 1.0
    beside_intrp: bool = True


@dataclass(frozen=True, slots=True, eq=False)
class CosmicRayResult:
    """Output of `find_cosmic_rays`.

    Attributes
    ----------
    n_cosmic_rays : int
        Number of 8-connected CRs.
    y, x : ndarray
        Pixel indices of every CR pixel.
    background : float
        Background level used (image median), counts.
    interpolated : bool
        True if the pixels were replaced in the image.
    candidates : tuple of ndarray or None
        ``(y, x)`` of the usable pixels that passed condition 2 (whatever their sign):
        the ``candidates`` argument of a later call on the same exposure.
    """

    n_cosmic_rays: int
    y: np.ndarray
    x: np.ndarray
    background: float
    interpolated: bool
    candidates: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def n_pixels(self) -> int:
        """Number of CR pixels."""
        return int(self.y.size)



def _psf_thresholds(kernel: np.ndarray, fac2: float) -> np.ndarray:
    k = np.asarray(kernel, dtype=np.float64)
    cy, cx = k.shape[0] // 2, k.shape[1] // 2
    c = k[cy, cx]
    vert = 0.5 * (k[cy - 1, cx] + k[cy + 1, cx])
    horiz = 0.5 * (k[cy, cx - 1] + k[cy, cx + 1])
    diag = 0.25 * (k[cy - 1, cx - 1] + k[cy - 1, cx + 1] + k[cy + 1, cx - 1]
                   + k[cy + 1, cx + 1])
    return fac2 * np.array([vert, horiz, diag]) / c


def _psf_side_thresholds(kernel: np.ndarray, fac2: float) -> np.ndarray:
    """``fac2`` times the PSF's value two pixels from its centre over one pixel's.

    Per direction class (as `_psf_thresholds`): on a star centred beside a pixel, the
    pixel's neighbour on the far side holds at least that share of it.
    """
    k = np.asarray(kernel, dtype=np.float64)
    cy, cx = k.shape[0] // 2, k.shape[1] // 2
    if min(cy, cx) < 2:
        return np.full(3, fac2)

    def ratio(dy, dx):
        return 0.5 * (k[cy + 2 * dy, cx + 2 * dx] / k[cy + dy, cx + dx]
                      + k[cy - 2 * dy, cx - 2 * dx] / k[cy - dy, cx - dx])

    return fac2 * np.array([ratio(1, 0), ratio(0, 1), 0.5 * (ratio(1, 1) + ratio(1, -1))])


def _is_cr(v, var, yy, xx, thres, min_sigma, fac):
    """Conditions 2 and 3 at the given interior pixels; returns (flag, estimate)."""
    c = v[yy, xx]
    sd = np.sqrt(np.maximum(var[yy, xx], 0))
    flag = np.zeros(yy.size, bool)
    est = np.full(yy.size, np.nan, dtype=np.float32)
    cond2 = np.zeros(yy.size, bool)
    for (dy1, dx1), (dy2, dx2), d in _PAIRS:
        a, b = v[yy + dy1, xx + dx1], v[yy + dy2, xx + dx2]
        mean = 0.5 * (a + b)
        cond2 |= c - mean > min_sigma * sd
        sd_mean = 0.5 * np.sqrt(np.maximum(var[yy + dy1, xx + dx1] + var[yy + dy2, xx + dx2], 0))
        hit = (thres[d] * (c - fac * sd) > mean + fac * sd_mean) & ~flag
        est = np.where(hit, mean, est)
        flag |= hit
    ok = flag & cond2 & (c > 0)
    return ok, est


def _flank_share(distance, diffusion):
    """Charge of a pixel ``distance`` from a track's line, per unit of its neighbour's.

    The track's charge is spread across the line by a Gaussian of ``diffusion`` px and
    shared between the pixel centres at 1 px steps across it; the neighbour is the pixel
    the line crosses beside this one (the rest of the charge).
    """
    d = np.clip(distance, 0.0, 1.5)
    g0, g1, g2 = (np.exp(-0.5 * (z / diffusion) ** 2) for z in (d, 1.0 - d, 2.0 - d))
    share = g0 / (g0 + g1 + g2)
    return share / np.maximum(1.0 - share, 0.3)


def _row_nanmedian(values):
    """Median of each row's finite values (0 for a row without any), as np.nanmedian.

    One sort per row (NaN sorts last) and the middle one or two values by the finite
    count: several times faster than np.nanmedian's masked-array path on short rows.
    """
    s = np.sort(np.where(np.isfinite(values), values, np.nan), axis=1)
    n = np.isfinite(s).sum(axis=1)
    rows = np.arange(s.shape[0])
    lo = s[rows, np.maximum(n - 1, 0) // 2]
    hi = s[rows, np.maximum(n, 1) // 2 - (n == 0)]
    return np.where(n > 0, 0.5 * (lo + hi), 0.0)


def _working_copy(image, mask, bkg, void_bits, model=None, block=64, marks=(), clear=0):
    """Working copy ``v`` = image − bkg (− model) (float32), and the pixels of ``marks``.

    Unusable pixels (``void_bits`` such as dead columns, NaN) get a huge value in ``v``:
    any neighbour pair that contains one then fails both tests, so a dead column cannot
    make its neighbours look sharp (nor can a replaced neighbour cascade sideways).  Works
    on row blocks that stay in cache; there it also lists the flat indices of the pixels
    with any bit of each of ``marks`` (one array per entry; empty for 0) and clears the
    bits ``clear`` in ``mask`` (in place).
    """
    h, w = image.shape
    v = np.empty((h, w), np.float32)
    void = np.uint32(void_bits)
    watched = np.uint32(void_bits | clear | np.bitwise_or.reduce([0, *marks]))
    found = [[] for _ in marks]
    for r0 in range(0, h, block):
        vb = v[r0:r0 + block]
        np.subtract(image[r0:r0 + block], np.float32(bkg), out=vb, casting="unsafe")
        if model is not None:
            vb -= model[r0:r0 + block]
        np.copyto(vb, _VOID, where=~np.isfinite(vb))  # (no index list, as vb[...] = makes)
        if not watched:
            continue
        # few pixels carry these planes: their indices, then which planes
        mb = mask[r0:r0 + block] & watched
        nz = mb != 0  # (np.nonzero is several times faster on bool than on uint32)
        if not nz.any():
            continue
        flat = np.flatnonzero(nz)
        bits = mb.ravel()[flat]
        if clear:
            cleared = flat[(bits & np.uint32(clear)) != 0] + r0 * w
            mask.ravel()[cleared] &= np.uint32(~clear & 0xFFFFFFFF)
        if void_bits:
            vb.ravel()[flat[(bits & void) != 0]] = _VOID
        for k, mark in enumerate(marks):
            if mark:
                found[k].append(flat[(bits & np.uint32(mark)) != 0] + r0 * w)
    marked = [np.concatenate(f) if f else np.zeros(0, np.int64) for f in found]
    return v, marked


def _grown(flat, h, w, offsets):
    """Sorted flat indices of the pixels at ``offsets`` (clipped to the image) from ``flat``."""
    if flat.size == 0:
        return flat.astype(np.int64)
    y, x = flat // w, flat % w
    grown = [clip_index(y + dy, h - 1) * w + clip_index(x + dx, w - 1) for dy, dx in offsets]
    return np.unique(np.concatenate(grown))


def _member(flat, table):
    """Which of ``flat`` are in the sorted ``table``."""
    if table.size == 0:
        return np.zeros(flat.shape, bool)
    i = np.minimum(np.searchsorted(table, flat), table.size - 1)
    return table[i] == flat


def _condition2(v, var, min_sigma, block=64):
    """Return (y, x) of the usable interior pixels of ``v`` passing condition 2 (any sign)."""
    h, w = v.shape
    ys, xs = [], []
    lim = np.empty((block, w - 2), np.float32)
    low = np.empty((block, w - 2), np.float32)
    pair = np.empty((block, w - 2), np.float32)
    for r0 in range(1, h - 1, block):
        r1 = min(r0 + block, h - 1)
        m = r1 - r0
        c = v[r0:r1, 1:-1]
        # 2·(c − min_sigma·σ) > (a + b) for one of the four neighbour pairs, i.e. above
        # the smallest pair sum; float32 buffers reused across blocks
        li, lo, pa = lim[:m], low[:m], pair[:m]
        np.maximum(var[r0:r1, 1:-1], np.float32(0), out=li)
        np.sqrt(li, out=li)
        li *= np.float32(-2.0 * min_sigma)
        li += c
        li += c
        up, down = v[r0 - 1:r1 - 1], v[r0 + 1:r1 + 1]
        mid = v[r0:r1]
        np.add(up[:, 1:-1], down[:, 1:-1], out=lo)
        np.add(mid[:, :-2], mid[:, 2:], out=pa)
        np.minimum(lo, pa, out=lo)
        np.add(down[:, :-2], up[:, 2:], out=pa)
        np.minimum(lo, pa, out=lo)
        np.add(up[:, :-2], down[:, 2:], out=pa)
        np.minimum(lo, pa, out=lo)
        y, x = np.nonzero(li > lo)
        # usable (void pixels hold _VOID), on the few candidates only
        keep = c[y, x] < _VOID
        ys.append(y[keep] + r0)
        xs.append(x[keep] + 1)
    if not ys:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(ys).astype(np.int64), np.concatenate(xs).astype(np.int64)


class _ModelVariance:
    """The variance plus ``(error·model)²``, evaluated only where indexed.

    ``var[index]`` as for an array, with no full-image copy.
    """

    def __init__(self, var, model, error):
        self.var, self.model, self.error = var, model, np.float32(error)

    def __getitem__(self, index):
        return self.var[index] + np.square(self.error * self.model[index])


def _with_model_candidates(candidates, v, var, model, min_sigma):
    """Return ``candidates`` with the pixels the model makes pass condition 2.

    Those are the interior pixels where ``model`` exceeds half the typical sky noise that
    pass condition 2 in ``v`` (which holds the image less the model).
    """
    h, w = v.shape
    sky_sd = np.sqrt(max(float(np.median(var.var[::16, ::16])), 0.0))
    flat = np.flatnonzero(model > 0.5 * sky_sd)  # (flat: several times np.nonzero's speed)
    my, mx = flat // w, flat % w
    inside = (my > 0) & (my < h - 1) & (mx > 0) & (mx < w - 1)
    my, mx = my[inside], mx[inside]
    c = v[my, mx]
    lim = c - min_sigma * np.sqrt(np.maximum(var[my, mx], 0))
    cond2 = np.zeros(my.size, bool)
    for (dy1, dx1), (dy2, dx2), _ in _PAIRS:
        cond2 |= lim > 0.5 * (v[my + dy1, mx + dx1] + v[my + dy2, mx + dx2])
    keep = cond2 & (c < _VOID)
    flat = np.union1d(np.asarray(candidates[0], np.int64) * w + np.asarray(candidates[1], np.int64),
                      my[keep].astype(np.int64) * w + mx[keep])
    return flat // w, flat % w


def find_cosmic_rays(
    image: np.ndarray,
    mask: np.ndarray,
    variance: np.ndarray,
    psf,
    *,
    config: CosmicRayConfig | None = None,
    keep_crs: bool = False,
    planes: Mapping[str, int] | None = None,
    xy0: tuple[int, int] = (0, 0),
    candidates: tuple[np.ndarray, np.ndarray] | None = None,
    model: np.ndarray | None = None,
) -> CosmicRayResult:
    """Find cosmic rays, set the CR plane and optionally interpolate over them.

    Parameters
    ----------
    image : ndarray
        (H, W) float image (counts); modified in place only if ``keep_crs`` is False.
    mask : ndarray
        (H, W) uint32 mask; the CR plane is cleared and rewritten, INTRP is added to
        interpolated pixels.
    variance : ndarray
        (H, W) variance, counts².
    psf : Psf or ndarray
        PSF model (its ``kernel_image`` at the image centre is used) or a kernel image.
    config : CosmicRayConfig, optional
        Options; LSST defaults when None.
    keep_crs : bool
        If True, only the mask is set and the pixel values are left alone.
    planes : mapping, optional
        ``{plane name: bit number}``; LSST numbering when None.
    xy0 : tuple of int
        Parent coordinates of pixel (0, 0) (where the PSF is evaluated).
    candidates : tuple of ndarray, optional
        ``(y, x)`` of the pixels passing condition 2, as returned in
        `CosmicRayResult.candidates` by an earlier call on the same exposure (same
        variance and void planes); the full-image condition-2 pass is then skipped.
        Condition 2 compares a pixel with the means of its neighbour pairs, which a
        smooth background subtracted between the calls leaves unchanged (on the bench's
        4k² detectors the three calls of characterizeImage found identical sets); a
        changed image other than by a smooth background needs a fresh pass (None).
        With a ``model``, condition 2 is evaluated afresh where the model exceeds half the
        pixel noise, and those pixels are added.
    model : ndarray, optional
        (H, W) light of the detected sources above the background (counts), such as
        `source_model` makes.  Every test then judges the image less the model, with
        ``config.model_error`` times the model added in quadrature to the noise: a CR on a
        star stands out against the star's model where against the sky it is not sharper
        than the PSF, while a star's core, the model's own, stays unflagged.

    Returns
    -------
    CosmicRayResult
        Number of CRs and their pixels.

    Raises
    ------
    TooManyCosmicRaysError
        If more than ``config.n_cr_pixel_max`` pixels are flagged; image and mask are then
        left as they were (apart from the cleared CR plane).
    """
    config = config or CosmicRayConfig()
    planes = plane_map(planes)
    h, w = image.shape
    cr_bit = bitmask(planes, ["CR"])
    intrp_bit = bitmask(planes, ["INTRP"])
    bad_bits = bitmask(planes, config.bad_planes)
    centre = (xy0[0] + 0.5 * (w - 1), xy0[1] + 0.5 * (h - 1))
    kernel = psf if isinstance(psf, np.ndarray) else psf.kernel_image(centre)
    thres = _psf_thresholds(kernel, config.cond3_fac2)
    thres_clean = _psf_thresholds(kernel, config.extend_cond3_fac2)
    thres_side = _psf_side_thresholds(kernel, config.cond3_fac2)

    sample = image[::4, ::4]
    sample = sample[np.isfinite(sample)]
    bkg = float(np.median(sample)) if sample.size else 0.0
    var = np.asarray(variance, dtype=np.float32)
    if model is not None:
        model = np.asarray(model, dtype=np.float32)
        var = _ModelVariance(var, model, config.model_error)
    sat_bits = np.uint32(bitmask(planes, config.saturated_planes))
    v, marked = _working_copy(image, mask, bkg, bitmask(planes, config.void_planes), model,
                              marks=(int(sat_bits), intrp_bit), clear=cr_bit)
    if candidates is None:
        candidates = _condition2(v, var, config.min_sigma)
    elif model is not None:
        candidates = _with_model_candidates(candidates, v, var, model, config.min_sigma)
    yy, xx = (np.asarray(a, dtype=np.int64) for a in candidates)
    positive = v[yy, xx] > 0  # void pixels hold _VOID: `usable` drops them
    yy, xx = yy[positive], xx[positive]
    flagged = np.zeros((h, w), bool)

    def light(py, px):
        """Image less background (and model) at the given pixels, float64."""
        value = image[py, px] - bkg
        if model is not None:
            value = value - model[py, px]
        return value.astype(np.float64)

    grow = int(config.saturated_grow)

    # pixels near a saturated one (a bleed trail's tip) and beside an INTRP one, as sorted
    # flat indices: one look-up per candidate instead of a gather per offset
    sat_grow = range(-grow, grow + 1)
    near_sat = _grown(marked[0], h, w, [(dy, dx) for dy in sat_grow for dx in sat_grow])
    beside_intrp_px = _grown(marked[1], h, w, _NEIGHBOURS)

    def usable(py, px, beside_intrp=False):
        ok = v[py, px] < _VOID
        if bad_bits:
            ok &= (mask[py, px] & np.uint32(bad_bits)) == 0
        if (sat_bits and grow > 0) or (intrp_bit and not beside_intrp):
            flat = py * w + px
            if sat_bits and grow > 0:
                ok &= ~_member(flat, near_sat)
            if intrp_bit and not beside_intrp:
                ok &= ~_member(flat, beside_intrp_px)
        return ok

    def judged(values, qy, qx):
        """Return which pixels may serve in the extension's pairs (not void nor INTRP)."""
        ok = values < _VOID
        if intrp_bit:
            ok &= (mask[qy, qx] & np.uint32(intrp_bit)) == 0
        return ok

    def shifted(py, px, dy, dx):
        """Return the indices at (dy, dx) clipped to the image, and which are inside it."""
        qy, qx = py + dy, px + dx
        inside = (qy >= 0) & (qy < h) & (qx >= 0) & (qx < w)
        return clip_index(qy, h - 1), clip_index(qx, w - 1), inside

    def check(py, px, min_sigma, fac):
        keep = usable(py, px) & ~flagged[py, px]
        py, px = py[keep], px[keep]
        ok, est = _is_cr(v, var, py, px, thres, min_sigma, fac)
        py, px = py[ok], px[ok]
        v[py, px] = est[ok]
        flagged[py, px] = True
        if flagged_count[0] + py.size > config.n_cr_pixel_max:
            raise TooManyCosmicRaysError(
                f"Too many CR pixels (max {config.n_cr_pixel_max})"
            )
        flagged_count[0] += py.size
        return py, px

    def check_beside_intrp():
        """Conditions 2 and 3 at the pixels beside an INTRP one (see the module docstring)."""
        py, px = beside_intrp_px // w, beside_intrp_px % w
        keep = (py > 0) & (py < h - 1) & (px > 0) & (px < w - 1)
        py, px = py[keep], px[keep]
        # above its noise allowance (condition 3 needs it unless a neighbour is far
        # below the sky): few of these pixels are
        c = v[py, px]
        keep = (c > config.cond3_fac * np.sqrt(np.maximum(variance[py, px], 0))) & (c < _VOID)
        py, px = py[keep], px[keep]
        keep = usable(py, px, beside_intrp=True) & ~flagged[py, px]
        if model is not None:
            # on the sky only: beside a bad column a star's model is fitted to one side
            keep &= model[py, px] ** 2 < variance[py, px]
        py, px = py[keep], px[keep]
        c = v[py, px]
        sd = np.sqrt(np.maximum(var[py, px], 0))
        hit_any = np.zeros(py.size, bool)
        cond2 = np.zeros(py.size, bool)
        est = np.full(py.size, np.nan, dtype=np.float32)
        fac = config.cond3_fac
        for (dy1, dx1), (dy2, dx2), d in _PAIRS:
            ay, ax, by, bx = py + dy1, px + dx1, py + dy2, px + dx2
            va, vb = v[ay, ax], v[by, bx]
            a_ok, b_ok = judged(va, ay, ax), judged(vb, by, bx)
            both = a_ok & b_ok
            var_a, var_b = var[ay, ax], var[by, bx]
            mean = np.where(both, 0.5 * (va + vb), np.where(a_ok, va, vb))
            sd_mean = np.sqrt(np.maximum(np.where(both, 0.25 * (var_a + var_b),
                                                  np.where(a_ok, var_a, var_b)), 0))
            # a pair through a void or INTRP pixel is its other pixel, two pixels from
            # a star centred on the void one: the PSF's two-pixel ratio
            t = np.where(both, thres[d], thres_side[d])
            pair = a_ok | b_ok
            cond2 |= pair & (c - mean > config.min_sigma * sd)
            hit = pair & (t * (c - fac * sd) > mean + fac * sd_mean) & ~hit_any
            est = np.where(hit, mean, est)
            hit_any |= hit
        ok = hit_any & cond2 & (c > 0) & (c < _VOID)
        flag(py[ok], px[ok], est[ok])
        return py[ok], px[ok]

    def local_excess(py, px):
        """Return (light, local background, noise) of the pixels, as the extension sees them."""
        r = config.extend_box // 2
        offs = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)
                if max(abs(dy), abs(dx)) == r]  # the ring of the box: away from the track
        qy = clip_index(py[:, None] + np.array([o[0] for o in offs])[None, :], h - 1)
        qx = clip_index(px[:, None] + np.array([o[1] for o in offs])[None, :], w - 1)
        ring = light(qy, qx)
        ring[flagged[qy, qx] | (v[qy, qx] >= _VOID)] = np.nan
        local = _row_nanmedian(ring)
        sd = np.sqrt(np.maximum(var[py, px], 0))
        # The ring's median is the local background only where it shows light the
        # background and model lack (a galaxy, a faint star, a star's slope without a
        # model); elsewhere it adds its noise and the track's unflagged charge in the ring.
        local = np.where(local > config.ring_min_sigma * sd, local, 0.0)
        return light(py, px), local, sd

    def extend_local(py, px):
        """Neighbours whose own excess over their local background exceeds extend_sigma."""
        keep = usable(py, px, beside_intrp=True) & ~flagged[py, px]
        py, px = py[keep], px[keep]
        if py.size == 0:
            return py, px
        value, local, sd = local_excess(py, px)
        excess = value - local
        # The threshold falls with the number of CR pixels among the 8 neighbours: a pixel
        # flanked by a track (the side of a track running along the pixel edge) more
        # likely holds charge of it than one touching a single CR pixel (a track's end,
        # or noise beside a one-pixel hit).
        n_cr = np.zeros(py.size, np.int64)
        for dy, dx in _NEIGHBOURS:
            qy, qx, inside = shifted(py, px, dy, dx)
            n_cr += flagged[qy, qx] & inside
        limit = np.where(n_cr >= config.flanked_count, config.flanked_sigma,
                         np.where(n_cr <= config.lone_count, config.lone_sigma,
                                  config.extend_sigma))
        ok = excess > limit * sd
        # ... and sharper than the PSF along some direction, both relative to the sky
        # (condition 3 with cond3_fac = 0): on a star, a pixel's neighbours hold at least
        # psf_1/psf_0 of its sky-subtracted value, so a CR on a star does not spread into
        # its core.  (Relative to the local background instead, a pixel on a star's slope
        # looks sharp: the ring median takes most of the star's light away; on 4k²
        # simulated detectors whole 3x3 star cores were flagged so.)
        # Along a direction whose two pixels hold no CR the ratio may come closer to the
        # PSF's own (``extend_cond3_fac2``): a CR's faint pixels on a bright star's slope
        # are then found.  Through a CR pixel the pair holds a replaced value, which on a
        # star's slope is too low (the ring median): there a pixel next to the track
        # would look sharp, so ``cond3_fac2`` stays.
        # (on the detector's outermost rows and columns a pair with a pixel outside is
        # its pixel inside)
        ok &= sharp_beside(py, px, value)
        py, px = py[ok], px[ok]
        flag(py, px, local[ok])
        return py, px

    def sharp_beside(py, px, value):
        """Return which pixels pass the extension's sharpness test (condition 3, see above)."""
        sharp = np.zeros(py.size, bool)
        for (dy1, dx1), (dy2, dx2), d in _PAIRS:
            ay, ax, a_in = shifted(py, px, dy1, dx1)
            by, bx, b_in = shifted(py, px, dy2, dx2)
            va, vb = v[ay, ax], v[by, bx]
            a_in &= judged(va, ay, ax)
            b_in &= judged(vb, by, bx)
            pair = np.where(a_in & b_in, 0.5 * (va + vb), np.where(a_in, va, vb))
            clean = ~((flagged[ay, ax] & a_in) | (flagged[by, bx] & b_in))
            sharp |= (a_in | b_in) & (np.where(clean, thres_clean[d], thres[d]) * value > pair)
        return sharp

    def flag(py, px, estimate):
        """Flag the pixels, their working values replaced by ``estimate``."""
        v[py, px] = np.asarray(estimate, dtype=np.float32)
        flagged[py, px] = True
        if flagged_count[0] + py.size > config.n_cr_pixel_max:
            raise TooManyCosmicRaysError(f"Too many CR pixels (max {config.n_cr_pixel_max})")
        flagged_count[0] += py.size

    def track_pass(fy, fx, first):
        """Judge the extension's pixels and the CRs' neighbours by their tracks' lines.

        By the charge the lines put in them (see the module docstring).

        ``fy[:first]``, ``fx[:first]`` are the first pass's pixels, kept whatever the
        line; returns the CR pixels.
        """
        ny, nx = neighbours(fy, fx, border=True)
        new = ~flagged[ny, nx]
        ny, nx = ny[new], nx[new]
        new = light(ny, nx) > config.track_min_sigma * np.sqrt(np.maximum(var[ny, nx], 0))
        ny, nx = ny[new], nx[new]
        new = usable(ny, nx, beside_intrp=True)
        py, px = np.concatenate([fy[first:], ny[new]]), np.concatenate([fx[first:], nx[new]])
        distance, count, width = track_distance(flagged, light, py, px,
                                                half=config.track_box // 2)
        line = (count >= config.track_min_pixels) & (width <= config.track_width)
        py, px, distance = py[line], px[line], distance[line]
        was = flagged[py, px]
        # the CR pixels among the 8 neighbours, and the brightest of them (in sigma): the
        # pixel the line crosses beside this one
        n_cr = np.zeros(py.size, np.int64)
        beside = np.zeros(py.size)
        for dy, dx in _NEIGHBOURS:
            qy, qx, inside = shifted(py, px, dy, dx)
            cr = flagged[qy, qx] & inside
            n_cr += cr
            q_sd = np.sqrt(np.maximum(var[qy, qx], 1e-30))
            beside = np.maximum(beside, np.where(cr, light(qy, qx) / q_sd, 0.0))
        # the charge the line puts here, and the pixel's own measure (noise 1 sigma),
        # averaged with weights by their errors (the expected charge's about its own size)
        expected = np.maximum(beside, 1.0) * _flank_share(distance, config.track_diffusion)
        weight = 1.0 / (config.track_charge_spread * np.maximum(expected, 1.0)) ** 2
        limit = config.track_sigma - config.track_neighbour_slope * n_cr
        value = light(py, px)
        sd = np.maximum(np.sqrt(np.maximum(var[py, px], 0)), 1e-30)

        def passes(excess):
            return (excess / sd + weight * expected) / (1.0 + weight) > limit

        # the excess is over the local background, which is 0 or positive: a pixel below
        # the limit without it stays below, so the ring's median is needed only above it
        above = passes(value) & (was | (value > config.track_min_sigma * sd))
        local = np.zeros(py.size)
        local[above] = local_excess(py[above], px[above])[1]
        ok = above & passes(value - local)
        # (a neighbour joins on the sky only: where the ring shows light, a star's core
        # beside a track could join)
        add = ~was & ok & (local == 0)
        drop = was & ~ok
        flagged[py[drop], px[drop]] = False
        v[py[drop], px[drop]] = value[drop]
        flagged_count[0] -= int(drop.sum())
        flag(py[add], px[add], local[add])
        keep = flagged[fy, fx]  # all but the dropped
        return np.concatenate([fy[keep], py[add]]), np.concatenate([fx[keep], px[add]])

    def neighbours(py, px, border=False):
        """Return the 8 neighbours of the pixels: interior ones, or all with ``border``."""
        ny = (py[:, None] + np.array([d[0] for d in _NEIGHBOURS])[None, :]).ravel()
        nx = (px[:, None] + np.array([d[1] for d in _NEIGHBOURS])[None, :]).ravel()
        e = 0 if border else 1
        inside = (ny >= e) & (ny < h - e) & (nx >= e) & (nx < w - e)
        flat = np.unique(ny[inside] * w + nx[inside])
        return flat // w, flat % w

    flagged_count = [0]
    found_y, found_x = [], []
    new_y, new_x = check(yy, xx, config.min_sigma, config.cond3_fac)
    if config.beside_intrp and beside_intrp_px.size:
        by, bx = check_beside_intrp()
        new_y, new_x = np.concatenate([new_y, by]), np.concatenate([new_x, bx])
    for _ in range(50):
        if new_y.size == 0:
            break
        found_y.append(new_y)
        found_x.append(new_x)
        ny, nx = neighbours(new_y, new_x)
        new_y, new_x = check(ny, nx, config.min_sigma, config.cond3_fac)
    fy = np.concatenate(found_y) if found_y else np.zeros(0, np.int64)
    fx = np.concatenate(found_x) if found_x else np.zeros(0, np.int64)

    # Condition 1: drop faint groups (restore their values).
    n_cr = 0
    if fy.size:
        n_cr, fl = connected_components_8(fy, fx, w)
        excess = np.bincount(fl, weights=light(fy, fx), minlength=n_cr)
        faint = excess[fl] < config.min_dn
        flagged[fy[faint], fx[faint]] = False
        v[fy[faint], fx[faint]] = light(fy[faint], fx[faint])
        fy, fx = fy[~faint], fx[~faint]
        flagged_count[0] = int(fy.size)
        first = fy.size
        # Extend to contaminated neighbours.
        for _ in range(config.niteration):
            ny, nx = neighbours(fy, fx, border=config.extend_mode == "local")
            if config.extend_mode == "local":
                add_y, add_x = extend_local(ny, nx)
            else:
                add_y, add_x = check(ny, nx, config.extend_sigma, 0.0)
            if add_y.size == 0:
                break
            fy, fx = np.concatenate([fy, add_y]), np.concatenate([fx, add_x])
        if config.extend_mode == "local" and config.track_box > 0 and fy.size:
            fy, fx = track_pass(fy, fx, first)
        n_cr = connected_components_8(fy, fx, w)[0] if fy.size else 0

    cy, cx = fy, fx
    if cr_bit:
        mask[cy, cx] |= np.uint32(cr_bit)
    if not keep_crs and cy.size:
        interpolate_pixels(image, mask, cy, cx, planes=planes)
        if intrp_bit:
            mask[cy, cx] |= np.uint32(intrp_bit)
    _log.info("Identified %d cosmic rays.", n_cr)
    return CosmicRayResult(n_cosmic_rays=int(n_cr), y=cy, x=cx, background=bkg,
                           interpolated=not keep_crs, candidates=candidates)


def interpolate_pixels(
    image: np.ndarray,
    mask: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    *,
    planes: Mapping[str, int] | None = None,
    bad_planes: tuple[str, ...] = ("BAD", "SAT", "NO_DATA"),
) -> None:
    """Replace the given pixels, in place, by a weighted mean of their good neighbours.

    Works inwards: each pass fills the pixels that have at least one good (or already
    filled) 8-neighbour, weighting the 4-connected neighbours 1 and the diagonal ones
    1/2.  Pixels that never get a neighbour are set to the median of the image.
    """
    h, w = image.shape
    bad_bits = bitmask(planes, bad_planes)
    todo = np.zeros((h, w), bool)
    todo[y, x] = True
    py, px = np.asarray(y), np.asarray(x)
    while py.size:
        num = np.zeros(py.size)
        den = np.zeros(py.size)
        for dy, dx in _NEIGHBOURS:
            qy, qx = py + dy, px + dx
            inside = (qy >= 0) & (qy < h) & (qx >= 0) & (qx < w)
            qy, qx = np.clip(qy, 0, h - 1), np.clip(qx, 0, w - 1)
            good = inside & ~todo[qy, qx]
            if bad_bits:
                good &= (mask[qy, qx] & np.uint32(bad_bits)) == 0
            wgt = (0.5 if dy and dx else 1.0) * good
            num += wgt * image[qy, qx]
            den += wgt
        done = den > 0
        if not done.any():
            image[py, px] = np.median(image[::4, ::4])
            break
        image[py[done], px[done]] = num[done] / den[done]
        todo[py[done], px[done]] = False
        py, px = py[~done], px[~done]
