"""Exposure: an image with its mask, variance and the metadata needed to interpret it.

An `Exposure` holds three co-registered 2-D arrays (``image`` float32 in ADU or nJy, ``mask`` a
`~imaging.mask.Mask`, ``variance`` float32 in image units²) placed at ``xy0`` in the *parent*
pixel frame: array element ``[0, 0]`` is pixel ``xy0``. The WCS, the PSF and every position
passed to them use parent coordinates, so a sub-exposure (`Exposure.subset`) shares the WCS and
PSF objects unchanged; only the FITS writer shifts ``CRPIX`` so a plain FITS reader sees the
right sky. `DetectorInfo` and `VisitInfo` are frozen value objects describing where the pixels
came from; ``metadata`` is a free-form `astropy.io.fits.Header` owned by the exposure.

Detector orientation convention: ``orientation`` is the counterclockwise rotation (degrees, a
multiple of 90) of the detector pixel axes relative to the focal-plane axes, so the detector +x
axis points along focal-plane direction ``(cos θ, sin θ)``. ``focal_plane_position`` is where the
detector centre pixel lies on the focal plane (mm).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from .geometry import Box
from .mask import Mask
from .psf import Psf

__all__ = ["DetectorInfo", "Exposure", "VisitInfo"]


@dataclass(frozen=True, slots=True)
class DetectorInfo:
    """Geometry and electronics of one detector.

    Parameters
    ----------
    id : `int`
        Detector number, unique in the camera.
    name : `str`
        Detector name (e.g. ``"R00_S00"``).
    bbox : `~imaging.geometry.Box`
        Pixel bounding box of the full detector, usually starting at ``(0, 0)``.
    orientation : `float`
        Counterclockwise rotation of pixel axes relative to focal-plane axes (deg, 0/90/180/270).
    focal_plane_position : `tuple` [`float`, `float`]
        Focal-plane position of the detector centre (mm).
    pixel_size : `float`
        Pixel pitch (mm).
    gain : `float`
        Electrons per ADU.
    read_noise : `float`
        Read noise (electrons).
    saturation : `float`
        Saturation level (ADU).
    """

    id: int
    name: str
    bbox: Box
    orientation: float = 0.0
    focal_plane_position: tuple[float, float] = (0.0, 0.0)
    pixel_size: float = 0.01
    gain: float = 1.0
    read_noise: float = 5.0
    saturation: float = 65535.0

    def __post_init__(self) -> None:
        if float(self.orientation) % 90.0 != 0.0:
            raise ValueError(
                f"Detector {self.name!r}: orientation must be a multiple of 90 deg, "
                f"got {self.orientation}"
            )
        if not (self.pixel_size > 0 and self.gain > 0 and self.read_noise >= 0):
            raise ValueError(f"Detector {self.name!r}: pixel_size and gain must be positive")
        object.__setattr__(
            self, "focal_plane_position", tuple(float(v) for v in self.focal_plane_position)
        )

    def _rotation(self) -> tuple[float, float]:
        theta = math.radians(self.orientation)
        return round(math.cos(theta), 12), round(math.sin(theta), 12)

    def pixel_to_focal_plane(
        self, x: float | np.ndarray, y: float | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Map detector pixel coordinates to focal-plane coordinates (mm).

        Parameters
        ----------
        x, y : `float` or `numpy.ndarray`
            Pixel coordinates in the detector's own frame (the frame of ``bbox``).

        Returns
        -------
        fx, fy : `numpy.ndarray`
            Focal-plane coordinates (mm).
        """
        cx, cy = self.bbox.center
        c, s = self._rotation()
        dx = (np.asarray(x, dtype=float) - cx) * self.pixel_size
        dy = (np.asarray(y, dtype=float) - cy) * self.pixel_size
        fx0, fy0 = self.focal_plane_position
        return fx0 + c * dx - s * dy, fy0 + s * dx + c * dy

    def focal_plane_to_pixel(
        self, fx: float | np.ndarray, fy: float | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of `pixel_to_focal_plane`: focal-plane mm to detector pixels."""
        cx, cy = self.bbox.center
        c, s = self._rotation()
        fx0, fy0 = self.focal_plane_position
        dx = np.asarray(fx, dtype=float) - fx0
        dy = np.asarray(fy, dtype=float) - fy0
        return cx + (c * dx + s * dy) / self.pixel_size, cy + (-s * dx + c * dy) / self.pixel_size

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-able values (``bbox`` as ``[x0, y0, width, height]``)."""
        data = asdict(self)
        data["bbox"] = self.bbox.to_list()
        data["focal_plane_position"] = list(self.focal_plane_position)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorInfo:
        """Inverse of `to_dict`."""
        values = dict(data)
        values["bbox"] = Box.from_list(values["bbox"])
        values["focal_plane_position"] = tuple(values["focal_plane_position"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class VisitInfo:
    """Where, when and how an exposure was taken.

    Parameters
    ----------
    id : `int`
        Visit number.
    band : `str`
        Abstract band (``"g"``, ``"r"``...).
    physical_filter : `str`
        Filter name as the instrument knows it.
    exposure_time : `float`
        Open-shutter time (s).
    mjd : `float`
        Start of exposure (MJD, TAI).
    boresight_ra, boresight_dec : `float`
        Telescope pointing (deg, ICRS).
    rotation_angle : `float`
        Sky rotation angle: position angle of the focal-plane +y axis, east of north (deg).
    instrument : `str`
        Instrument name (FITS ``INSTRUME``).
    """

    id: int
    band: str
    physical_filter: str
    exposure_time: float
    mjd: float
    boresight_ra: float
    boresight_dec: float
    rotation_angle: float = 0.0
    instrument: str = ""

    @property
    def date_obs(self) -> str:
        """Start of exposure as an ISO-8601 string (TAI, FITS ``DATE-OBS``)."""
        return Time(self.mjd, format="mjd", scale="tai").isot

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-able values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VisitInfo:
        """Inverse of `to_dict`."""
        return cls(**data)


class Exposure:
    """An image, mask and variance with WCS, PSF, detector and visit description.

    Parameters
    ----------
    image : `numpy.ndarray`
        2-D pixel values (converted to ``float32``; not copied if already ``float32``).
    mask : `~imaging.mask.Mask`, optional
        Same shape as ``image``; `None` means an empty mask with the default planes.
    variance : `numpy.ndarray`, optional
        Same shape (``float32``); `None` means zeros.
    wcs : `astropy.wcs.WCS`, optional
        Celestial WCS in the parent pixel frame (0-based, as ``wcs.pixel_to_world`` uses);
        `None` if unknown.
    psf : `~imaging.psf.Psf`, optional
        PSF model in the parent pixel frame; `None` if not determined yet.
    detector : `DetectorInfo`, optional
    visit : `VisitInfo`, optional
    zero_point : `float`, optional
        Magnitude of a source with a total of 1 image unit (mag); `None` if uncalibrated.
    metadata : `astropy.io.fits.Header`, optional
        Free-form header cards; copied.
    xy0 : `tuple` [`int`, `int`]
        Parent pixel coordinates of array element ``[0, 0]``.

    Raises
    ------
    ValueError
        If the arrays are not 2-D or their shapes differ.
    """

    def __init__(
        self,
        image: np.ndarray,
        *,
        mask: Mask | None = None,
        variance: np.ndarray | None = None,
        wcs: WCS | None = None,
        psf: Psf | None = None,
        detector: DetectorInfo | None = None,
        visit: VisitInfo | None = None,
        zero_point: float | None = None,
        metadata: fits.Header | None = None,
        xy0: tuple[int, int] = (0, 0),
    ) -> None:
        self.image = np.asarray(image).astype(np.float32, copy=False)
        if self.image.ndim != 2:
            raise ValueError(f"Exposure image must be 2-D, got shape {self.image.shape}")
        self.mask = Mask(self.image.shape) if mask is None else mask
        self.variance = (
            np.zeros(self.image.shape, dtype=np.float32)
            if variance is None
            else np.asarray(variance).astype(np.float32, copy=False)
        )
        for name, shape in (("mask", self.mask.shape), ("variance", self.variance.shape)):
            if shape != self.image.shape:
                raise ValueError(f"Exposure {name} shape {shape} != image shape {self.image.shape}")
        self.wcs = wcs
        self.psf = psf
        self.detector = detector
        self.visit = visit
        self.zero_point = None if zero_point is None else float(zero_point)
        self.metadata = fits.Header() if metadata is None else metadata.copy()
        self.xy0 = (int(xy0[0]), int(xy0[1]))

    @property
    def bbox(self) -> Box:
        """Bounding box of the arrays in the parent frame."""
        return Box.from_shape(self.image.shape, origin=self.xy0)

    @property
    def width(self) -> int:
        """Number of columns."""
        return self.image.shape[1]

    @property
    def height(self) -> int:
        """Number of rows."""
        return self.image.shape[0]

    def has_psf(self) -> bool:
        """Return `True` if a PSF is attached."""
        return self.psf is not None

    hasPsf = has_psf  # noqa: N815 - LSST's published name

    def has_wcs(self) -> bool:
        """Return `True` if a WCS is attached."""
        return self.wcs is not None

    hasWcs = has_wcs  # noqa: N815 - LSST's published name

    def subset(self, box: Box, *, copy: bool = False) -> Exposure:
        """Return the part of the exposure inside ``box`` (parent coordinates).

        The result keeps ``xy0 = box.origin`` and shares WCS, PSF, detector and visit; its arrays
        are views unless ``copy`` is true.

        Raises
        ------
        ValueError
            If ``box`` is empty or not inside `bbox`.
        """
        if box.is_empty() or not self.bbox.contains(box):
            raise ValueError(f"Sub-exposure {box} is empty or not inside {self.bbox}")
        rows, cols = box.slices(self.xy0)
        image = self.image[rows, cols]
        variance = self.variance[rows, cols]
        mask = self.mask[rows, cols]
        if copy:
            image, variance, mask = image.copy(), variance.copy(), mask.copy()
        return Exposure(
            image,
            mask=mask,
            variance=variance,
            wcs=self.wcs,
            psf=self.psf,
            detector=self.detector,
            visit=self.visit,
            zero_point=self.zero_point,
            metadata=self.metadata,
            xy0=box.origin,
        )

    def __getitem__(self, box: Box) -> Exposure:
        """Return ``subset(box)``: a view on the pixels inside ``box``."""
        if not isinstance(box, Box):
            raise TypeError(f"Exposure[...] takes a Box, got {type(box).__name__}")
        return self.subset(box)

    def clone(self) -> Exposure:
        """Return a deep copy of arrays, WCS and metadata (PSF, detector, visit are immutable)."""
        return Exposure(
            self.image.copy(),
            mask=self.mask.copy(),
            variance=self.variance.copy(),
            wcs=None if self.wcs is None else self.wcs.deepcopy(),
            psf=self.psf,
            detector=self.detector,
            visit=self.visit,
            zero_point=self.zero_point,
            metadata=self.metadata.copy(),
            xy0=self.xy0,
        )

    def __repr__(self) -> str:
        det = None if self.detector is None else self.detector.id
        visit = None if self.visit is None else self.visit.id
        return (
            f"Exposure(bbox={self.bbox}, detector={det}, visit={visit}, "
            f"wcs={self.wcs is not None}, psf={type(self.psf).__name__ if self.psf else None})"
        )
