"""Butler formatters for the imaging data model.

Each formatter reads and writes one file (or one zarr directory) at a path the
datastore chooses; the datastore makes the write atomic. Exposures go to
LSST's multi-extension FITS layout (`imaging.fits_io`) or to a chunked zarr
group (`imaging.zarr_io`); both support a ``bbox`` read parameter that reads
only the pixels needed. Background lists go to FITS, four image HDUs per piece.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import fsspec
import numpy as np
from astropy.io import fits
from fsspec.implementations.local import LocalFileSystem

from butler.datastore.formatter import Formatter, PartialReader

from .background import BackgroundList, BackgroundModel
from .extended_psf_io import (
    read_extended_psf_fits,
    read_extended_psf_zarr,
    write_extended_psf_fits,
    write_extended_psf_zarr,
)
from .fits_io import read_exposure_fits, write_exposure_fits
from .geometry import Box
from .stamps_io import (
    FitsStampsReader,
    StampsReader,
    ZarrStampsReader,
    read_stamps_fits,
    read_stamps_zarr,
    write_stamps_fits,
    write_stamps_zarr,
)
from .zarr_io import read_exposure_zarr, write_exposure_zarr

__all__ = [
    "BackgroundFitsFormatter",
    "BrightStarStampsFitsFormatter",
    "BrightStarStampsZarrFormatter",
    "CameraYamlFormatter",
    "ExposureFitsFormatter",
    "ExposureZarrFormatter",
    "ExtendedPsfFitsFormatter",
    "ExtendedPsfZarrFormatter",
    "as_box",
]


def as_box(value: Any) -> Box | None:
    """Turn a ``bbox`` read parameter (a `Box` or ``(x0, y0, width, height)``) into a `Box`."""
    if value is None or isinstance(value, Box):
        return value
    x0, y0, width, height = (int(v) for v in value)
    return Box(x0, y0, width, height)


def _local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def _zarr_store(fs: fsspec.AbstractFileSystem, path: str, *, read_only: bool) -> Any:
    """Return a zarr store at ``path``: local, or through fsspec (object stores)."""
    from zarr.storage import FsspecStore, LocalStore

    if _local(fs):
        return LocalStore(path, read_only=read_only)
    return FsspecStore.from_url(fs.unstrip_protocol(path), read_only=read_only)


class ExposureFitsFormatter(Formatter):
    """An `~imaging.exposure.Exposure` as multi-extension FITS (IMAGE, MASK, VARIANCE, PSF)."""

    extension: ClassVar[str] = ".fits"
    supported_parameters: ClassVar[frozenset[str]] = frozenset({"bbox"})

    def write(self, obj: Any, fs: fsspec.AbstractFileSystem, path: str) -> None:
        """Write the exposure."""
        self.write_through(fs, path, lambda stream: write_exposure_fits(obj, stream))

    def read(
        self,
        fs: fsspec.AbstractFileSystem,
        path: str,
        *,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Read the exposure, or the part of it inside ``parameters["bbox"]``."""
        self.check_parameters(parameters)
        bbox = as_box((parameters or {}).get("bbox"))
        return self.read_through(fs, path, lambda source: read_exposure_fits(source, bbox=bbox))


