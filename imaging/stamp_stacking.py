"""Pixel-wise stacking of bright-star stamps in sub-boxes, with bounded memory.

Design (LSST's ``StackBrightStarsTask``, science.md §4.1, plus a memory bound):

1. **Inventory.** Every source (one detector's `~imaging.stamps.BrightStarStamps`, read
   through a `StampSource`) is read once for its centre pixel only: that gives the number of
   stamps and their magnitudes (for the magnitude cut) without reading pixels.
2. **Sub-boxes.** The stamp grid is tiled by ``subregion_size`` boxes. Each box is read from
   every source (only that box, through the formatters' ``bbox``/``indices`` partial reads)
   in horizontal strips whose height keeps the stack cube (stamps × strip pixels, float32)
   under ``max_cube_bytes``, and the statistic works through it in chunks whose temporaries
   take about as much again: peak memory is bounded by the budget, not by the stamp count.
   With ``num_threads`` > 1 each strip's sources are read in that many threads, each into
   its own columns of the one cube, and the statistic's pixel rows are split among them: the
   memory is still the one cube, and the result is bit for bit the serial one (same strips,
   every pixel computed alone from its row). The reads release the GIL in their I/O and
   decompression (`imaging._shard_reader`), the statistic's kernel entirely.
3. **Statistic** along the stamp axis, pixel by pixel, over the stamps whose pixel is finite
   and free of the bad mask planes: ``MEAN``, ``MEDIAN`` (numpy's linear interpolation) or
   ``MEANCLIP``, afw's clipped mean: start from the median and 0.741 × the inter-quartile
   range, then ``num_iter`` times keep the values within ``num_sigma_clip`` of the centre and
   take their mean and standard deviation (a pixel stops iterating when fewer than 2 values
   stay or the width is 0; `imaging._convolve.clipped_stats` is the 1-D reference). The
   kernel is `imaging._meanclip_kernel`: cache-sized pixel blocks, exact quartiles from a
   value histogram (no sort), then numba passes; its temporaries are one block, whatever
   the cube's size.
4. **Corrections** (the 2026 normalization): an optional per-stamp amplitude and polynomial
   background: a stamp pixel becomes ``(value - background(x, y)) / amplitude`` before the
   statistic.

No state outside a call; the stack and the per-pixel counts are the only full-size arrays.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .exposure import Exposure
from .geometry import Box
from .mask import Mask
from .stamps import DEFAULT_BAD_MASK_PLANES, BrightStarStamps

__all__ = [
    "DEFAULT_MAX_CUBE_BYTES",
    "STACKING_STATISTICS",
    "FileStampSource",
    "NoStampsError",
    "SourceInventory",
    "StackResult",
    "StackingConfig",
    "StampCorrections",
    "StampSource",
    "pixel_statistic",
    "polynomial_terms",
    "stack_stamps",
    "take_inventory",
]

STACKING_STATISTICS = ("MEANCLIP", "MEAN", "MEDIAN")
_CHUNK_VALUES = 1 << 21  # values per statistic chunk by default
#: Default budget of one stack cube: a 100² box of up to 10,000 stamps in one strip, so that
#: each (1, 100, 100) zarr chunk is decompressed once (a box cut into k strips decompresses
#: its chunks k times: at 128 MiB a focal plane's 6,751 stamps took 3 strips a box and the
#: gather spent 47 of its 77 s CPU reading). Peak RSS at 10,000 stamps of 275²: 634 MiB
#: (353 MiB at 128 MiB; `python -m bench extended_psf`).
DEFAULT_MAX_CUBE_BYTES = 384 << 20
#: What a stack reads of each stamp: the variance is not used.
_STACKED_PLANES = ("image", "mask")
_TEMPORARY_BYTES = 32  # bytes of statistic temporaries per value (sorted, float64, 2 cumsums)


class NoStampsError(LookupError):
    """Nothing to stack: no source holds a stamp that passes the selection."""


class StampSource(Protocol):
    """Where one collection of stamps is read from, in parts."""

    def read(
        self,
        *,
        bbox: Box | None = None,
        indices: Sequence[int] | None = None,
        planes: Sequence[str] | None = None,
    ) -> BrightStarStamps:
        """Read the stamps (only ``bbox`` of each, only ``indices``, only ``planes``).

        ``planes`` (of image, mask, variance; `None`: all) is what the caller needs; a
        source may return more.
        """
        ...


class FileStampSource:
    """Stamps in a FITS file or a zarr group on a local disk (`imaging.stamps_io`).

    The file is opened on the first read and kept open (a `~imaging.stamps_io.StampsReader`:
    its table parsed once) for every later read, from any thread; `close` releases it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._reader: Any = None
        self._opening = threading.Lock()

    def __repr__(self) -> str:
        return f"FileStampSource({self.path!r})"

    def read(
        self,
        *,
        bbox: Box | None = None,
        indices: Sequence[int] | None = None,
        planes: Sequence[str] | None = None,
    ) -> BrightStarStamps:
        """Read through a `~imaging.stamps_io.FitsStampsReader` or ``ZarrStampsReader``."""
        from .stamps_io import FitsStampsReader, ZarrStampsReader

        with self._opening:
            if self._reader is None:
                path = str(self.path)
                if path.rstrip("/").endswith(".zarr"):
                    self._reader = ZarrStampsReader(path, source=path)
                else:
                    self._reader = FitsStampsReader(path)
        return self._reader.read(bbox=bbox, indices=indices, planes=planes)

    def close(self) -> None:
        """Close the file, if it was opened (a later read opens it again)."""
        with self._opening:
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()


