"""Reading and writing `~imaging.extended_psf.ExtendedPsf`: LSST's FITS layout, and zarr.

FITS layout (LSST's ``ExtendedPsf.writeFits``, science.md §4.1)::

    HDU 0      PRIMARY   no data; HAS_DEFAULT, HAS_REGIONS, REGION_NAMES (one card per region,
                         repeated keyword, in order), one keyword per region name holding its
                         detector list (one card per detector), EPSF_VER = 1, and the model
                         metadata (other keywords, e.g. NORMALIZATION, STATISTIC)
    then per model (DEFAULT first, then the regions in order):
               IMAGE     float32, REGION = DEFAULT | <name>, N_STAMPS, and the profile fit
                         (PF_* cards, exact floats) when there is one
               MASK      uint32, REGION = ..., MP_<PLANE> = bit

Zarr layout::

    <group>/             attrs["skyquanta_extended_psf"] = {version, has_default, regions:
                         [{name, detector_list, n_stamps, profile, mask_planes}], metadata}
    <group>/<NAME>/image float32 (H, W); <group>/<NAME>/mask uint32 (H, W)

Both round-trip exactly (pixels bit for bit, floats by their shortest repr).
"""

from __future__ import annotations

import os
import re
from typing import IO, Any

import numpy as np
from astropy.io import fits

from ._errors import ExposureFormatError
from .exposure import Exposure
from .extended_psf import DEFAULT_REGION, ExtendedPsf, RegionalExtendedPsf, simple_value
from .extended_psf_profile import ProfileFit
from .mask import Mask
from .stamps_io import _card, _float_card, write_hdul

__all__ = [
    "ExtendedPsfFormatError",
    "read_extended_psf_fits",
    "read_extended_psf_zarr",
    "write_extended_psf_fits",
    "write_extended_psf_zarr",
]

_VERSION = 1
_ZARR_ATTR = "skyquanta_extended_psf"
_RESERVED = frozenset(
    {"HAS_DEFAULT", "HAS_REGIONS", "REGION_NAMES", "EPSF_VER", "SIMPLE", "BITPIX", "NAXIS",
     "EXTEND", DEFAULT_REGION}
)  # fmt: skip
_NAME = re.compile(r"^[A-Z0-9_-]{1,60}$")
_PROFILE_CARDS = {
    "core_amplitude": "PF_CAMP",
    "core_alpha": "PF_CALP",
    "core_beta": "PF_CBET",
    "wing_amplitude": "PF_WAMP",
    "wing_radius": "PF_WRAD",
    "wing_index": "PF_WIDX",
    "r_min": "PF_RMIN",
    "r_max": "PF_RMAX",
    "rms_log": "PF_RMS",
}

PathOrFile = str | os.PathLike[str] | IO[bytes]


class ExtendedPsfFormatError(ExposureFormatError):
    """An extended PSF file is malformed, or a model cannot be stored (names file and key)."""


def _check_names(psf: ExtendedPsf) -> None:
    for name in psf.focal_plane_regions:
        if not _NAME.match(name) or name in _RESERVED:
            raise ExtendedPsfFormatError(
                f"extended PSF region name {name!r} cannot be stored: use 1-60 of A-Z, 0-9, "
                f"'_', '-', and none of {sorted(_RESERVED)}"
            )
    for key in psf.metadata:
        if key in _RESERVED or key in psf.focal_plane_regions:
            raise ExtendedPsfFormatError(f"extended PSF metadata key {key!r} is reserved")


# -- FITS -----------------------------------------------------------------------------------------


