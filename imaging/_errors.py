"""Exception classes of the ``imaging`` package.

Every error raised on purpose by ``imaging`` derives from `ImagingError`, and each specific class
also inherits the builtin exception that describes what happened, so callers may catch either.
"""

from __future__ import annotations

__all__ = [
    "CameraFormatError",
    "CatalogSchemaError",
    "ExposureFormatError",
    "ImagingError",
    "MaskPlaneError",
    "PsfError",
]


class ImagingError(Exception):
    """Root of all errors raised by the ``imaging`` package."""


class ExposureFormatError(ImagingError, ValueError):
    """A file does not hold a readable exposure: missing or inconsistent keyword or array.

    The message names the file and the keyword (or HDU / zarr array) at fault.
    """


class MaskPlaneError(ImagingError, KeyError):
    """A mask plane name is unknown, duplicated, or no bit is left (32 planes at most)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class PsfError(ImagingError, ValueError):
    """A PSF cannot be built, evaluated or deserialized (unknown ``kind``, bad parameter)."""


class CatalogSchemaError(ImagingError, ValueError):
    """A table does not match its declared `~imaging.catalog.CatalogSchema`."""


class CameraFormatError(ImagingError, ValueError):
    """A camera description (YAML) is missing a key or holds an invalid value."""
