"""Reading and writing `~imaging.stamps.BrightStarStamps`: LSST's multi-extension FITS, and zarr.

FITS layout (LSST's ``Stamps.writeFits``, science.md §2.4; afw's table archive is replaced by a
binary table)::

    HDU 0        PRIMARY     no data; G_MAGS, GAIA_IDS, X0S, Y0S, ANNULAR_FLUXES (one card per
                             stamp, repeated keyword, in stamp order), NORMALIZED, INNER_RADIUS,
                             OUTER_RADIUS, NB_90_ROTS, HAS_MASK, HAS_VARIANCE, HAS_ARCHIVE,
                             N_STAMPS, STAMPCLS, VERSION = 1, STAMPNX, STAMPNY, and the
                             collection metadata (other keywords)
    HDU 1        STAMP_INFO  binary table, one row per stamp: G_MAG, GAIA_ID, X0, Y0,
                             ANNULAR_FLUX (NaN when unnormalized), and with an archive CRPIX (2),
                             SHIFT (2), SIP_A, SIP_B (flattened k×k) -- exact binary values; the
                             header arrays above are for people and LSST-style readers
    then per stamp i (EXTVER = i + 1): IMAGE (float32), MASK (uint32, MP_<NAME> = bit) if
                             HAS_MASK, VARIANCE (float32) if HAS_VARIANCE

A ``bbox`` read (a `~imaging.geometry.Box` in stamp pixels) reads only those rows and columns of
each HDU (astropy ``section``), and ``indices`` reads only the listed stamps.

Zarr layout::

    <group>/             attrs["skyquanta_bright_star_stamps"] = {version, n_stamps,
                         stamp_shape, normalized, inner_radius, outer_radius, nb90Rots, has_mask,
                         has_variance, has_archive, mask_planes, stamp_class, metadata}
    <group>/image        float32 (N, H, W): one sharded array, inner chunks (1, 100, 100)
    <group>/mask         uint32, same chunking (if has_mask)
    <group>/variance     float32, same chunking (if has_variance)
    <group>/g_mag, gaia_id, x0, y0, annular_flux      (N,) the per-stamp table
    <group>/crpix, shift (N, 2), sip_a, sip_b (N, k, k)  the transforms (if has_archive)

Each plane is one shard file holding (1, 100, 100) chunks and an index, so a sub-box or a
single stamp is read with byte-range reads of the chunks it touches; the 100-pixel chunks match
the extended-PSF stacker's 100×100 sub-boxes.

Many partial reads of one file (a gather reads every sub-box of every input) go through a
`StampsReader` (`FitsStampsReader`, `ZarrStampsReader`), opened once: the header, the table and
the arrays' metadata are parsed then, not on every read. On a local disk the zarr reader reads
the shards directly (`imaging._shard_reader`: the index once, then one ``pread`` and one zstd
decompression per chunk, ~7x less than zarr's per-call overhead); any other layout or store is
read through zarr.
"""

from __future__ import annotations

import io
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from astropy.io import fits

from ._errors import ExposureFormatError
from ._shard_reader import ShardedPlane, read_group_attributes, read_single_chunk_array
from ._shard_writer import can_write_plane, write_plane_shard
from .exposure import Exposure
from .geometry import Box
from .mask import Mask
from .stamps import BrightStarStamp, BrightStarStamps
from .warping import StampTransform

__all__ = [
    "STAMP_PLANES",
    "FitsStampsReader",
    "StampsFormatError",
    "StampsReader",
    "ZarrStampsReader",
    "read_stamps_fits",
    "read_stamps_zarr",
    "write_stamps_fits",
    "write_stamps_zarr",
]

_VERSION = 1
_STAMP_CLASS = "imaging.stamps.BrightStarStamps"
_ZARR_ATTR = "skyquanta_bright_star_stamps"
_CHUNK = 100
_RESERVED = frozenset(
    {
        "G_MAGS", "GAIA_IDS", "X0S", "Y0S", "ANNULAR_FLUXES", "NORMALIZED", "INNER_RADIUS",
        "OUTER_RADIUS", "NB_90_ROTS", "HAS_MASK", "HAS_VARIANCE", "HAS_ARCHIVE", "N_STAMPS",
        "STAMPCLS", "VERSION", "STAMPNX", "STAMPNY", "SIMPLE", "BITPIX", "NAXIS", "EXTEND",
    }
)  # fmt: skip