def write_extended_psf_fits(psf: ExtendedPsf, path_or_fileobj: PathOrFile) -> None:
    """Write ``psf`` as multi-extension FITS (layout in the module docstring).

    A path is written atomically (temporary name, then rename).

    Raises
    ------
    ExtendedPsfFormatError
        If there is nothing to write, or a name or metadata value cannot be stored.
    """
    _check_names(psf)
    models = psf.regions
    if not models:
        raise ExtendedPsfFormatError("an ExtendedPsf without any model cannot be written")
    header = fits.Header()
    header.append(_card("HAS_DEFAULT", psf.default is not None))
    header.append(_card("HAS_REGIONS", bool(psf.focal_plane_regions)))
    for name in psf.focal_plane_regions:
        header.append(_card("REGION_NAMES", name), end=True)
    for name, regional in psf.focal_plane_regions.items():
        for detector in regional.detector_list:
            header.append(_card(name, int(detector)), end=True)
    header.append(_card("EPSF_VER", _VERSION))
    for key, value in psf.metadata.items():
        try:
            value = simple_value(value)
        except TypeError as err:
            raise ExtendedPsfFormatError(f"metadata {key!r}: {err}") from err
        header.append(_float_card(key, value) if isinstance(value, float) else _card(key, value))
    hdus: list[Any] = [fits.PrimaryHDU(header=header)]
    for name, regional in models.items():
        image = fits.ImageHDU(np.asarray(regional.image.image, dtype=np.float32), name="IMAGE")
        image.header["REGION"] = name
        image.header["N_STAMPS"] = regional.n_stamps
        if regional.profile is not None:
            for field, value in regional.profile.to_dict().items():
                image.header.append(_float_card(_PROFILE_CARDS[field], value))
        mask = fits.ImageHDU(np.asarray(regional.image.mask.array, dtype=np.uint32), name="MASK")
        mask.header["REGION"] = name
        for key, bit in regional.image.mask.to_header().items():
            mask.header[key if len(key) <= 8 else f"HIERARCH {key}"] = bit
        hdus += [image, mask]
    write_hdul(fits.HDUList(hdus), path_or_fileobj)


def _repeated(header: fits.Header, key: str) -> list[Any]:
    return [card.value for card in header.cards if card.keyword == key]


def read_extended_psf_fits(path_or_fileobj: PathOrFile) -> ExtendedPsf:
    """Read a file written by `write_extended_psf_fits`.

    Raises
    ------
    FileNotFoundError
        If the path does not exist.
    ExtendedPsfFormatError
        If a keyword or HDU is missing or inconsistent.
    """
    source = (
        os.fspath(path_or_fileobj)
        if isinstance(path_or_fileobj, str | os.PathLike)
        else getattr(path_or_fileobj, "name", "<stream>")
    )
    if isinstance(path_or_fileobj, str | os.PathLike) and not os.path.exists(source):
        raise FileNotFoundError(f"Extended PSF file {source} does not exist")
    with fits.open(path_or_fileobj, memmap=False, uint=True) as hdul:
        primary = hdul[0].header
        for key in ("HAS_DEFAULT", "HAS_REGIONS"):
            if key not in primary:
                raise ExtendedPsfFormatError(f"{source}: missing primary keyword {key}")
        names = [str(v) for v in _repeated(primary, "REGION_NAMES")]
        has_default = bool(primary["HAS_DEFAULT"])
        expected = ([DEFAULT_REGION] if has_default else []) + names
        if len(hdul) != 1 + 2 * len(expected):
            raise ExtendedPsfFormatError(
                f"{source}: {len(hdul)} HDUs, expected {1 + 2 * len(expected)} for models "
                f"{expected}"
            )
        skip = set(_RESERVED) | set(names)
        metadata = {
            card.keyword: card.value
            for card in primary.cards
            if card.keyword and card.keyword not in skip
        }
        psf = ExtendedPsf(metadata=metadata)
        for i, name in enumerate(expected):
            image_hdu, mask_hdu = hdul[1 + 2 * i], hdul[2 + 2 * i]
            for hdu, kind in ((image_hdu, "IMAGE"), (mask_hdu, "MASK")):
                if hdu.name != kind or hdu.header.get("REGION") != name:
                    raise ExtendedPsfFormatError(
                        f"{source}: HDU {hdul.index(hdu)} is {hdu.name!r} REGION "
                        f"{hdu.header.get('REGION')!r}, expected {kind!r} REGION {name!r}"
                    )
            planes = Mask.planes_from_header(mask_hdu.header, source=source)
            exposure = Exposure(
                np.array(image_hdu.data, dtype=np.float32),
                mask=Mask(np.array(mask_hdu.data, dtype=np.uint32), planes),
            )
            profile = None
            if _PROFILE_CARDS["core_amplitude"] in image_hdu.header:
                profile = ProfileFit.from_dict(
                    {f: image_hdu.header[k] for f, k in _PROFILE_CARDS.items()}
                )
            detectors = [] if name == DEFAULT_REGION else _repeated(primary, name)
            regional = RegionalExtendedPsf(
                exposure, detectors, int(image_hdu.header.get("N_STAMPS", 0)), profile
            )
            if name == DEFAULT_REGION:
                psf.set_default(regional)
            else:
                psf.add_regional_extended_psf(regional, name)
    return psf