@dataclass(frozen=True)
class StackingConfig:
    """How to stack (the fields of LSST's ``StackBrightStarsConfig``, plus the memory budget).

    Raises
    ------
    ValueError
        On an unknown statistic, a non-positive size, clip or budget.
    """

    subregion_size: tuple[int, int] = (100, 100)
    statistic: str = "MEANCLIP"
    num_sigma_clip: float = 4.0
    num_iter: int = 3
    bad_mask_planes: tuple[str, ...] = DEFAULT_BAD_MASK_PLANES
    do_mag_cut: bool = False
    mag_limit: float = 18.0
    max_cube_bytes: int = DEFAULT_MAX_CUBE_BYTES
    num_threads: int = 1

    def __post_init__(self) -> None:
        if self.statistic not in STACKING_STATISTICS:
            raise ValueError(
                f"stacking statistic {self.statistic!r} not in {STACKING_STATISTICS}"
            )
        if len(self.subregion_size) != 2 or min(self.subregion_size) < 1:
            raise ValueError(f"subregion_size must be two positive ints, got {self.subregion_size}")
        if self.num_sigma_clip <= 0 or self.num_iter < 0:
            raise ValueError(
                f"num_sigma_clip must be > 0 and num_iter >= 0, got {self.num_sigma_clip}, "
                f"{self.num_iter}"
            )
        if self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}")
        if self.max_cube_bytes < 1 << 16:
            raise ValueError(f"max_cube_bytes must be at least 64 KiB, got {self.max_cube_bytes}")
        object.__setattr__(self, "subregion_size", tuple(int(v) for v in self.subregion_size))
        object.__setattr__(self, "bad_mask_planes", tuple(self.bad_mask_planes))


@dataclass
class SourceInventory:
    """What the inventory pass learnt about one source."""

    n_stamps: int
    magnitudes: np.ndarray
    selected: list[int]
    annulus_radii: tuple[int, int] | None
    #: Each stamp's annular flux as stored (NaN: unnormalized).
    annular_fluxes: np.ndarray


@dataclass
class StampCorrections:
    """Per-stamp amplitude and background of one source (the 2026 normalization).

    ``amplitude[i]`` divides stamp ``i`` after ``background[i] · polynomial_terms`` is
    subtracted; ``background`` may be `None` (no pedestal).
    """

    amplitude: np.ndarray
    background: np.ndarray | None = None
    order: int = 0


@dataclass
class StackResult:
    """The stacked model, the per-pixel number of stamps used, and the stamps stacked."""

    model: Exposure
    count: np.ndarray
    n_stamps: int
    n_sources: int
    peak_cube_bytes: int = 0
    inventory: list[SourceInventory] = field(default_factory=list)


