"""Read and write exposures as zarr v3 groups.

Layout written by `write_exposure_zarr`::

    <group>/            attrs["skyquanta_exposure"] = {
                            "version": 1, "xy0": [x0, y0], "mask_planes": {name: bit},
                            "wcs": {...exact parameters...} | None, "psf": psf.to_dict() | None,
                            "detector": DetectorInfo.to_dict() | None,
                            "visit": VisitInfo.to_dict() | None, "zero_point": float | None,
                            "metadata": [[keyword, value, comment], ...]}
    <group>/image       float32  (ny, nx)  chunks 512 x 512, blosc zstd level 1 on bit-shuffled
                        bytes (lossless; ~10% smaller than plain zstd 3 at the same CPU)
    <group>/mask        uint32
    <group>/variance    float32

Unlike FITS cards, the WCS is stored as exact JSON floats (CRPIX, CRVAL, CD or PC/CDELT, SIP
matrices) next to its header text, so the round trip is exact. `read_exposure_zarr` with a
``bbox`` reads only the chunks that the box touches.
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning, Sip
from zarr.codecs import BloscCodec

from ._errors import ExposureFormatError, MaskPlaneError
from .exposure import DetectorInfo, Exposure, VisitInfo
from .fits_io import wcs_to_header
from .geometry import Box
from .mask import Mask
from .psf import Psf

__all__ = ["read_exposure_zarr", "wcs_from_dict", "wcs_to_dict", "write_exposure_zarr"]

_ATTR = "skyquanta_exposure"
_FORMAT_VERSION = 1
#: Lossless: the sky noise's low mantissa bits do not compress, its exponents and high bits do
#: once bit-shuffled. A 2048² characterized exposure: 50.4 MB as FITS, 29.2 MB with zstd 3,
#: 26.7 MB with this, same CPU (~0.17 s to write, ~0.08 s to read).
_CODEC = BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle")


def wcs_to_dict(wcs: WCS) -> dict[str, Any]:
    """Return an exact JSON-able description of a parent-frame WCS."""
    inner = wcs.wcs
    data: dict[str, Any] = {
        "header": wcs_to_header(wcs).tostring(sep="\n"),
        "crpix": inner.crpix.tolist(),
        "crval": inner.crval.tolist(),
    }
    if inner.has_cd():
        data["cd"] = inner.cd.tolist()
    else:
        data["pc"] = inner.get_pc().tolist()
        data["cdelt"] = inner.cdelt.tolist()
    if wcs.sip is not None:
        for name in ("a", "b", "ap", "bp"):
            value = getattr(wcs.sip, name)
            data[f"sip_{name}"] = None if value is None else value.tolist()
    return data


def wcs_from_dict(data: dict[str, Any]) -> WCS:
    """Inverse of `wcs_to_dict`."""
    header = fits.Header.fromstring(data["header"], sep="\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header, relax=True)
    wcs.wcs.crpix = data["crpix"]
    wcs.wcs.crval = data["crval"]
    if "cd" in data:
        wcs.wcs.cd = data["cd"]
        if wcs.wcs.has_pc():
            del wcs.wcs.pc
            wcs.wcs.cdelt = [1.0, 1.0]
    else:
        wcs.wcs.pc = data["pc"]
        wcs.wcs.cdelt = data["cdelt"]
    if "sip_a" in data:

        def arr(key: str) -> np.ndarray | None:
            value = data.get(key)
            return None if value is None else np.asarray(value, dtype=float)

        wcs.sip = Sip(arr("sip_a"), arr("sip_b"), arr("sip_ap"), arr("sip_bp"), wcs.wcs.crpix)
    wcs.wcs.set()
    return wcs


def _header_to_list(header: fits.Header) -> list[list[Any]]:
    cards = []
    for card in header.cards:
        value = card.value
        if isinstance(value, np.generic):
            value = value.item()
        if not isinstance(value, str | int | float | bool) and value is not None:
            value = str(value)
        cards.append([card.keyword, value, card.comment])
    return cards


def _header_from_list(cards: list[list[Any]]) -> fits.Header:
    header = fits.Header()
    for keyword, value, comment in cards:
        header.append(fits.Card(keyword, value, comment))
    return header


def write_exposure_zarr(
    exposure: Exposure,
    store_or_path: Any,
    *,
    chunks: tuple[int, int] = (512, 512),
    overwrite: bool = True,
    atomic: bool = False,
) -> zarr.Group:
    """Write ``exposure`` as a zarr v3 group (layout in the module docstring).

    Parameters
    ----------
    exposure : `~imaging.exposure.Exposure`
        What to write.
    store_or_path : `str`, `os.PathLike` or zarr store
        Destination group.
    chunks : `tuple` [`int`, `int`]
        Chunk shape (rows, columns), clipped to the image shape.
    overwrite : `bool`
        Replace an existing group.
    atomic : `bool`
        The caller publishes the store only once it is complete (the butler's datastore writes
        a temporary directory and renames it into place): the group's attributes are then
        written with the group, so its ``zarr.json`` is written once. Otherwise they are
        written last, so that an interrupted in-place write reads as incomplete.

    Notes
    -----
    A local path is written to a temporary sibling directory and renamed into place, so readers
    never see a half-written group (``atomic`` is implied); other stores are written in place.
    A replaced ``zarr.json`` frees a block: on a filesystem mounted with ``discard`` the writer
    then waits for the device to discard it.

    Returns
    -------
    group : `zarr.Group`
        The written group.
    """
    final: Path | None = None
    if isinstance(store_or_path, str | os.PathLike) and "://" not in os.fspath(store_or_path):
        # A local directory is written under a temporary name, then renamed into place.
        final = Path(store_or_path)
        if final.exists() and not overwrite:
            raise FileExistsError(f"Exposure zarr group {final} already exists")
        store_or_path = os.fspath(final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex}"))
    attributes: dict[str, Any] = {
        _ATTR: {
            "version": _FORMAT_VERSION,
            "xy0": list(exposure.xy0),
            "mask_planes": exposure.mask.planes,
            "wcs": None if exposure.wcs is None else wcs_to_dict(exposure.wcs),
            "psf": None if exposure.psf is None else exposure.psf.to_dict(),
            "detector": None if exposure.detector is None else exposure.detector.to_dict(),
            "visit": None if exposure.visit is None else exposure.visit.to_dict(),
            "zero_point": exposure.zero_point,
            "metadata": _header_to_list(exposure.metadata),
        }
    }
    first = atomic or final is not None
    group = zarr.open_group(
        store_or_path,
        mode="w" if overwrite else "w-",
        zarr_format=3,
        attributes=attributes if first else None,
    )
    shape = exposure.image.shape
    chunk_shape = (max(1, min(chunks[0], shape[0])), max(1, min(chunks[1], shape[1])))
    for name, data in (
        ("image", exposure.image),
        ("mask", exposure.mask.array),
        ("variance", exposure.variance),
    ):
        array = group.create_array(
            name,
            shape=shape,
            dtype=data.dtype,
            chunks=chunk_shape,
            compressors=_CODEC,
            fill_value=0,
        )
        array[...] = data
    if not first:
        group.attrs.update(attributes)
    if final is not None:
        if final.exists():
            shutil.rmtree(final)
        os.replace(store_or_path, final)
        group = zarr.open_group(os.fspath(final), mode="r")
    return group


def read_exposure_zarr(store_or_path: Any, *, bbox: Box | None = None) -> Exposure:
    """Read an exposure written by `write_exposure_zarr`.

    Parameters
    ----------
    store_or_path : `str`, `os.PathLike` or zarr store
        The group.
    bbox : `~imaging.geometry.Box`, optional
        Part to read, in the parent frame; only the chunks it touches are read.

    Returns
    -------
    exposure : `~imaging.exposure.Exposure`

    Raises
    ------
    FileNotFoundError
        If there is no zarr group at ``store_or_path``.
    ExposureFormatError
        If an array or attribute is missing or inconsistent (names the store and key).
    """
    source = (
        os.fspath(store_or_path)
        if isinstance(store_or_path, str | os.PathLike)
        else repr(store_or_path)
    )
    if isinstance(store_or_path, str | os.PathLike) and not os.path.exists(source):
        raise FileNotFoundError(f"Exposure zarr group {source} does not exist")
    try:
        group = zarr.open_group(
            os.fspath(store_or_path) if isinstance(store_or_path, os.PathLike) else store_or_path,
            mode="r",
        )
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as err:
        raise FileNotFoundError(f"No zarr group at {source}") from err
    attrs = group.attrs.get(_ATTR)
    if attrs is None:
        raise ExposureFormatError(f"{source}: missing group attribute {_ATTR!r}")
    for key in ("xy0", "mask_planes", "wcs", "psf", "detector", "visit", "zero_point", "metadata"):
        if key not in attrs:
            raise ExposureFormatError(f"{source}: attribute {_ATTR}[{key!r}] is missing")
    arrays = {}
    for name in ("image", "mask", "variance"):
        if name not in group:
            raise ExposureFormatError(f"{source}: missing array {name!r}")
        arrays[name] = group[name]
    shape = arrays["image"].shape
    for name in ("mask", "variance"):
        if arrays[name].shape != shape:
            raise ExposureFormatError(
                f"{source}: array {name!r} shape {arrays[name].shape} != image shape {shape}"
            )
    xy0 = (int(attrs["xy0"][0]), int(attrs["xy0"][1]))
    full = Box.from_shape(shape, origin=xy0)
    if bbox is None:
        box, slices = full, (slice(None), slice(None))
    else:
        if bbox.is_empty() or not full.contains(bbox):
            raise ExposureFormatError(f"{source}: requested bbox {bbox} is not inside {full}")
        box, slices = bbox, bbox.slices(xy0)
    try:
        mask = Mask(arrays["mask"][slices], attrs["mask_planes"])
    except MaskPlaneError as err:
        raise ExposureFormatError(f"{source}: attribute mask_planes: {err}") from err
    return Exposure(
        arrays["image"][slices],
        mask=mask,
        variance=arrays["variance"][slices],
        wcs=None if attrs["wcs"] is None else wcs_from_dict(attrs["wcs"]),
        psf=None if attrs["psf"] is None else Psf.from_dict(attrs["psf"]),
        detector=None if attrs["detector"] is None else DetectorInfo.from_dict(attrs["detector"]),
        visit=None if attrs["visit"] is None else VisitInfo.from_dict(attrs["visit"]),
        zero_point=attrs["zero_point"],
        metadata=_header_from_list(attrs["metadata"]),
        xy0=box.origin,
    )