# -- zarr -----------------------------------------------------------------------------------------


def write_extended_psf_zarr(psf: ExtendedPsf, store: Any) -> None:
    """Write ``psf`` as a zarr v3 group into ``store`` (layout in the module docstring)."""
    import zarr

    _check_names(psf)
    models = psf.regions
    if not models:
        raise ExtendedPsfFormatError("an ExtendedPsf without any model cannot be written")
    group = zarr.open_group(store, mode="w", zarr_format=3)
    regions = []
    for name, regional in models.items():
        sub = group.create_group(name)
        for part, array, dtype in (
            ("image", regional.image.image, np.float32),
            ("mask", regional.image.mask.array, np.uint32),
        ):
            data = np.asarray(array, dtype=dtype)
            target = sub.create_array(part, shape=data.shape, dtype=dtype, chunks=data.shape)
            target[...] = data
        regions.append(
            {
                "name": name,
                "detector_list": list(regional.detector_list),
                "n_stamps": regional.n_stamps,
                "profile": None if regional.profile is None else regional.profile.to_dict(),
                "mask_planes": regional.image.mask.planes,
            }
        )
    try:
        metadata = {k: simple_value(v) for k, v in psf.metadata.items()}
    except TypeError as err:
        raise ExtendedPsfFormatError(str(err)) from err
    group.attrs[_ZARR_ATTR] = {
        "version": _VERSION,
        "has_default": psf.default is not None,
        "regions": regions,
        "metadata": metadata,
    }


def read_extended_psf_zarr(store: Any, *, source: str | None = None) -> ExtendedPsf:
    """Read a group written by `write_extended_psf_zarr`.

    Raises
    ------
    FileNotFoundError
        If there is no group.
    ExtendedPsfFormatError
        If an attribute or array is missing.
    """
    import zarr

    source = source or repr(store)
    try:
        group = zarr.open_group(store, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as err:
        raise FileNotFoundError(f"No extended PSF zarr group at {source}") from err
    attrs = group.attrs.get(_ZARR_ATTR)
    if attrs is None:
        raise ExtendedPsfFormatError(f"{source}: missing group attribute {_ZARR_ATTR!r}")
    psf = ExtendedPsf(metadata=dict(attrs.get("metadata", {})))
    for entry in attrs["regions"]:
        name = entry["name"]
        try:
            image = np.asarray(group[f"{name}/image"][...], dtype=np.float32)
            mask = np.asarray(group[f"{name}/mask"][...], dtype=np.uint32)
        except KeyError as err:
            raise ExtendedPsfFormatError(f"{source}: missing arrays of model {name!r}") from err
        profile = None if entry["profile"] is None else ProfileFit.from_dict(entry["profile"])
        regional = RegionalExtendedPsf(
            Exposure(image, mask=Mask(mask, dict(entry["mask_planes"]))),
            list(entry["detector_list"]),
            int(entry["n_stamps"]),
            profile,
        )
        if name == DEFAULT_REGION:
            psf.set_default(regional)
        else:
            psf.add_regional_extended_psf(regional, name)
    return psf
