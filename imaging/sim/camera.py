"""Simulated camera: detectors on a focal plane, optics, and its YAML description.

A `Camera` is N detectors (`~imaging.exposure.DetectorInfo`) laid out on a focal plane (mm),
one plate scale, a radial optical distortion ``r' = r (1 + k r²)`` (``k`` in mm⁻², applied to
focal-plane radius from the boresight) and the optical PSF pattern (`PsfField`).

Rotation convention: a detector's ``orientation`` is the counterclockwise rotation of its pixel
axes relative to the focal-plane axes (0, 90, 180 or 270 deg): its +x pixel axis points along
focal-plane direction ``(cos θ, sin θ)``. Focal-plane +y points to sky position angle
``rotation_angle`` (east of north) and focal-plane +x to the west at ``rotation_angle = 0``.

YAML format (read by ``butler register-instrument``)::

    instrument: SimCam            # instrument name (FITS INSTRUME)
    pixel_scale: 0.2              # arcsec / pixel
    pixel_size: 0.01              # mm
    distortion_k: 1.0e-6          # mm^-2, r' = r (1 + k r^2)
    zero_points: {g: 28.3, ...}   # mag giving 1 electron / s, per band
    psf: {beta: 3.5, fwhm_gradient: 0.1, e1: 0.0, e2: 0.0, e_radial: 0.04,
          halo_fraction: 0.02, halo_beta: 1.5, halo_scale: 10.0}
    detectors:
      - id: 0
        name: S00
        size: [4096, 4096]        # width, height (pixels)
        pixel_scale: 0.2          # arcsec / pixel (must equal the camera's)
        focal_plane_position: [-41.8, -41.8]   # mm, detector centre
        rotation: 0               # deg, 0/90/180/270
        gain: 1.5                 # e- / ADU
        read_noise: 6.0           # e-
        saturation: 66000.0       # ADU
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .._errors import CameraFormatError
from ..exposure import DetectorInfo
from ..geometry import Box
from .psf_field import PsfField

__all__ = ["DEFAULT_ZERO_POINTS", "Camera", "make_camera"]

DEFAULT_ZERO_POINTS: dict[str, float] = {
    "u": 26.5,
    "g": 28.3,
    "r": 28.1,
    "i": 27.8,
    "z": 27.4,
    "y": 26.6,
}
"""Magnitude giving 1 electron per second, per band (LSST-like throughput)."""


@dataclass(frozen=True, slots=True)
class Camera:
    """A simulated camera.

    Parameters
    ----------
    name : `str`
        Instrument name.
    detectors : `tuple` [`~imaging.exposure.DetectorInfo`, ...]
        Detectors, unique ids.
    pixel_scale : `float`
        Plate scale at the boresight (arcsec / pixel).
    distortion_k : `float`
        Radial distortion coefficient (mm⁻²): ``r' = r (1 + k r²)``.
    psf : `PsfField`
        Optical PSF pattern over the focal plane.
    zero_points : `dict` [`str`, `float`]
        Magnitude giving 1 e-/s per band.
    """

    name: str
    detectors: tuple[DetectorInfo, ...]
    pixel_scale: float = 0.2
    distortion_k: float = 1.0e-6
    psf: PsfField = field(default_factory=PsfField)
    zero_points: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_ZERO_POINTS))

    def __post_init__(self) -> None:
        object.__setattr__(self, "detectors", tuple(self.detectors))
        ids = [d.id for d in self.detectors]
        if len(set(ids)) != len(ids):
            raise CameraFormatError(f"Camera {self.name!r}: duplicate detector ids {ids}")
        sizes = {d.pixel_size for d in self.detectors}
        if len(sizes) > 1:
            raise CameraFormatError(f"Camera {self.name!r}: detectors differ in pixel_size")

    @property
    def pixel_size(self) -> float:
        """Pixel pitch (mm)."""
        return self.detectors[0].pixel_size if self.detectors else 0.01

    @property
    def plate_scale(self) -> float:
        """Arcsec per mm on the focal plane (at the boresight)."""
        return self.pixel_scale / self.pixel_size

    @property
    def field_radius(self) -> float:
        """Largest distance of a detector corner from the boresight (mm)."""
        radius = 0.0
        for det in self.detectors:
            b = det.bbox
            xs = np.array([b.x0 - 0.5, b.x1 - 0.5, b.x0 - 0.5, b.x1 - 0.5])
            ys = np.array([b.y0 - 0.5, b.y0 - 0.5, b.y1 - 0.5, b.y1 - 0.5])
            fx, fy = det.pixel_to_focal_plane(xs, ys)
            radius = max(radius, float(np.hypot(fx, fy).max()))
        return radius

    def detector(self, detector_id: int) -> DetectorInfo:
        """Return the detector with id ``detector_id``.

        Raises
        ------
        KeyError
            If no detector has that id.
        """
        for det in self.detectors:
            if det.id == detector_id:
                return det
        raise KeyError(f"Camera {self.name!r} has no detector {detector_id}")

    def zero_point(self, band: str) -> float:
        """Magnitude giving 1 e-/s in ``band``; raises `KeyError` naming the band if unknown."""
        try:
            return self.zero_points[band]
        except KeyError:
            raise KeyError(f"Camera {self.name!r} has no zero point for band {band!r}") from None

    # -- YAML -------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return the YAML structure described in the module docstring."""
        return {
            "instrument": self.name,
            "pixel_scale": self.pixel_scale,
            "pixel_size": self.pixel_size,
            "distortion_k": self.distortion_k,
            "zero_points": dict(self.zero_points),
            "psf": self.psf.to_dict(),
            "detectors": [
                {
                    "id": d.id,
                    "name": d.name,
                    "size": [d.bbox.width, d.bbox.height],
                    "pixel_scale": self.pixel_scale,
                    "focal_plane_position": list(d.focal_plane_position),
                    "rotation": d.orientation,
                    "gain": d.gain,
                    "read_noise": d.read_noise,
                    "saturation": d.saturation,
                }
                for d in self.detectors
            ],
        }

    def to_yaml(self, path: str | os.PathLike[str]) -> Path:
        """Write the camera description as YAML (atomically) and return the path."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        os.replace(tmp, path)
        return path

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "camera description") -> Camera:
        """Build a camera from the YAML structure.

        Raises
        ------
        CameraFormatError
            If a key is missing or a value invalid; the message names ``source`` and the key.
        """

        def need(mapping: Any, key: str, where: str) -> Any:
            if not isinstance(mapping, dict):
                raise CameraFormatError(f"{source}: {where or 'top level'} must be a mapping")
            if key not in mapping:
                raise CameraFormatError(f"{source}: missing key {where + key!r}")
            return mapping[key]

        name = str(need(data, "instrument", ""))
        pixel_scale = float(need(data, "pixel_scale", ""))
        pixel_size = float(data.get("pixel_size", 0.01))
        detectors = []
        entries = need(data, "detectors", "")
        if not isinstance(entries, list) or not entries:
            raise CameraFormatError(f"{source}: key 'detectors' must be a non-empty list")
        for i, entry in enumerate(entries):
            where = f"detectors[{i}]."
            try:
                size = need(entry, "size", where)
                if float(entry.get("pixel_scale", pixel_scale)) != pixel_scale:
                    raise CameraFormatError(
                        f"{source}: key {where}pixel_scale differs from the camera pixel_scale"
                    )
                detectors.append(
                    DetectorInfo(
                        id=int(need(entry, "id", where)),
                        name=str(need(entry, "name", where)),
                        bbox=Box(0, 0, int(size[0]), int(size[1])),
                        orientation=float(need(entry, "rotation", where)),
                        focal_plane_position=tuple(need(entry, "focal_plane_position", where)),
                        pixel_size=pixel_size,
                        gain=float(need(entry, "gain", where)),
                        read_noise=float(need(entry, "read_noise", where)),
                        saturation=float(need(entry, "saturation", where)),
                    )
                )
            except CameraFormatError:
                raise
            except (TypeError, ValueError, IndexError) as err:
                raise CameraFormatError(
                    f"{source}: invalid value under {where[:-1]}: {err}"
                ) from err
        try:
            psf = PsfField.from_dict(data.get("psf", {}))
        except (TypeError, ValueError) as err:
            raise CameraFormatError(f"{source}: invalid key 'psf': {err}") from err
        return cls(
            name=name,
            detectors=tuple(detectors),
            pixel_scale=pixel_scale,
            distortion_k=float(data.get("distortion_k", 0.0)),
            psf=psf,
            zero_points={str(k): float(v) for k, v in data.get("zero_points", {}).items()}
            or dict(DEFAULT_ZERO_POINTS),
        )

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Camera:
        """Read a camera YAML file.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        CameraFormatError
            If the YAML is invalid or a key is missing (names the file and key).
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"Camera description {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise CameraFormatError(f"{path}: not valid YAML: {err}") from err
        return cls.from_dict(data, source=str(path))