PathOrFile = str | os.PathLike[str] | IO[bytes]


class StampsFormatError(ExposureFormatError):
    """A stamps file is malformed or a read parameter does not fit it (names file and key)."""


# -- shared ---------------------------------------------------------------------------------------


def _stamp_shape(stamps: BrightStarStamps) -> tuple[int, int]:
    shapes = {s.stamp_im.image.shape for s in stamps}
    if len(shapes) > 1:
        raise StampsFormatError(f"stamps of one collection must share a shape, got {shapes}")
    return shapes.pop() if shapes else (0, 0)


def _select(n_stamps: int, indices: Sequence[int] | None, source: str) -> list[int]:
    if indices is None:
        return list(range(n_stamps))
    chosen = [int(i) for i in indices]
    for i in chosen:
        if not 0 <= i < n_stamps:
            raise StampsFormatError(f"{source}: stamp index {i} outside 0..{n_stamps - 1}")
    return chosen


def _check_bbox(bbox: Box | None, shape: tuple[int, int], source: str) -> Box:
    full = Box.from_shape(shape)
    if bbox is None:
        return full
    if bbox.is_empty() or not full.contains(bbox):
        raise StampsFormatError(f"{source}: requested bbox {bbox} is outside the stamps {full}")
    return bbox


#: Planes a read may ask for (``image`` always).
STAMP_PLANES = ("image", "mask", "variance")


def _check_planes(
    planes: Sequence[str] | None, use_mask: bool, use_variance: bool, source: str
) -> tuple[bool, bool]:
    """Return whether the mask and the variance are read: stored and, if ``planes``, asked."""
    if planes is None:
        return use_mask, use_variance
    asked = set(planes)
    if "image" not in asked or not asked <= set(STAMP_PLANES):
        raise StampsFormatError(
            f"{source}: read planes {sorted(asked)} must hold 'image' and only planes of "
            f"{STAMP_PLANES}"
        )
    return use_mask and "mask" in asked, use_variance and "variance" in asked


def _stamp_table(stamps: BrightStarStamps) -> dict[str, np.ndarray]:
    n = len(stamps)
    columns: dict[str, np.ndarray] = {
        "g_mag": np.array([s.gaiaGMag for s in stamps], dtype=np.float64),
        "gaia_id": np.array([s.gaiaId for s in stamps], dtype=np.int64),
        "x0": np.array([s.position[0] for s in stamps], dtype=np.int64),
        "y0": np.array([s.position[1] for s in stamps], dtype=np.int64),
        "annular_flux": np.array(
            [math.nan if s.annularFlux is None else s.annularFlux for s in stamps],
            dtype=np.float64,
        ),
    }
    if stamps.use_archive:
        transforms = [s.archive_element or StampTransform() for s in stamps]
        size = max((t.sip_a.shape[0] for t in transforms), default=1)
        sip_a = np.zeros((n, size, size))
        sip_b = np.zeros((n, size, size))
        for i, t in enumerate(transforms):
            k = t.sip_a.shape[0]
            sip_a[i, :k, :k] = t.sip_a
            sip_b[i, :k, :k] = t.sip_b
        columns["crpix"] = np.array([t.crpix for t in transforms], dtype=np.float64).reshape(n, 2)
        columns["shift"] = np.array([t.shift for t in transforms], dtype=np.float64).reshape(n, 2)
        columns["sip_a"] = sip_a
        columns["sip_b"] = sip_b
    return columns


def _build(
    columns: dict[str, np.ndarray],
    chosen: list[int],
    images: list[np.ndarray],
    masks: list[np.ndarray | None],
    variances: list[np.ndarray | None],
    *,
    planes: dict[str, int],
    box: Box,
    normalized: bool,
    use_archive: bool,
) -> list[BrightStarStamp]:
    stamps = []
    for k, i in enumerate(chosen):
        mask = Mask(masks[k] if masks[k] is not None else box.shape, planes)
        exposure = Exposure(images[k], mask=mask, variance=variances[k], xy0=box.origin)
        transform = None
        if use_archive:
            transform = StampTransform(
                crpix=tuple(columns["crpix"][i]),
                sip_a=columns["sip_a"][i],
                sip_b=columns["sip_b"][i],
                shift=tuple(columns["shift"][i]),
            )
        flux = float(columns["annular_flux"][i]) if normalized else None
        stamps.append(
            BrightStarStamp(
                stamp_im=exposure,
                gaiaGMag=float(columns["g_mag"][i]),
                gaiaId=int(columns["gaia_id"][i]),
                position=(int(columns["x0"][i]), int(columns["y0"][i])),
                archive_element=transform,
                annularFlux=flux,
            )
        )
    return stamps


