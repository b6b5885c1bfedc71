"""Point-spread functions: the common interface and a Gaussian model.

`Psf` is the abstract base every PSF model subclasses (the analytic `GaussianPsf` here, the
PSF determiner's spatially varying model, the simulator's truth PSF). Positions are ``(x, y)`` in
the parent pixel frame of the exposure (floats, pixel centres at integers). Kernel images are odd
sized, centred on the middle pixel and normalized to unit sum. Moments are Gaussian-weighted
adaptive second moments in pixels² (LSST's ``computeShape``), computed by `adaptive_moments`
unless a subclass knows them analytically.

Serialization: ``to_dict()`` returns plain JSON-able values with a ``kind`` key; `Psf.from_dict`
finds the class through a registry filled by ``__init_subclass__(kind=...)``. That registry is a
class attribute of `Psf` (the only mutable shared state here); registering a *different* class
under a ``kind`` that is taken raises `PsfError` rather than silently replacing it.
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from ._errors import PsfError

#: Modules defining the PSF kinds this package knows, imported on first use by `Psf.from_dict`.
_PSF_MODULES = {
    "pixel_polynomial": "imaging.psf_determiner",
    "sim_truth": "imaging.sim.psf_field",
}

__all__ = ["FWHM_PER_SIGMA", "GaussianPsf", "Psf", "adaptive_moments", "unweighted_fwhm"]

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
"""FWHM of a Gaussian in units of its sigma (2.3548)."""

Position = tuple[float, float]


def adaptive_moments(
    image: np.ndarray, *, center: Position | None = None, max_iter: int = 50, tol: float = 1e-6
) -> tuple[float, float, float]:
    """Measure adaptive (elliptical-Gaussian-weighted) second moments of a stamp.

    Parameters
    ----------
    image : `numpy.ndarray`
        2-D stamp, background subtracted.
    center : `tuple` [`float`, `float`], optional
        Starting centre ``(x, y)`` in stamp pixels; `None` means the stamp centre.
    max_iter : `int`
        Iteration limit.
    tol : `float`
        Relative convergence tolerance on the moments.

    Returns
    -------
    ixx, iyy, ixy : `float`
        Second moments of the best-matching elliptical Gaussian (pixels²).

    Raises
    ------
    PsfError
        If the weighted flux is not positive or the moments diverge.
    """
    ny, nx = image.shape
    y, x = np.mgrid[0:ny, 0:nx].astype(float)
    cx, cy = ((nx - 1) / 2.0, (ny - 1) / 2.0) if center is None else center
    ixx = iyy = 1.5**2
    ixy = 0.0
    for _ in range(max_iter):
        det = ixx * iyy - ixy * ixy
        if det <= 0:
            raise PsfError("adaptive_moments: weight function became degenerate")
        dx, dy = x - cx, y - cy
        rho = (iyy * dx * dx - 2.0 * ixy * dx * dy + ixx * dy * dy) / det
        w = np.exp(-0.5 * rho) * image
        flux = w.sum()
        if not flux > 0:
            raise PsfError("adaptive_moments: weighted flux is not positive")
        cx, cy = cx + (w * dx).sum() / flux, cy + (w * dy).sum() / flux
        dx, dy = x - cx, y - cy
        mxx, myy, mxy = (
            (w * dx * dx).sum() / flux,
            (w * dy * dy).sum() / flux,
            (w * dx * dy).sum() / flux,
        )
        # Moments of the weighted image are those of the product of two Gaussians: invert.
        m = np.array([[mxx, mxy], [mxy, myy]])
        wmat = np.array([[ixx, ixy], [ixy, iyy]])
        try:
            inv = np.linalg.inv(m) - np.linalg.inv(wmat)
            new = np.linalg.inv(inv)
        except np.linalg.LinAlgError as err:
            raise PsfError("adaptive_moments: singular moment matrix") from err
        nxx, nyy, nxy = float(new[0, 0]), float(new[1, 1]), float(new[0, 1])
        if nxx <= 0 or nyy <= 0 or nxx * nyy <= nxy * nxy or nxx > nx * nx:
            raise PsfError("adaptive_moments: moments diverged")
        done = abs(nxx - ixx) + abs(nyy - iyy) + abs(nxy - ixy) < tol * (ixx + iyy)
        ixx, iyy, ixy = nxx, nyy, nxy
        if done:
            break
    return ixx, iyy, ixy


def unweighted_fwhm(kernel: np.ndarray) -> float:
    """FWHM from the unweighted second moments of a centred kernel image, negatives clipped.

    ``2.3548 × (Ixx·Iyy − Ixy²)^(1/4)`` about the image's own centroid: what a user who takes a
    PSF model image as it is measures. Unlike the adaptive moments of `Psf.fwhm` it weighs the
    wings by r², so noisy or negative wings show.
    """
    k = np.clip(np.asarray(kernel, dtype=np.float64), 0.0, None)
    k = k / k.sum()
    ny, nx = k.shape
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float64)
    mx, my = (k * x).sum(), (k * y).sum()
    ixx, iyy = (k * (x - mx) ** 2).sum(), (k * (y - my) ** 2).sum()
    ixy = (k * (x - mx) * (y - my)).sum()
    return float(FWHM_PER_SIGMA * (ixx * iyy - ixy * ixy) ** 0.25)


class Psf(ABC):
    """Abstract point-spread function, evaluated at a position of the parent pixel frame.

    Subclasses implement `kernel_image` and `to_dict` (and usually `_from_dict`); they declare a
    serialization name with ``class MyPsf(Psf, kind="my_psf")``.
    """

    kind: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type[Psf]]] = {}

    def __init_subclass__(cls, *, kind: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind is None:
            return
        existing = Psf._registry.get(kind)
        if existing is not None and (existing.__module__, existing.__qualname__) != (
            cls.__module__,
            cls.__qualname__,
        ):
            raise PsfError(
                f"PSF kind {kind!r} is already registered by "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        cls.kind = kind
        Psf._registry[kind] = cls

    # -- the implementation surface -------------------------------------------------------------

    @abstractmethod
    def kernel_image(self, position: Position) -> np.ndarray:
        """Return the PSF at ``position`` as an odd-sized, centred, unit-sum ``float64`` image."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Return JSON-able parameters, including ``"kind"``."""

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Psf:
        """Build an instance from `to_dict` output without ``kind`` (default: keyword args)."""
        return cls(**data)

    # -- derived ----------------------------------------------------------------------------------

    def image(self, position: Position, *, offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
        """Return the PSF at ``position`` with its centre moved by ``offset`` (pixels).

        The default shifts `kernel_image` by Fourier interpolation; subclasses with an analytic
        profile override it.
        """
        kernel = self.kernel_image(position)
        dx, dy = offset
        if dx == 0.0 and dy == 0.0:
            return kernel
        ny, nx = kernel.shape
        fy = np.fft.fftfreq(ny)[:, None]
        fx = np.fft.fftfreq(nx)[None, :]
        phase = np.exp(-2j * np.pi * (fx * dx + fy * dy))
        shifted = np.fft.ifft2(np.fft.fft2(kernel) * phase).real
        return shifted / shifted.sum()

    def moments(self, position: Position) -> tuple[float, float, float]:
        """Return adaptive second moments ``(ixx, iyy, ixy)`` at ``position`` (pixels²)."""
        return adaptive_moments(self.kernel_image(position))

    def sigma(self, position: Position) -> float:
        """Return the determinant radius ``(ixx*iyy - ixy²)^(1/4)`` at ``position`` (pixels)."""
        ixx, iyy, ixy = self.moments(position)
        return float((ixx * iyy - ixy * ixy) ** 0.25)

    def fwhm(self, position: Position) -> float:
        """Return the equivalent Gaussian FWHM ``2.3548 * sigma`` at ``position`` (pixels)."""
        return FWHM_PER_SIGMA * self.sigma(position)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Psf:
        """Rebuild a PSF from `to_dict` output, dispatching on ``data["kind"]``.

        Raises
        ------
        PsfError
            If ``kind`` is missing or no class is registered for it.
        """
        if "kind" not in data:
            raise PsfError(f"PSF dictionary has no 'kind' key: {sorted(data)}")
        params = dict(data)
        kind = params.pop("kind")
        if kind not in Psf._registry and kind in _PSF_MODULES:
            importlib.import_module(_PSF_MODULES[kind])  # registers the class
        try:
            target = Psf._registry[kind]
        except KeyError:
            raise PsfError(
                f"Unknown PSF kind {kind!r}; registered: {', '.join(sorted(Psf._registry))}"
            ) from None
        try:
            return target._from_dict(params)
        except (TypeError, ValueError, KeyError) as err:
            raise PsfError(f"Cannot build PSF of kind {kind!r} from {params!r}: {err}") from err

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Psf):
            return NotImplemented
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.to_dict().items(), key=lambda kv: kv[0])))

    # -- LSST spellings ---------------------------------------------------------------------------

    def computeKernelImage(self, position: Position) -> np.ndarray:
        """LSST name of `kernel_image`."""
        return self.kernel_image(position)

    def computeImage(self, position: Position) -> np.ndarray:
        """LSST name of `image` (no sub-pixel offset)."""
        return self.image(position)

    def computeShape(self, position: Position) -> tuple[float, float, float]:
        """LSST name of `moments`."""
        return self.moments(position)


