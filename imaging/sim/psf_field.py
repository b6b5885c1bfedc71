"""The simulated PSF: an optical pattern over the focal plane, and the truth `Psf` it gives.

The PSF is defined on the sky, in GalSim's local world frame ``(u, v)`` (arcsec). It is a
Moffat profile (``beta``) whose FWHM is the visit seeing times ``1 + fwhm_gradient (r/R)²`` and
whose distortion ellipticity is ``(e1, e2) + e_radial (r/R)² (cos 2φ, sin 2φ)``, where ``(r, φ)``
is the focal-plane polar position and ``R`` the field radius. Bright stars also get a power-law
halo (a Moffat with ``halo_beta`` and ``halo_scale`` times the core FWHM, carrying
``halo_fraction`` of the flux); the truth PSF is the core, which is what faint stars show.

Pixel images go through the local Jacobian of the detector's GalSim WCS at each position
(``wcs.local(image_pos)``), so distortion and detector rotation shape the PSF in pixels, and the
Moffat is convolved with the pixel response.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import galsim
import numpy as np

from ..exposure import DetectorInfo
from ..psf import Psf, adaptive_moments
from ..zarr_io import wcs_from_dict, wcs_to_dict
from .wcs import to_galsim_wcs

__all__ = ["PsfField", "TruthPsf"]


@dataclass(frozen=True, slots=True)
class PsfField:
    """Optical PSF pattern over the focal plane (see the module docstring).

    Parameters
    ----------
    beta : `float`
        Moffat index of the core.
    fwhm_gradient : `float`
        Fractional FWHM increase at the field edge.
    e1, e2 : `float`
        Constant distortion ellipticity in the sky ``(u, v)`` frame.
    e_radial : `float`
        Amplitude of the radial ellipticity pattern at the field edge.
    halo_fraction : `float`
        Flux fraction in the bright-star halo.
    halo_beta : `float`
        Moffat index of the halo (surface brightness ∝ r^(-2 beta) far out).
    halo_scale : `float`
        Halo FWHM in units of the core FWHM.
    """

    beta: float = 3.5
    fwhm_gradient: float = 0.1
    e1: float = 0.0
    e2: float = 0.0
    e_radial: float = 0.04
    halo_fraction: float = 0.02
    halo_beta: float = 1.5
    halo_scale: float = 10.0

    def at(
        self, fx: float, fy: float, *, seeing: float, field_radius: float
    ) -> tuple[float, float, float]:
        """Return ``(fwhm_arcsec, e1, e2)`` at focal-plane position ``(fx, fy)`` (mm)."""
        rr = (fx * fx + fy * fy) / max(field_radius, 1e-9) ** 2
        phi = math.atan2(fy, fx)
        fwhm = seeing * (1.0 + self.fwhm_gradient * rr)
        e1 = self.e1 + self.e_radial * rr * math.cos(2 * phi)
        e2 = self.e2 + self.e_radial * rr * math.sin(2 * phi)
        return fwhm, e1, e2

    def core(self, fwhm: float, e1: float, e2: float) -> galsim.GSObject:
        """Return the unit-flux core profile (arcsec)."""
        return galsim.Moffat(beta=self.beta, fwhm=fwhm).shear(e1=e1, e2=e2)

    def halo(self, fwhm: float) -> galsim.GSObject:
        """Return the unit-flux round halo profile (arcsec)."""
        return galsim.Moffat(beta=self.halo_beta, fwhm=fwhm * self.halo_scale)

    def to_dict(self) -> dict[str, float]:
        """Return the parameters as a dictionary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PsfField:
        """Inverse of `to_dict`; missing keys take their defaults."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown PSF keys {sorted(unknown)}")
        return cls(**{k: float(v) for k, v in data.items()})


class TruthPsf(Psf, kind="sim_truth"):
    """The true (core) PSF of one simulated detector-visit, as a `~imaging.psf.Psf`.

    Parameters
    ----------
    field : `PsfField`
        Optical pattern.
    seeing : `float`
        Visit seeing FWHM (arcsec).
    field_radius : `float`
        Field radius normalizing the pattern (mm).
    detector : `~imaging.exposure.DetectorInfo`
        Detector geometry (pixel to focal plane).
    wcs : `astropy.wcs.WCS`
        Detector WCS, giving the local Jacobian.
    size : `int`
        Odd kernel size (pixels).
    """

    def __init__(
        self,
        field: PsfField,
        *,
        seeing: float,
        field_radius: float,
        detector: DetectorInfo,
        wcs: Any,
        size: int = 41,
    ) -> None:
        if size % 2 == 0:
            raise ValueError(f"TruthPsf size must be odd, got {size}")
        self.field = field
        self.seeing = float(seeing)
        self.field_radius = float(field_radius)
        self.detector = detector
        self.wcs = wcs
        self.size = int(size)
        self._galsim_wcs = to_galsim_wcs(wcs)

    def profile_at(self, x: float, y: float) -> tuple[galsim.GSObject, galsim.JacobianWCS, float]:
        """Return the core profile (arcsec), the local Jacobian, and the FWHM (arcsec) at (x, y)."""
        fx, fy = self.detector.pixel_to_focal_plane(x, y)
        fwhm, e1, e2 = self.field.at(
            float(fx), float(fy), seeing=self.seeing, field_radius=self.field_radius
        )
        local = self._galsim_wcs.local(galsim.PositionD(x + 1.0, y + 1.0))
        return self.field.core(fwhm, e1, e2), local, fwhm

    def _draw(self, position: tuple[float, float], offset: tuple[float, float]) -> np.ndarray:
        profile, local, _ = self.profile_at(float(position[0]), float(position[1]))
        image = profile.drawImage(nx=self.size, ny=self.size, wcs=local, offset=offset)
        array = image.array.astype(float)
        return array / array.sum()

    def kernel_image(self, position: tuple[float, float]) -> np.ndarray:  # noqa: D102
        return self._draw(position, (0.0, 0.0))

    def image(  # noqa: D102
        self, position: tuple[float, float], *, offset: tuple[float, float] = (0.0, 0.0)
    ) -> np.ndarray:
        return self._draw(position, (float(offset[0]), float(offset[1])))

    def moments(self, position: tuple[float, float]) -> tuple[float, float, float]:
        """Return adaptive moments ``(ixx, iyy, ixy)`` (pixels²) of the true PSF at ``position``."""
        kernel = self.kernel_image(position)
        try:
            result = galsim.hsm.FindAdaptiveMom(galsim.Image(kernel, scale=1.0))
        except galsim.GalSimHSMError:
            return adaptive_moments(kernel)
        sigma = result.moments_sigma
        e1, e2 = result.observed_shape.e1, result.observed_shape.e2
        scale = sigma * sigma / math.sqrt(max(1.0 - e1 * e1 - e2 * e2, 1e-12))
        return scale * (1 + e1), scale * (1 - e1), scale * e2

    def to_dict(self) -> dict[str, Any]:  # noqa: D102
        return {
            "kind": self.kind,
            "field": self.field.to_dict(),
            "seeing": self.seeing,
            "field_radius": self.field_radius,
            "detector": self.detector.to_dict(),
            "wcs": wcs_to_dict(self.wcs),
            "size": self.size,
        }

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> TruthPsf:
        return cls(
            PsfField.from_dict(data["field"]),
            seeing=data["seeing"],
            field_radius=data["field_radius"],
            detector=DetectorInfo.from_dict(data["detector"]),
            wcs=wcs_from_dict(data["wcs"]),
            size=data["size"],
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TruthPsf):
            return NotImplemented
        return json.dumps(self.to_dict(), sort_keys=True) == json.dumps(
            other.to_dict(), sort_keys=True
        )

    __hash__ = Psf.__hash__