def _metadata_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, str | int | float | bool):
        raise StampsFormatError(f"stamps metadata values must be simple scalars, got {value!r}")
    return value


# -- FITS -----------------------------------------------------------------------------------------


def _card(keyword: str, value: Any) -> fits.Card:
    """Return a card; keys longer than 8 characters become HIERARCH cards (as LSST writes)."""
    return fits.Card(keyword if len(keyword) <= 8 else f"HIERARCH {keyword}", value)


def _float_card(keyword: str, value: float) -> fits.Card:
    """Return a card holding the exact value (free format past column 30 for a long repr)."""
    if not math.isfinite(value):
        return _card(keyword, None)  # FITS has no NaN: an undefined value
    text = repr(float(value)).upper()
    if len(text) <= 20:
        return _card(keyword, float(value))
    name = keyword if len(keyword) <= 8 else f"HIERARCH {keyword}"
    return fits.Card.fromstring(f"{name:<8}= {text}")


def write_stamps_fits(stamps: BrightStarStamps, path_or_fileobj: PathOrFile) -> None:
    """Write ``stamps`` as multi-extension FITS (layout in the module docstring).

    A path is written atomically (temporary name, then rename).
    """
    ny, nx = _stamp_shape(stamps)
    header = fits.Header()
    for key, value in stamps.metadata.items():
        if key.upper() in _RESERVED:
            raise StampsFormatError(f"stamps metadata key {key!r} is reserved by the FITS layout")
        header.append(_card(key.upper(), _metadata_value(value)))
    columns = _stamp_table(stamps)
    for s in stamps:
        header.append(_float_card("G_MAGS", s.gaiaGMag), end=True)
    for s in stamps:
        header.append(_card("GAIA_IDS", int(s.gaiaId)), end=True)
    for s in stamps:
        header.append(_card("X0S", int(s.position[0])), end=True)
    for s in stamps:
        header.append(_card("Y0S", int(s.position[1])), end=True)
    if stamps.normalized:
        for s in stamps:
            header.append(_float_card("ANNULAR_FLUXES", float(s.annularFlux)), end=True)
    header.append(_card("NORMALIZED", stamps.normalized))
    if stamps.normalized:
        header.append(_card("INNER_RADIUS", stamps.innerRadius))
        header.append(_card("OUTER_RADIUS", stamps.outerRadius))
    if stamps.nb90Rots is not None:
        header.append(_card("NB_90_ROTS", stamps.nb90Rots))
    header.append(_card("HAS_MASK", stamps.use_mask))
    header.append(_card("HAS_VARIANCE", stamps.use_variance))
    header.append(_card("HAS_ARCHIVE", stamps.use_archive))
    header.append(_card("N_STAMPS", len(stamps)))
    header.append(_card("STAMPCLS", _STAMP_CLASS))
    header.append(_card("VERSION", _VERSION))
    header.append(_card("STAMPNX", nx))
    header.append(_card("STAMPNY", ny))
    hdus: list[Any] = [fits.PrimaryHDU(header=header)]
    table_columns = [
        fits.Column("G_MAG", "D", array=columns["g_mag"]),
        fits.Column("GAIA_ID", "K", array=columns["gaia_id"]),
        fits.Column("X0", "K", array=columns["x0"]),
        fits.Column("Y0", "K", array=columns["y0"]),
        fits.Column("ANNULAR_FLUX", "D", array=columns["annular_flux"]),
    ]
    if stamps.use_archive:
        k = columns["sip_a"].shape[1]
        table_columns += [
            fits.Column("CRPIX", "2D", array=columns["crpix"]),
            fits.Column("SHIFT", "2D", array=columns["shift"]),
            fits.Column("SIP_A", f"{k * k}D", dim=f"({k},{k})", array=columns["sip_a"]),
            fits.Column("SIP_B", f"{k * k}D", dim=f"({k},{k})", array=columns["sip_b"]),
        ]
    info = fits.BinTableHDU.from_columns(table_columns, name="STAMP_INFO")
    info.header["SIPORDER"] = columns["sip_a"].shape[1] - 1 if stamps.use_archive else 0
    hdus.append(info)
    for i, s in enumerate(stamps):
        image = fits.ImageHDU(np.asarray(s.stamp_im.image, dtype=np.float32), name="IMAGE")
        image.header["EXTVER"] = i + 1
        hdus.append(image)
        if stamps.use_mask:
            mask = fits.ImageHDU(np.asarray(s.stamp_im.mask.array, dtype=np.uint32), name="MASK")
            mask.header["EXTVER"] = i + 1
            for key, bit in s.stamp_im.mask.to_header().items():
                mask.header[key if len(key) <= 8 else f"HIERARCH {key}"] = bit
            hdus.append(mask)
        if stamps.use_variance:
            var = fits.ImageHDU(np.asarray(s.stamp_im.variance, dtype=np.float32), name="VARIANCE")
            var.header["EXTVER"] = i + 1
            hdus.append(var)
    write_hdul(fits.HDUList(hdus), path_or_fileobj)


