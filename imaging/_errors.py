"""Exception classes of the ``imaging`` package.

Every error raised on purpose by ``imaging`` derives from `ImagingError`, and each specific class
also inherits the builtin exception that describes what happened, so callers may catch either.
Two families: bad input (files, masks, PSFs, catalogs, cameras: `ValueError`/`KeyError`
subclasses) and failures of the characterisation algorithms (`AlgorithmFailure`, a
`RuntimeError`, as LSST raises).
"""

from __future__ import annotations

__all__ = [
    "AlgorithmFailure",
    "AllPixelsMaskedError",
    "ApertureCorrectionError",
    "CameraFormatError",
    "CatalogSchemaError",
    "ExposureFormatError",
    "ImagingError",
    "LengthError",
    "MaskPlaneError",
    "NoPsfCandidatesError",
    "NoStarsSelectedError",
    "PsfError",
    "TooManyCosmicRaysError",
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

class AlgorithmFailure(ImagingError, RuntimeError):  # noqa: N818 (LSST's name)
    """Root of the errors raised by the characterisation algorithms.

    A `RuntimeError`, which is what the LSST tasks raise; messages match the LSST strings
    quoted in ``science.md`` where a port has to match them.
    """


class LengthError(AlgorithmFailure, ValueError):
    """A collection grew past a configured maximum (LSST ``pex::exceptions::LengthError``)."""


class TooManyCosmicRaysError(LengthError):
    """More pixels were flagged as cosmic rays than ``n_cr_pixel_max`` allows."""


class AllPixelsMaskedError(AlgorithmFailure):
    """No unmasked pixel is left to estimate a statistic (e.g. the background)."""


class NoStarsSelectedError(AlgorithmFailure):
    """The star selector found no object passing its cuts."""


class NoPsfCandidatesError(AlgorithmFailure):
    """The PSF determiner got no (usable) PSF candidate."""


class ApertureCorrectionError(AlgorithmFailure):
    """Too few sources to fit an aperture correction."""