class ExposureZarrFormatter(Formatter):
    """An `~imaging.exposure.Exposure` as a chunked zarr v3 group (bbox reads touch few chunks)."""

    extension: ClassVar[str] = ".zarr"
    is_directory: ClassVar[bool] = True
    supported_parameters: ClassVar[frozenset[str]] = frozenset({"bbox"})

    def _store(self, fs: fsspec.AbstractFileSystem, path: str, *, read_only: bool) -> Any:
        import zarr.storage

        if _local(fs):
            return zarr.storage.LocalStore(path, read_only=read_only)
        return zarr.storage.FsspecStore(fs, path=path, read_only=read_only)

    def write(self, obj: Any, fs: fsspec.AbstractFileSystem, path: str) -> None:
        """Write the exposure as a zarr group.

        A local ``path`` is the datastore's temporary (renamed into place, or uploaded with
        ``zarr.json`` last), so the group's metadata is written once, with the group.
        """
        write_exposure_zarr(obj, self._store(fs, path, read_only=False), atomic=_local(fs))

    def read(
        self,
        fs: fsspec.AbstractFileSystem,
        path: str,
        *,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Read the exposure, or the part of it inside ``parameters["bbox"]``."""
        self.check_parameters(parameters)
        bbox = as_box((parameters or {}).get("bbox"))
        return read_exposure_zarr(self._store(fs, path, read_only=True), bbox=bbox)


_PIECE_KEYS = ("values", "variances", "x_edges", "y_edges")


class BackgroundFitsFormatter(Formatter):
    """A `~imaging.background.BackgroundList` as FITS: per piece, four float64 image HDUs.

    The header of each piece's ``values`` HDU holds its shape, origin, fit
    method, order, weighting and undersample style. Round trips are exact.
    """

    extension: ClassVar[str] = ".fits"

    def write(self, obj: Any, fs: fsspec.AbstractFileSystem, path: str) -> None:
        """Write the background list."""
        hdus: list[Any] = [fits.PrimaryHDU()]
        hdus[0].header["NPIECES"] = len(obj)
        for i, piece in enumerate(obj):
            data = piece.to_dict()
            for key in _PIECE_KEYS:
                hdu = fits.ImageHDU(
                    np.asarray(data[key], dtype=np.float64), name=f"BG{i}_{key[:8].upper()}"
                )
                hdus.append(hdu)
            header = hdus[-4].header
            header["SHAPEY"], header["SHAPEX"] = data["shape"]
            header["XY0X"], header["XY0Y"] = data["xy0"]
            header["METHOD"] = data["method"]
            header["ORDER"] = data["order"]
            header["WEIGHT"] = data["weighting"]
            header["UNDERSMP"] = data["undersample_style"]
        self.write_through(fs, path, fits.HDUList(hdus).writeto)

    def read(
        self,
        fs: fsspec.AbstractFileSystem,
        path: str,
        *,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Read the background list."""
        self.check_parameters(parameters)
        with self.read_through(fs, path, fits.open) as hdul:
            pieces = []
            for i in range(int(hdul[0].header["NPIECES"])):
                hdus = [hdul[1 + 4 * i + k] for k in range(4)]
                header = hdus[0].header
                data: dict[str, Any] = {
                    k: np.array(h.data, dtype=np.float64)
                    for k, h in zip(_PIECE_KEYS, hdus, strict=True)
                }
                data.update(
                    shape=(int(header["SHAPEY"]), int(header["SHAPEX"])),
                    xy0=(int(header["XY0X"]), int(header["XY0Y"])),
                    method=str(header["METHOD"]),
                    order=int(header["ORDER"]),
                    weighting=bool(header["WEIGHT"]),
                    undersample_style=str(header["UNDERSMP"]),
                )
                pieces.append(BackgroundModel.from_dict(data))
        return BackgroundList(pieces)


def _stamps_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    params = dict(parameters or {})
    indices = params.get("indices")
    if isinstance(indices, int):
        indices = [indices]
    planes = params.get("planes")
    if isinstance(planes, str):
        planes = [planes]
    return {"bbox": as_box(params.get("bbox")), "indices": indices, "planes": planes}


class _StampsPartialReader(PartialReader):
    """A stamps file opened once (`imaging.stamps_io.StampsReader`) for many partial reads."""

    def __init__(
        self,
        formatter: Formatter,
        fs: fsspec.AbstractFileSystem,
        path: str,
        reader: StampsReader,
        stream: Any = None,
    ) -> None:
        super().__init__(formatter, fs, path)
        self._reader = reader
        self._stream = stream

    def read(self, parameters: Mapping[str, Any] | None = None) -> Any:
        """Read the part given by ``bbox``, ``indices`` and ``planes`` (table and metadata kept).

        The parameters are checked by the datastore's reader, as for every formatter's read.
        """
        return self._reader.read(**_stamps_parameters(parameters))

    def close(self) -> None:
        """Close the stamps reader (and the remote file it reads)."""
        try:
            self._reader.close()
        finally:
            if self._stream is not None:
                self._stream.close()


class BrightStarStampsFitsFormatter(Formatter):
    """`~imaging.stamps.BrightStarStamps` as LSST's multi-extension FITS (`imaging.stamps_io`).

    Read parameters: ``bbox`` (a sub-box of every stamp, only those pixels are read),
    ``indices`` (which stamps to read) and ``planes`` (which of image, mask and variance;
    a stack reads no variance).
    """

    extension: ClassVar[str] = ".fits"
    supported_parameters: ClassVar[frozenset[str]] = frozenset({"bbox", "indices", "planes"})

    def write(self, obj: Any, fs: fsspec.AbstractFileSystem, path: str) -> None:
        """Write the stamps."""
        self.write_through(fs, path, lambda stream: write_stamps_fits(obj, stream))

    def read(
        self,
        fs: fsspec.AbstractFileSystem,
        path: str,
        *,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Read the stamps, or the part given by ``bbox`` and ``indices``."""
        self.check_parameters(parameters)
        params = _stamps_parameters(parameters)
        if _local(fs):
            return read_stamps_fits(path, **params)
        # Remote: read through a file object so that only the needed byte ranges are fetched.
        if not fs.exists(path):
            raise FileNotFoundError(f"Stamps file {path} does not exist")
        with fs.open(path, "rb") as stream:
            return read_stamps_fits(stream, **params)

    def open_reader(self, fs: fsspec.AbstractFileSystem, path: str) -> PartialReader:
        """Open the file once: header and table parsed, HDUs located, for many reads."""
        if _local(fs):
            return _StampsPartialReader(self, fs, path, FitsStampsReader(path))
        if not fs.exists(path):
            raise FileNotFoundError(f"Stamps file {path} does not exist")
        stream = fs.open(path, "rb")
        try:
            return _StampsPartialReader(self, fs, path, FitsStampsReader(stream), stream)
        except BaseException:
            stream.close()
            raise


class BrightStarStampsZarrFormatter(Formatter):
    """`~imaging.stamps.BrightStarStamps` as a zarr v3 group: one sharded cube per plane.

    Read parameters as `BrightStarStampsFitsFormatter`; only the chunks touched are read.
    """

    extension: ClassVar[str] = ".zarr"
    is_directory: ClassVar[bool] = True
    supported_parameters: ClassVar[frozenset[str]] = frozenset({"bbox", "indices", "planes"})

    def _store(self, fs: fsspec.AbstractFileSystem, path: str, *, read_only: bool) -> Any:
        return _zarr_store(fs, path, read_only=read_only)

    def write(self, obj: Any, fs: fsspec.AbstractFileSystem, path: str) -> None:
        """Write the stamps as a zarr group."""
        write_stamps_zarr(obj, self._store(fs, path, read_only=False), atomic=_local(fs))

    def read(
        self,
        fs: fsspec.AbstractFileSystem,
        path: str,
        *,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Read the stamps, or the part given by ``bbox`` and ``indices``."""
        self.check_parameters(parameters)
        if not fs.exists(path):
            raise FileNotFoundError(f"Stamps zarr group {path} does not exist")
        return read_stamps_zarr(
            self._store(fs, path, read_only=True), source=path, **_stamps_parameters(parameters)
        )

    def open_reader(self, fs: fsspec.AbstractFileSystem, path: str) -> PartialReader:
        """Open the group once: attributes, table and array metadata read, for many reads."""
        if not fs.exists(path):
            raise FileNotFoundError(f"Stamps zarr group {path} does not exist")
        store = self._store(fs, path, read_only=True)
        return _StampsPartialReader(self, fs, path, ZarrStampsReader(store, source=path))


class ExtendedPsfFitsFormatter(Formatter):
    """`~imaging.extended_psf.ExtendedPsf` as LSST's FITS layout (`imaging.extended_psf_io`)."""

    extension: ClassVar[str] = ".fits"

    def write(self, obj: Any, fs: fsspec.AbstractFileSystem, path: str) -> None:
        """Write the models."""
        self.write_through(fs, path, lambda stream: write_extended_psf_fits(obj, stream))

    def read(
        self,
        fs: fsspec.AbstractFileSystem,
        path: str,
        *,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Read the models."""
        self.check_parameters(parameters)
        if _local(fs):
            return read_extended_psf_fits(path)
        if not fs.exists(path):
            raise FileNotFoundError(f"Extended PSF file {path} does not exist")
        with fs.open(path, "rb") as stream:
            return read_extended_psf_fits(stream)


class ExtendedPsfZarrFormatter(Formatter):
    """`~imaging.extended_psf.ExtendedPsf` as a zarr v3 group, one subgroup per model."""

    extension: ClassVar[str] = ".zarr"
    is_directory: ClassVar[bool] = True

    def _store(self, fs: fsspec.AbstractFileSystem, path: str, *, read_only: bool) -> Any:
        return _zarr_store(fs, path, read_only=read_only)

    def write(self, obj: Any, fs: fsspec.AbstractFileSystem, path: str) -> None:
        """Write the models as a zarr group."""
        write_extended_psf_zarr(obj, self._store(fs, path, read_only=False))

    def read(
        self,
        fs: fsspec.AbstractFileSystem,
        path: str,
        *,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Read the models."""
        self.check_parameters(parameters)
        if not fs.exists(path):
            raise FileNotFoundError(f"Extended PSF zarr group {path} does not exist")
        return read_extended_psf_zarr(self._store(fs, path, read_only=True), source=path)


class CameraYamlFormatter(Formatter):
    """A camera description (`~imaging.sim.camera.Camera`) as ``register-instrument`` YAML."""

    extension: ClassVar[str] = ".yaml"

    def write(self, obj: Any, fs: fsspec.AbstractFileSystem, path: str) -> None:
        """Write the camera as YAML."""
        import yaml

        text = yaml.safe_dump(obj.to_dict(), sort_keys=False).encode()
        self.write_through(fs, path, lambda stream: stream.write(text))

    def read(
        self,
        fs: fsspec.AbstractFileSystem,
        path: str,
        *,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Read the camera."""
        import yaml

        from .sim.camera import Camera

        self.check_parameters(parameters)
        with fs.open(path, "rb") as stream:
            data = yaml.safe_load(stream)
        return Camera.from_dict(data, source=path)