def write_hdul(hdul: fits.HDUList, path_or_fileobj: PathOrFile) -> None:
    """Write ``hdul``; a path atomically (temporary name, then rename; removed on failure)."""
    if isinstance(path_or_fileobj, str | os.PathLike):
        final = os.fspath(path_or_fileobj)
        tmp = f"{final}.tmp-{os.getpid()}"
        try:
            hdul.writeto(tmp, overwrite=True)
            os.replace(tmp, final)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    else:
        hdul.writeto(path_or_fileobj)


def _source_name(path_or_fileobj: PathOrFile) -> str:
    if isinstance(path_or_fileobj, str | os.PathLike):
        return os.fspath(path_or_fileobj)
    return getattr(path_or_fileobj, "name", "<stream>")


class StampsReader:
    """Partial reads of one stamps file, opened once: its table and metadata are read then.

    `read` returns any sub-box of any stamps as often as asked, reading only those pixels
    (a gather reads every sub-box of every input this way). Close it (or use it as a
    context manager) when done: a FITS reader holds its file open.
    """

    source: str

    def read(
        self,
        *,
        bbox: Box | None = None,
        indices: Sequence[int] | None = None,
        planes: Sequence[str] | None = None,
    ) -> BrightStarStamps:
        """Read ``bbox`` of the stamps ``indices`` (default: everything).

        ``planes`` (of `STAMP_PLANES`, ``image`` always) limits the planes read: a stack
        needs no variance. The stamps come back without the planes not read.

        Raises
        ------
        StampsFormatError
            If ``bbox``, ``indices`` or ``planes`` do not fit, or a part of the file is
            malformed.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release the file (nothing to do by default)."""

    def __enter__(self) -> StampsReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FitsStampsReader(StampsReader):
    """`StampsReader` of a FITS stamps file (layout in the module docstring).

    Parameters
    ----------
    path_or_fileobj : path or binary file object
        The file; a path is opened here and closed by `close`, a file object is the caller's.

    Raises
    ------
    FileNotFoundError
        If the path does not exist.
    StampsFormatError
        If a primary keyword or the table is missing or inconsistent.
    """

    def __init__(self, path_or_fileobj: PathOrFile) -> None:
        source = _source_name(path_or_fileobj)
        if isinstance(path_or_fileobj, str | os.PathLike) and not os.path.exists(source):
            raise FileNotFoundError(f"Stamps file {source} does not exist")
        self.source = source
        self._hdul = fits.open(path_or_fileobj, memmap=False, lazy_load_hdus=True, uint=True)
        try:
            self._read_header()
        except BaseException:
            self._hdul.close()
            raise
        self._planes: dict[str, int] | None = None
        self._lock = threading.Lock()  # one file position: reads one at a time

    def _read_header(self) -> None:
        source, hdul = self.source, self._hdul
        primary = hdul[0].header
        if "STAMPCLS" not in primary:
            raise StampsFormatError(f"{source}: missing primary keyword STAMPCLS")
        for key in ("N_STAMPS", "HAS_MASK", "HAS_VARIANCE", "HAS_ARCHIVE", "NORMALIZED"):
            if key not in primary:
                raise StampsFormatError(f"{source}: missing primary keyword {key}")
        self.n_stamps = n_stamps = int(primary["N_STAMPS"])
        self.use_mask = bool(primary["HAS_MASK"])
        self.use_variance = bool(primary["HAS_VARIANCE"])
        self.use_archive = use_archive = bool(primary["HAS_ARCHIVE"])
        self.normalized = normalized = bool(primary["NORMALIZED"])
        self.shape = (int(primary.get("STAMPNY", 0)), int(primary.get("STAMPNX", 0)))
        self._per_stamp = 1 + self.use_mask + self.use_variance
        expected = 2 + self._per_stamp * n_stamps
        if len(hdul) != expected:
            raise StampsFormatError(
                f"{source}: {len(hdul)} HDUs, expected {expected} for N_STAMPS = {n_stamps}"
            )
        info = hdul[1]
        if info.name != "STAMP_INFO":
            raise StampsFormatError(f"{source}: HDU 1 is {info.name!r}, expected 'STAMP_INFO'")
        data = info.data
        if len(data) != n_stamps:
            raise StampsFormatError(
                f"{source}: STAMP_INFO has {len(data)} rows, N_STAMPS = {n_stamps}"
            )
        columns = {
            "g_mag": np.asarray(data["G_MAG"], dtype=np.float64),
            "gaia_id": np.asarray(data["GAIA_ID"], dtype=np.int64),
            "x0": np.asarray(data["X0"], dtype=np.int64),
            "y0": np.asarray(data["Y0"], dtype=np.int64),
            "annular_flux": np.asarray(data["ANNULAR_FLUX"], dtype=np.float64),
        }
        if use_archive:
            k = int(info.header["SIPORDER"]) + 1
            columns["crpix"] = np.asarray(data["CRPIX"], dtype=np.float64).reshape(-1, 2)
            columns["shift"] = np.asarray(data["SHIFT"], dtype=np.float64).reshape(-1, 2)
            # Columns are stored row-major: FITS TDIM (k,k) reads back as [row][k][k].
            columns["sip_a"] = np.asarray(data["SIP_A"], dtype=np.float64).reshape(-1, k, k)
            columns["sip_b"] = np.asarray(data["SIP_B"], dtype=np.float64).reshape(-1, k, k)
        self._columns = columns
        self._metadata = {
            card.keyword: card.value
            for card in primary.cards
            if card.keyword not in _RESERVED and card.keyword
        }
        self._radii = (
            (int(primary["INNER_RADIUS"]), int(primary["OUTER_RADIUS"]))
            if normalized
            else (None, None)
        )
        self._nb90 = int(primary["NB_90_ROTS"]) if "NB_90_ROTS" in primary else None

    def read(
        self,
        *,
        bbox: Box | None = None,
        indices: Sequence[int] | None = None,
        planes: Sequence[str] | None = None,
    ) -> BrightStarStamps:
        """Read ``bbox`` of the stamps ``indices`` (only those rows of the HDUs of ``planes``)."""
        with self._lock:
            return self._read(bbox, indices, planes)

    def _read(
        self, bbox: Box | None, indices: Sequence[int] | None, planes: Sequence[str] | None
    ) -> BrightStarStamps:
        source, hdul = self.source, self._hdul
        box = _check_bbox(bbox, self.shape, source)
        chosen = _select(self.n_stamps, indices, source)
        use_mask, use_variance = _check_planes(planes, self.use_mask, self.use_variance, source)
        rows, cols = box.slices()
        stored = ["IMAGE"] + ["MASK"] * self.use_mask + ["VARIANCE"] * self.use_variance
        wanted = {"IMAGE", *(["MASK"] * use_mask), *(["VARIANCE"] * use_variance)}
        images, masks, variances = [], [], []
        for i in chosen:
            first = 2 + self._per_stamp * i
            arrays: dict[str, np.ndarray] = {}
            for offset, name in enumerate(stored):
                if name not in wanted:
                    continue
                hdu = hdul[first + offset]
                if hdu.name != name or int(hdu.header.get("EXTVER", -1)) != i + 1:
                    raise StampsFormatError(
                        f"{source}: HDU {first + offset} is {hdu.name!r} EXTVER "
                        f"{hdu.header.get('EXTVER')}, expected {name!r} EXTVER {i + 1}"
                    )
                # One contiguous read of the box's rows, then the columns in memory: a
                # column window would be one small seek + read per row (~70x slower).
                arrays[name] = np.array(hdu.section[rows, :][:, cols])
                if name == "MASK" and self._planes is None:
                    self._planes = Mask.planes_from_header(hdu.header, source=source)
            images.append(arrays["IMAGE"].astype(np.float32, copy=False))
            masks.append(arrays["MASK"].astype(np.uint32) if use_mask else None)
            variances.append(arrays.get("VARIANCE"))
        stamp_list = _build(
            self._columns,
            chosen,
            images,
            masks,
            variances,
            planes=self._planes if self._planes is not None else Mask((0, 0)).planes,
            box=box,
            normalized=self.normalized,
            use_archive=self.use_archive,
        )
        return BrightStarStamps(
            stamp_list,
            innerRadius=self._radii[0],
            outerRadius=self._radii[1],
            nb90Rots=self._nb90,
            metadata=dict(self._metadata),
            use_mask=use_mask,
            use_variance=use_variance,
            use_archive=self.use_archive,
        )

    def close(self) -> None:
        """Close the file (a file object passed in stays open)."""
        self._hdul.close()


