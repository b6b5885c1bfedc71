"""InstallGaussianPsfTask: put a simple Gaussian PSF on an exposure."""

from __future__ import annotations

import math
from typing import Any

from imaging.psf import GaussianPsf
from pipeline import Config, Field, Struct, Task

__all__ = ["InstallGaussianPsfConfig", "InstallGaussianPsfTask", "psf_average_position"]

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def psf_average_position(exposure: Any) -> tuple[float, float]:
    """Where to evaluate an exposure's PSF as a whole: its average position, or the centre."""
    position = getattr(exposure.psf, "average_position", None)
    if position is not None:
        return tuple(position)
    return exposure.bbox.center


class InstallGaussianPsfConfig(Config):
    """Configuration of `InstallGaussianPsfTask`."""

    fwhm = Field(
        float,
        "FWHM of the Gaussian when the exposure has no PSF (pixels)",
        default=1.5 * _FWHM_PER_SIGMA,
    )
    width = Field(int, "Width and height of the PSF kernel (pixels, odd)", default=11)

    def validate(self) -> None:
        """Check the kernel width is odd and positive.

        Raises
        ------
        RuntimeError
            If ``width`` is even or not positive (LSST's behaviour).
        """
        super().validate()
        if self.width <= 0 or self.width % 2 == 0:
            raise RuntimeError(f"width={self.width} must be odd and positive")


class InstallGaussianPsfTask(Task):
    """Install a Gaussian PSF: the existing PSF's sigma and size, else the configured FWHM."""

    ConfigClass = InstallGaussianPsfConfig
    _DefaultName = "installSimplePsf"

    def run(self, exposure: Any) -> Struct:
        """Set ``exposure.psf`` to a round Gaussian.

        Raises
        ------
        RuntimeError
            If the sigma to use is not positive.
        """
        if exposure.psf is not None:
            position = psf_average_position(exposure)
            sigma = float(exposure.psf.sigma(position))
            width = int(exposure.psf.kernel_image(position).shape[0])
        else:
            sigma = self.config.fwhm / _FWHM_PER_SIGMA
            width = self.config.width
        if not sigma > 0:
            raise RuntimeError(f"Gaussian PSF sigma must be positive, got {sigma}")
        if width % 2 == 0:
            width += 1
        exposure.psf = GaussianPsf(sigma, size=width)
        return Struct(psf=exposure.psf)