def make_camera(
    n_detectors: int = 9,
    *,
    detector_size: int | tuple[int, int] = 4096,
    pixel_scale: float = 0.2,
    pixel_size: float = 0.01,
    gap: float = 0.05,
    orientations: Sequence[float] | None = None,
    distortion_k: float = 1.0e-6,
    psf: PsfField | None = None,
    name: str = "SimCam",
    gain: float = 1.5,
    read_noise: float = 6.0,
    full_well: float = 100_000.0,
) -> Camera:
    """Build a camera of ``n_detectors`` on a square grid centred on the boresight.

    Parameters
    ----------
    n_detectors : `int`
        Number of detectors, laid out row by row on a ``ceil(sqrt(n))`` wide grid.
    detector_size : `int` or `tuple` [`int`, `int`]
        Detector width and height (pixels).
    pixel_scale : `float`
        Arcsec per pixel.
    pixel_size : `float`
        Pixel pitch (mm).
    gap : `float`
        Gap between detectors as a fraction of the detector size.
    orientations : `~collections.abc.Sequence` [`float`], optional
        Rotation of each detector (deg); `None` cycles 0, 90, 180, 270.
    distortion_k : `float`
        Radial distortion (mm⁻²).
    psf : `PsfField`, optional
        Optical PSF pattern; `None` uses the defaults of `PsfField`.
    name : `str`
        Instrument name.
    gain, read_noise, full_well : `float`
        Typical gain (e-/ADU), read noise (e-) and full well (e-); each detector deviates by a
        few per cent, deterministically. Saturation (ADU) is ``full_well / gain``.

    Returns
    -------
    camera : `Camera`
    """
    if n_detectors < 1:
        raise ValueError(f"n_detectors must be positive, got {n_detectors}")
    nx_pix, ny_pix = (
        (detector_size, detector_size) if isinstance(detector_size, int) else detector_size
    )
    ncol = math.ceil(math.sqrt(n_detectors))
    nrow = math.ceil(n_detectors / ncol)
    pitch = max(nx_pix, ny_pix) * pixel_size * (1.0 + gap)
    if orientations is None:
        orientations = [(90 * i) % 360 for i in range(n_detectors)]
    if len(orientations) != n_detectors:
        raise ValueError(f"{len(orientations)} orientations for {n_detectors} detectors")
    detectors = []
    for i in range(n_detectors):
        row, col = divmod(i, ncol)
        wobble = ((7 * i) % 5 - 2) / 100.0  # deterministic -2%..+2% per-detector spread
        det_gain = round(gain * (1.0 + wobble), 4)
        detectors.append(
            DetectorInfo(
                id=i,
                name=f"S{row}{col}",
                bbox=Box(0, 0, nx_pix, ny_pix),
                orientation=float(orientations[i]),
                focal_plane_position=(
                    (col - (ncol - 1) / 2.0) * pitch,
                    (row - (nrow - 1) / 2.0) * pitch,
                ),
                pixel_size=pixel_size,
                gain=det_gain,
                read_noise=round(read_noise * (1.0 - wobble), 4),
                saturation=round(full_well * (1.0 + wobble / 2) / det_gain, 1),
            )
        )
    return Camera(
        name=name,
        detectors=tuple(detectors),
        pixel_scale=pixel_scale,
        distortion_k=distortion_k,
        psf=PsfField() if psf is None else psf,
    )