def take_inventory(
    sources: Sequence[StampSource], shape: tuple[int, int], config: StackingConfig
) -> list[SourceInventory]:
    """Count the stamps of each source and apply the magnitude cut (reads one pixel each).

    With ``config.num_threads`` above 1 the sources are read in that many threads (a gather
    of a focal plane opens hundreds of inputs here); the result is in ``sources`` order.
    """
    center = Box(shape[1] // 2, shape[0] // 2, 1, 1)

    def inventory_of(source: StampSource) -> SourceInventory:
        stamps = source.read(bbox=center, planes=("image",))
        mags = np.asarray(stamps.getMagnitudes(), dtype=float)
        keep = np.ones(len(mags), dtype=bool)
        if config.do_mag_cut:
            keep &= mags < config.mag_limit  # LSST: selectByMag(magMax=mag_limit), strict
        radii = None
        if stamps.innerRadius is not None and stamps.outerRadius is not None:
            radii = (stamps.innerRadius, stamps.outerRadius)
        fluxes = np.array(
            [np.nan if f is None else f for f in stamps.getAnnularFluxes()], dtype=float
        )
        selected = [int(i) for i in np.flatnonzero(keep)]
        return SourceInventory(len(mags), mags, selected, radii, fluxes)

    if config.num_threads <= 1 or len(sources) < 2:
        return [inventory_of(source) for source in sources]
    with ThreadPoolExecutor(config.num_threads) as pool:
        return list(pool.map(inventory_of, sources))


def stamp_shape(sources: Sequence[StampSource]) -> tuple[int, int]:
    """Return the stamp grid shape ``(ny, nx)`` from the first source that has a stamp.

    Raises
    ------
    NoStampsError
        If no source has a stamp.
    """
    for source in sources:
        stamps = source.read(bbox=Box(0, 0, 1, 1))
        if len(stamps):
            return source.read(indices=[0])[0].stamp_im.image.shape
    raise NoStampsError(f"none of the {len(sources)} stamp collections holds a stamp")


def polynomial_terms(order: int, xs: np.ndarray, ys: np.ndarray, shape: tuple[int, int]) -> Any:
    """Background polynomial terms ``u^p v^q`` (``p + q <= order``) at pixels ``(xs, ys)``.

    ``u, v`` are the pixel coordinates scaled to [-1, 1] over the stamp ``shape``.
    """
    u = (np.asarray(xs, dtype=float) - (shape[1] - 1) / 2.0) / max((shape[1] - 1) / 2.0, 1.0)
    v = (np.asarray(ys, dtype=float) - (shape[0] - 1) / 2.0) / max((shape[0] - 1) / 2.0, 1.0)
    return np.stack([u**p * v**q for p in range(order + 1) for q in range(order + 1 - p)])


def stack_stamps(
    sources: Sequence[StampSource],
    config: StackingConfig | None = None,
    *,
    corrections: Sequence[StampCorrections | None] | None = None,
    shape: tuple[int, int] | None = None,
    inventory: list[SourceInventory] | None = None,
    progress: Callable[[Box], None] | None = None,
) -> StackResult:
    """Stack the stamps of ``sources`` pixel by pixel, one sub-box strip at a time.

    Parameters
    ----------
    sources : sequence of `StampSource`
        The stamp collections (e.g. one per detector and visit).
    config : `StackingConfig`, optional
        Statistic, clipping, bad planes, magnitude cut, sub-box size, memory budget.
    corrections : sequence of `StampCorrections` or `None`, optional
        Per-source amplitude and background of every stamp (indexed like the source's
        stamps); `None` stacks the stamps as stored (annulus-normalized).
    shape : `tuple` [`int`, `int`], optional
        Stamp grid (default: read from the first stamp).
    inventory : `list` [`SourceInventory`], optional
        A previous `take_inventory` result (saves the inventory reads).
    progress : callable, optional
        Called with each strip box once it is stacked.

    Returns
    -------
    result : `StackResult`
        ``model.image`` is NaN and ``model.mask`` has ``NO_DATA`` where no stamp contributed.

    Raises
    ------
    NoStampsError
        If no stamp passes the selection.
    """
    config = config or StackingConfig()
    shape = shape or stamp_shape(sources)
    inventory = inventory if inventory is not None else take_inventory(sources, shape, config)
    n_total = sum(len(inv.selected) for inv in inventory)
    if n_total == 0:
        raise NoStampsError(
            f"no stamp to stack in {len(sources)} collections"
            + (f" brighter than mag_limit {config.mag_limit}" if config.do_mag_cut else "")
        )
    if corrections is not None and len(corrections) != len(sources):
        raise ValueError(f"{len(corrections)} corrections for {len(sources)} sources")
    image = np.full(shape, np.nan, dtype=np.float32)
    count = np.zeros(shape, dtype=np.int32)
    threads = config.num_threads
    budget = config.max_cube_bytes  # one cube at a time, whatever the threads
    sub_w, sub_h = config.subregion_size
    strips = []
    for y0 in range(0, shape[0], sub_h):
        for x0 in range(0, shape[1], sub_w):
            width = min(sub_w, shape[1] - x0)
            height = min(sub_h, shape[0] - y0)
            rows = max(1, min(height, budget // (4 * n_total * width)))
            for sy in range(y0, y0 + height, rows):
                strips.append(Box(x0, sy, width, min(rows, y0 + height - sy)))
    peak = 0
    with ThreadPoolExecutor(threads) if threads > 1 else nullcontext() as pool:
        for strip in strips:
            cube = _read_cube(sources, inventory, strip, config, corrections, shape, pool)
            value, used = _strip_statistic(cube, config, budget // _TEMPORARY_BYTES, pool)
            peak = max(peak, cube.nbytes)
            del cube
            sl = strip.slices()
            image[sl] = value.reshape(strip.shape)
            count[sl] = used.reshape(strip.shape)
            if progress is not None:
                progress(strip)
    mask = Mask(shape)
    mask.set("NO_DATA", count == 0)
    return StackResult(
        Exposure(image, mask=mask), count, n_total, len(sources), peak, inventory
    )


def _strip_statistic(
    cube: np.ndarray, config: StackingConfig, chunk_values: int, pool: ThreadPoolExecutor | None
) -> tuple[np.ndarray, np.ndarray]:
    """`pixel_statistic` of a strip's cube; with a pool, its pixel rows split among threads.

    Every pixel's value is computed alone from its row of the same cube, so the split does
    not change a bit; each thread's temporaries take its share of ``chunk_values``.
    """
    def stat(rows: slice, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        return pixel_statistic(
            cube[rows],
            config.statistic,
            num_sigma_clip=config.num_sigma_clip,
            num_iter=config.num_iter,
            chunk_values=chunk,
        )

    n_pix = cube.shape[0]
    if pool is None or n_pix < 2:
        return stat(slice(None), chunk_values)
    parts = min(config.num_threads, n_pix)
    edges = np.linspace(0, n_pix, parts + 1).astype(int)
    chunk = max(1, chunk_values // parts)
    done = list(pool.map(lambda k: stat(slice(edges[k], edges[k + 1]), chunk), range(parts)))
    return np.concatenate([v for v, _ in done]), np.concatenate([c for _, c in done])


def _read_cube(
    sources: Sequence[StampSource],
    inventory: Sequence[SourceInventory],
    box: Box,
    config: StackingConfig,
    corrections: Sequence[StampCorrections | None] | None,
    shape: tuple[int, int],
    pool: ThreadPoolExecutor | None = None,
) -> np.ndarray:
    """Return the ``(pixels, stamps)`` float32 cube of ``box``; NaN marks unusable values.

    With a pool, the sources are read at once in its threads, each into its own columns.
    """
    n_total = sum(len(inv.selected) for inv in inventory)
    cube = np.empty((box.area, n_total), dtype=np.float32)
    terms: dict[int, Any] = {}
    for fix in corrections or ():
        if fix is not None and fix.background is not None and fix.order not in terms:
            ys, xs = np.mgrid[box.y0 : box.y1, box.x0 : box.x1]
            terms[fix.order] = polynomial_terms(fix.order, xs.ravel(), ys.ravel(), shape)
    jobs = []
    column = 0
    for k, inv in enumerate(inventory):
        if inv.selected:
            jobs.append((k, column))
            column += len(inv.selected)

    def fill(job: tuple[int, int]) -> None:
        k, first = job
        fix = corrections[k] if corrections is not None else None
        block = _read_block(sources[k], inventory[k], k, box, config, fix, terms)
        cube[:, first : first + block.shape[0]] = block.T

    if pool is None:
        for job in jobs:
            fill(job)
    else:
        for _ in pool.map(fill, jobs):
            pass
    return cube


def _read_block(
    source: StampSource,
    inv: SourceInventory,
    k: int,
    box: Box,
    config: StackingConfig,
    fix: StampCorrections | None,
    terms: dict[int, Any],
) -> np.ndarray:
    """Return the ``(stamps, pixels)`` float32 values of ``box`` of one source, corrected."""
    everything = len(inv.selected) == inv.n_stamps
    stamps = source.read(
        bbox=box, indices=None if everything else inv.selected, planes=_STACKED_PLANES
    )
    if len(stamps) != len(inv.selected):
        raise ValueError(
            f"stamp source {k} returned {len(stamps)} stamps for box {box}, the inventory "
            f"selected {len(inv.selected)}"
        )
    n = len(stamps)
    block = np.empty((n, box.area), dtype=np.float32)
    flags = np.empty((n, box.area), dtype=np.uint32)
    bitmasks = np.zeros(n, dtype=np.uint32)
    known: dict[tuple[tuple[str, int], ...], int] = {}  # a collection's stamps share planes
    for j, stamp in enumerate(stamps):
        block[j] = stamp.stamp_im.image.reshape(-1)
        mask = stamp.stamp_im.mask
        flags[j] = mask.array.reshape(-1)
        key = tuple(mask.planes.items())
        if key not in known:
            planes = [p for p in config.bad_mask_planes if p in mask.planes]
            known[key] = mask.get_plane_bitmask(planes) if planes else 0
        bitmasks[j] = known[key]
    # one pass over the block, not one per stamp: NaN where not finite or a bad plane is set
    flags &= bitmasks[:, None]
    np.putmask(block, (flags != 0) | ~np.isfinite(block), np.float32(np.nan))
    if fix is not None:
        chosen = np.asarray(inv.selected)
        if fix.background is not None:
            block -= (fix.background[chosen] @ terms[fix.order]).astype(np.float32)
        block /= fix.amplitude[chosen].astype(np.float32)[:, None]
    return block


def pixel_statistic(
    cube: np.ndarray,
    statistic: str,
    *,
    num_sigma_clip: float = 4.0,
    num_iter: int = 3,
    chunk_values: int = _CHUNK_VALUES,
) -> tuple[np.ndarray, np.ndarray]:
    """Statistic of each row of a ``(pixels, stamps)`` cube over its finite values.

    Parameters
    ----------
    cube : `numpy.ndarray`
        Values; NaN are left out.
    statistic : `str`
        ``MEANCLIP``, ``MEAN`` or ``MEDIAN`` (see the module docstring).
    num_sigma_clip, num_iter : `float`, `int`
        Clipping of ``MEANCLIP``.
    chunk_values : `int`
        Values processed at once by ``MEAN`` and ``MEDIAN`` (their temporaries take ~32 bytes
        per value; ``MEANCLIP`` works in blocks of its own, about 0.5 MiB).

    Returns
    -------
    value, count : `numpy.ndarray`
        Per pixel: the statistic (NaN without values) and the number of values it used.
    """
    if statistic not in STACKING_STATISTICS:
        raise ValueError(f"stacking statistic {statistic!r} not in {STACKING_STATISTICS}")
    if statistic == "MEANCLIP":  # its own blocks of pixels, small and reused
        # imported on first use: numba takes ~1 s to import, which a process that never
        # stacks (characterization, warping only) should not pay
        from ._meanclip_kernel import meanclip_rows

        return meanclip_rows(cube, num_sigma_clip, num_iter)
    n_pix, n = cube.shape
    value = np.empty(n_pix, dtype=np.float32)
    count = np.empty(n_pix, dtype=np.int32)
    step = max(1, chunk_values // max(n, 1))
    for start in range(0, n_pix, step):
        part = cube[start : start + step]
        v, c = _mean(part) if statistic == "MEAN" else _median(part)
        value[start : start + step] = v
        count[start : start + step] = c
    return value, count


def _mean(part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    good = ~np.isnan(part)
    n = good.sum(axis=1)
    total = np.where(good, part, 0.0).sum(axis=1, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / n).astype(np.float32), n


def _quantile(ordered: np.ndarray, n: np.ndarray, q: float) -> np.ndarray:
    """Linear-interpolation quantile (numpy's) of each row's first ``n`` (sorted) values."""
    pos = (np.maximum(n, 1) - 1) * q
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    frac = pos - lo
    rows = np.arange(ordered.shape[0])
    a = ordered[rows, lo].astype(np.float64)
    b = ordered[rows, hi].astype(np.float64)
    out = a + (b - a) * frac
    out[n == 0] = np.nan
    return out


def _median(part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ordered = np.sort(part, axis=1)  # NaN last
    n = np.count_nonzero(~np.isnan(part), axis=1)
    return _quantile(ordered, n, 0.5).astype(np.float32), n
