"""Exceptions raised by the image-characterisation algorithms in `imaging`.

Every error derives from `AlgorithmFailure` (itself a `RuntimeError`, which is what the
LSST tasks raise), and where a builtin says more precisely what happened the error also
inherits it, so callers can catch either.  Messages match the LSST strings quoted in
``science.md`` where a port has to match them.
"""

from __future__ import annotations

__all__ = [
    "AlgorithmFailure",
    "AllPixelsMaskedError",
    "ApertureCorrectionError",
    "LengthError",
    "NoPsfCandidatesError",
    "NoStarsSelectedError",
    "TooManyCosmicRaysError",
]


class AlgorithmFailure(RuntimeError):  # noqa: N818 (name fixed by the house brief)
    """Root of the errors raised by the characterisation algorithms."""


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