def read_stamps_fits(
    path_or_fileobj: PathOrFile,
    *,
    bbox: Box | None = None,
    indices: Sequence[int] | None = None,
    planes: Sequence[str] | None = None,
) -> BrightStarStamps:
    """Read stamps written by `write_stamps_fits`.

    Parameters
    ----------
    path_or_fileobj : path or binary file object
        The file.
    bbox : `~imaging.geometry.Box`, optional
        Sub-box of every stamp to read (stamp pixels); the stamps come back with ``xy0`` at
        its origin. Only those pixels are read.
    indices : sequence of `int`, optional
        Stamps to read (default all); the others' pixels are not read.
    planes : sequence of `str`, optional
        Planes to read (of `STAMP_PLANES`, ``image`` always; default every stored one).

    Raises
    ------
    FileNotFoundError
        If the path does not exist.
    StampsFormatError
        If a keyword or HDU is missing or inconsistent, or ``bbox``/``indices`` do not fit.
    """
    with FitsStampsReader(path_or_fileobj) as reader:
        return reader.read(bbox=bbox, indices=indices, planes=planes)


def stamps_to_fits_bytes(stamps: BrightStarStamps) -> bytes:
    """Return the FITS bytes of ``stamps`` (for object stores)."""
    buffer = io.BytesIO()
    write_stamps_fits(stamps, buffer)
    return buffer.getvalue()