class GaussianPsf(Psf, kind="gaussian"):
    """A spatially constant elliptical Gaussian PSF, sampled at pixel centres.

    Parameters
    ----------
    sigma : `float`
        Determinant radius (pixels); the round Gaussian sigma when ``ellipticity`` is `None`.
    size : `int`, optional
        Odd kernel width and height (pixels); `None` means ``2 * ceil(5 * max axis sigma) + 1``.
    ellipticity : `tuple` [`float`, `float`], optional
        Distortion ``(e1, e2)`` with ``e = (a² - b²) / (a² + b²)``; `None` means round.

    Raises
    ------
    PsfError
        If ``sigma`` is not positive, ``size`` is even or not positive, or ``|e| >= 1``.
    """

    def __init__(
        self,
        sigma: float,
        *,
        size: int | None = None,
        ellipticity: tuple[float, float] | None = None,
    ) -> None:
        if not sigma > 0:
            raise PsfError(f"GaussianPsf: sigma must be positive, got {sigma!r}")
        e1, e2 = (
            (0.0, 0.0) if ellipticity is None else (float(ellipticity[0]), float(ellipticity[1]))
        )
        e = math.hypot(e1, e2)
        if e >= 1.0:
            raise PsfError(f"GaussianPsf: |ellipticity| must be < 1, got {e}")
        self._sigma = float(sigma)
        self._ellipticity = None if ellipticity is None else (e1, e2)
        scale = sigma * sigma / math.sqrt(1.0 - e * e)
        self._moments = (scale * (1.0 + e1), scale * (1.0 - e1), scale * e2)
        if size is None:
            size = 2 * math.ceil(5.0 * math.sqrt(max(self._moments[0], self._moments[1]))) + 1
        if size <= 0 or size % 2 == 0:
            raise PsfError(f"GaussianPsf: size must be a positive odd integer, got {size!r}")
        self._size = int(size)

    @property
    def size(self) -> int:
        """Kernel width and height (pixels)."""
        return self._size

    def _draw(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """(N, K, K) unit-sum kernels centred at offsets (dx, dy) from the middle pixel."""
        half = self._size // 2
        d = np.arange(-half, half + 1, dtype=np.float64)
        x = d[None, None, :] - np.asarray(dx, dtype=np.float64).reshape(-1, 1, 1)
        y = d[None, :, None] - np.asarray(dy, dtype=np.float64).reshape(-1, 1, 1)
        ixx, iyy, ixy = self._moments
        det = ixx * iyy - ixy * ixy
        rho = (iyy * x * x - 2.0 * ixy * x * y + ixx * y * y) / det
        kernel = np.exp(-0.5 * rho)
        return kernel / kernel.sum(axis=(1, 2), keepdims=True)

    def kernel_image(self, position: Position) -> np.ndarray:  # noqa: D102
        return self._draw(0.0, 0.0)[0]

    def image(self, position: Position, *, offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:  # noqa: D102
        return self._draw(float(offset[0]), float(offset[1]))[0]

    def image_stack(self, x: Any, y: Any, dx: Any, dy: Any) -> np.ndarray:
        """Kernels at many positions, shifted by (dx, dy) px: an (N, K, K) unit-sum stack.

        Equal to calling `image` for each (the model is the same everywhere, so ``x`` and
        ``y`` only give the count); the vectorised hook measurement uses.
        """
        return self._draw(dx, dy)

    def moments(self, position: Position) -> tuple[float, float, float]:
        """Return the analytic moments ``(ixx, iyy, ixy)`` (pixels²), the same everywhere."""
        return self._moments

    def to_dict(self) -> dict[str, Any]:  # noqa: D102
        return {
            "kind": self.kind,
            "sigma": self._sigma,
            "size": self._size,
            "ellipticity": None if self._ellipticity is None else list(self._ellipticity),
        }

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> GaussianPsf:
        ell = data.get("ellipticity")
        return cls(
            data["sigma"], size=data.get("size"), ellipticity=None if ell is None else tuple(ell)
        )

    def __repr__(self) -> str:
        return (
            f"GaussianPsf(sigma={self._sigma}, size={self._size}, ellipticity={self._ellipticity})"
        )