# -- zarr -----------------------------------------------------------------------------------------


def write_stamps_zarr(stamps: BrightStarStamps, store: Any, *, atomic: bool = False) -> None:
    """Write ``stamps`` as a zarr v3 group into ``store`` (layout in the module docstring).

    The caller makes the write atomic (the butler's datastore writes to a temporary path).
    With ``atomic`` (the store is published only once complete) the group's attributes are
    written with the group, so its ``zarr.json`` is written once, not replaced (a replaced
    file frees a block, which a filesystem mounted with ``discard`` discards while the writer
    waits); otherwise they are written last.
    """
    import zarr
    import zarr.storage
    from zarr.codecs import ZstdCodec

    ny, nx = _stamp_shape(stamps)
    n = len(stamps)
    first_mask = stamps[0].stamp_im.mask.planes if n else Mask((0, 0)).planes
    attributes = {
        "version": _VERSION,
        "stamp_class": _STAMP_CLASS,
        "n_stamps": n,
        "stamp_shape": [ny, nx],
        "normalized": stamps.normalized,
        "inner_radius": stamps.innerRadius,
        "outer_radius": stamps.outerRadius,
        "nb90Rots": stamps.nb90Rots,
        "has_mask": stamps.use_mask,
        "has_variance": stamps.use_variance,
        "has_archive": stamps.use_archive,
        "mask_planes": first_mask,
        "metadata": {k: _metadata_value(v) for k, v in stamps.metadata.items()},
    }
    group = zarr.open_group(
        store, mode="w", zarr_format=3, attributes={_ZARR_ATTR: attributes} if atomic else None
    )
    root = Path(store.root) if isinstance(store, zarr.storage.LocalStore) else None
    planes = {"image": [s.stamp_im.image for s in stamps]}
    if stamps.use_mask:
        planes["mask"] = [s.stamp_im.mask.array for s in stamps]
    if stamps.use_variance:
        planes["variance"] = [s.stamp_im.variance for s in stamps]
    dtypes = {"image": np.float32, "mask": np.uint32, "variance": np.float32}
    chunks = (1, max(1, min(_CHUNK, ny)), max(1, min(_CHUNK, nx)))
    shards = (
        max(n, 1),
        -(-max(ny, 1) // chunks[1]) * chunks[1],
        -(-max(nx, 1) // chunks[2]) * chunks[2],
    )
    for name, arrays in planes.items():
        array = group.create_array(
            name,
            shape=(n, ny, nx),
            dtype=dtypes[name],
            chunks=chunks,
            shards=shards,
            compressors=ZstdCodec(level=1),
            fill_value=0,
        )
        if not n:
            continue
        cube = np.stack([np.asarray(a, dtype=dtypes[name]) for a in arrays])
        layout = can_write_plane(root, name) if root is not None else None
        if layout is None:
            array[...] = cube
        else:  # the same shard, without zarr's work per chunk (see imaging._shard_writer)
            write_plane_shard(root, name, cube, layout)
    for name, values in _stamp_table(stamps).items():
        array = group.create_array(
            name,
            shape=values.shape,
            dtype=values.dtype,
            chunks=values.shape or (1,),
            fill_value=0,
        )
        if values.size:
            array[...] = values
    if not atomic:
        group.attrs[_ZARR_ATTR] = attributes


class ZarrStampsReader(StampsReader):
    """`StampsReader` of a zarr stamps group: attributes, table and arrays opened once.

    Parameters
    ----------
    store : zarr store or path
        The group.
    source : `str`, optional
        Its name in messages.

    Raises
    ------
    FileNotFoundError
        If there is no group.
    StampsFormatError
        If an attribute or array is missing or inconsistent.
    """

    def __init__(self, store: Any, *, source: str | None = None) -> None:
        self.source = source or repr(store)
        self._direct: dict[str, ShardedPlane] = {}
        self._planes: dict[str, Any] = {}
        root = _local_root(store)
        # on a local disk, the group is read directly (`imaging._shard_reader`): its
        # attributes, table and shards; any other layout or store through zarr
        if root is None or not self._open_direct(root):
            self._open_zarr(store, root)

    def _take_attributes(self, attrs: Any) -> tuple[list[str], list[str]]:
        """Check and keep the group's attributes; return its column and plane names."""
        source = self.source
        if attrs is None:
            raise StampsFormatError(f"{source}: missing group attribute {_ZARR_ATTR!r}")
        for key in ("n_stamps", "stamp_shape", "normalized", "has_mask", "has_variance"):
            if key not in attrs:
                raise StampsFormatError(f"{source}: attribute {_ZARR_ATTR}[{key!r}] is missing")
        self._attrs = attrs
        self.n_stamps = int(attrs["n_stamps"])
        self.shape = (int(attrs["stamp_shape"][0]), int(attrs["stamp_shape"][1]))
        self.use_mask, self.use_variance = bool(attrs["has_mask"]), bool(attrs["has_variance"])
        self.use_archive = bool(attrs["has_archive"])
        names = ["g_mag", "gaia_id", "x0", "y0", "annular_flux"]
        if self.use_archive:
            names += ["crpix", "shift", "sip_a", "sip_b"]
        planes = ["image"] + ["mask"] * self.use_mask + ["variance"] * self.use_variance
        return names, planes

    def _open_direct(self, root: Path) -> bool:
        """Open the group at ``root`` without zarr; `False` if any part is not this layout.

        Nothing is kept then: zarr reads the group (and reports its faults). The layout is
        the one `write_stamps_zarr` makes.
        """
        group = read_group_attributes(root)
        if group is None or _ZARR_ATTR not in group:
            return False
        names, planes = self._take_attributes(group[_ZARR_ATTR])
        columns = {}
        for name in names:
            values = read_single_chunk_array(root, name)
            if values is None:
                return False
            columns[name] = values
        direct: dict[str, ShardedPlane] = {}
        for name in planes:
            plane = ShardedPlane.open(root, name)
            if plane is None or plane.shape != (self.n_stamps, *self.shape):
                for opened in direct.values():
                    opened.close()
                if plane is not None:
                    plane.close()
                return False
            direct[name] = plane
        self._columns, self._direct = columns, direct
        return True

    def _open_zarr(self, store: Any, root: Path | None) -> None:
        """Open the group through zarr (any store); its planes' shards directly if local."""
        import zarr

        source = self.source
        try:
            group = zarr.open_group(store, mode="r")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError) as err:
            raise FileNotFoundError(f"No stamps zarr group at {source}") from err
        names, planes = self._take_attributes(group.attrs.get(_ZARR_ATTR))
        n_stamps, shape = self.n_stamps, self.shape
        members = dict(group.members())  # one listing: every array's metadata at once
        self._columns: dict[str, np.ndarray] = {}
        for name in names:
            if name not in members:
                raise StampsFormatError(f"{source}: missing array {name!r}")
            self._columns[name] = np.asarray(members[name][...])
        for name in planes:
            if name not in members:
                raise StampsFormatError(f"{source}: missing array {name!r}")
            array = members[name]
            if tuple(array.shape) != (n_stamps, *shape):
                raise StampsFormatError(
                    f"{source}: array {name!r} shape {array.shape} != {(n_stamps, *shape)}"
                )
            self._planes[name] = array
        if root is not None:
            for name in planes:
                plane = ShardedPlane.open(root, name)
                if plane is not None:
                    self._direct[name] = plane

    def _read_plane(self, name: str, chosen: list[int], box: Box) -> list[np.ndarray]:
        if not chosen:
            return []
        direct = self._direct.get(name)
        if direct is not None:
            return list(direct.read(chosen, box))
        if name not in self._planes:
            raise ValueError(f"{self.source}: the stamps reader is closed")
        array = self._planes[name]
        rows, cols = box.slices()
        if chosen == list(range(chosen[0], chosen[-1] + 1)):
            cube = array[chosen[0] : chosen[-1] + 1, rows, cols]
        else:
            cube = array.get_orthogonal_selection((np.asarray(chosen), rows, cols))
        return list(cube)

    def read(
        self,
        *,
        bbox: Box | None = None,
        indices: Sequence[int] | None = None,
        planes: Sequence[str] | None = None,
    ) -> BrightStarStamps:
        """Read ``bbox`` of the stamps ``indices`` (only the chunks they touch, of ``planes``)."""
        attrs, source = self._attrs, self.source
        box = _check_bbox(bbox, self.shape, source)
        chosen = _select(self.n_stamps, indices, source)
        use_mask, use_variance = _check_planes(planes, self.use_mask, self.use_variance, source)
        none: list[np.ndarray | None] = [None] * len(chosen)
        images = self._read_plane("image", chosen, box)
        masks = self._read_plane("mask", chosen, box) if use_mask else none
        variances = self._read_plane("variance", chosen, box) if use_variance else none
        stamp_list = _build(
            self._columns,
            chosen,
            images,
            list(masks),
            list(variances),
            planes=dict(attrs["mask_planes"]),
            box=box,
            normalized=bool(attrs["normalized"]),
            use_archive=self.use_archive,
        )
        return BrightStarStamps(
            stamp_list,
            innerRadius=attrs["inner_radius"],
            outerRadius=attrs["outer_radius"],
            nb90Rots=attrs["nb90Rots"],
            metadata=dict(attrs["metadata"]),
            use_mask=use_mask,
            use_variance=use_variance,
            use_archive=self.use_archive,
        )

    def close(self) -> None:
        """Close the shard files read directly."""
        for plane in self._direct.values():
            plane.close()
        self._direct = {}


def _local_root(store: Any) -> Path | None:
    """Return the folder of a local zarr store (a path or a ``LocalStore``), else `None`.

    Only a plain ``LocalStore``: a subclass may change how bytes are fetched.
    """
    if isinstance(store, str | os.PathLike):
        text = os.fspath(store)
        return None if "://" in text else Path(text)
    from zarr.storage import LocalStore

    return Path(store.root) if type(store) is LocalStore else None


def read_stamps_zarr(
    store: Any,
    *,
    bbox: Box | None = None,
    indices: Sequence[int] | None = None,
    planes: Sequence[str] | None = None,
    source: str | None = None,
) -> BrightStarStamps:
    """Read stamps written by `write_stamps_zarr`; ``bbox``, ``indices``, ``planes`` as in FITS.

    Only the chunks holding the requested stamps and sub-box are read.

    Raises
    ------
    FileNotFoundError
        If there is no group.
    StampsFormatError
        If an attribute or array is missing or inconsistent, or a parameter does not fit.
    """
    with ZarrStampsReader(store, source=source) as reader:
        return reader.read(bbox=bbox, indices=indices, planes=planes)
