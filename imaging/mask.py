"""Bit-mask plane of an exposure.

A `Mask` is a ``uint32`` array and a dictionary from plane name to bit number. Unlike LSST, the
plane dictionary belongs to each mask instance (no process-wide registry): copying a mask copies
its dictionary, and a mask read from a file gets the planes written in that file. The FITS header
form is one ``MP_<NAME> = bit`` keyword per plane.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from ._errors import MaskPlaneError

__all__ = ["DEFAULT_MASK_PLANES", "MAX_MASK_PLANES", "Mask"]

DEFAULT_MASK_PLANES: tuple[str, ...] = (
    "BAD",
    "SAT",
    "INTRP",
    "CR",
    "EDGE",
    "DETECTED",
    "DETECTED_NEGATIVE",
    "SUSPECT",
    "NO_DATA",
    "CROSSTALK",
    "UNMASKEDNAN",
)
"""Planes of a new mask, bit 0 upwards."""

MAX_MASK_PLANES = 32
"""A ``uint32`` pixel holds 32 planes."""

_HEADER_PREFIX = "MP_"


class Mask:
    """A ``uint32`` bit-mask array with named planes.

    Parameters
    ----------
    array_or_shape : `numpy.ndarray` or `tuple` [`int`, `int`]
        Mask values (converted to ``uint32``, not copied if already ``uint32``) or the numpy shape
        ``(ny, nx)`` of a new zero mask.
    planes : `~collections.abc.Mapping` [`str`, `int`], optional
        Plane name to bit number; `None` means `DEFAULT_MASK_PLANES` in order.

    Raises
    ------
    MaskPlaneError
        If a bit is outside 0-31 or used twice.
    """

    __slots__ = ("array", "_planes")

    def __init__(
        self,
        array_or_shape: np.ndarray | tuple[int, int],
        planes: Mapping[str, int] | None = None,
    ) -> None:
        if isinstance(array_or_shape, tuple):
            self.array = np.zeros(array_or_shape, dtype=np.uint32)
        else:
            self.array = np.asarray(array_or_shape).astype(np.uint32, copy=False)
        if self.array.ndim != 2:
            raise ValueError(f"Mask array must be 2-D, got shape {self.array.shape}")
        if planes is None:
            planes = {name: bit for bit, name in enumerate(DEFAULT_MASK_PLANES)}
        wanted = {name: int(bit) for name, bit in planes.items()}
        bits = set(wanted.values())
        if len(bits) == len(wanted) and min(bits, default=0) >= 0 and max(
            bits, default=0
        ) < MAX_MASK_PLANES:  # valid: taken at once (a stamp read makes thousands of masks)
            self._planes: dict[str, int] = wanted
            return
        self._planes = {}
        for name, bit in wanted.items():  # find the first fault, for its message
            self._check_new(name, bit)
            self._planes[name] = bit

    def _check_new(self, name: str, bit: int) -> None:
        if not 0 <= bit < MAX_MASK_PLANES:
            raise MaskPlaneError(f"Mask plane {name!r}: bit {bit} outside 0-{MAX_MASK_PLANES - 1}")
        if name in self._planes:
            raise MaskPlaneError(f"Mask plane {name!r} is defined twice")
        if bit in self._planes.values():
            other = next(n for n, b in self._planes.items() if b == bit)
            raise MaskPlaneError(f"Mask planes {other!r} and {name!r} both use bit {bit}")

    # -- planes -----------------------------------------------------------------------------------

    @property
    def planes(self) -> dict[str, int]:
        """A copy of the plane dictionary (name to bit)."""
        return dict(self._planes)

    @property
    def shape(self) -> tuple[int, int]:
        """Numpy shape ``(ny, nx)``."""
        return self.array.shape  # type: ignore[return-value]

    def add_plane(self, name: str) -> int:
        """Add a plane on the lowest free bit and return its bit; existing planes are kept.

        Raises
        ------
        MaskPlaneError
            If all 32 bits are in use.
        """
        if name in self._planes:
            return self._planes[name]
        used = set(self._planes.values())
        free = [bit for bit in range(MAX_MASK_PLANES) if bit not in used]
        if not free:
            raise MaskPlaneError(f"Cannot add mask plane {name!r}: all {MAX_MASK_PLANES} bits used")
        self._planes[name] = free[0]
        return free[0]

    def remove_plane(self, name: str) -> None:
        """Clear plane ``name`` in the array and forget it."""
        self.array &= np.uint32(~self.get_plane_bitmask(name) & 0xFFFFFFFF)
        del self._planes[name]

    def bit(self, name: str) -> int:
        """Return the bit number of plane ``name``.

        Raises
        ------
        MaskPlaneError
            If the plane is unknown; the message names it and lists the known planes.
        """
        try:
            return self._planes[name]
        except KeyError:
            raise MaskPlaneError(
                f"Unknown mask plane {name!r}; known planes: {', '.join(self._planes)}"
            ) from None

    def get_plane_bitmask(self, names: str | Iterable[str]) -> int:
        """Return the OR of the bit values ``1 << bit`` of one or several planes."""
        if isinstance(names, str):
            names = [names]
        value = 0
        for name in names:
            value |= 1 << self.bit(name)
        return value

    getPlaneBitMask = get_plane_bitmask  # noqa: N815 - LSST's published name

    # -- pixels -----------------------------------------------------------------------------------

    def set(self, name: str, where: np.ndarray) -> None:
        """Set plane ``name`` on the pixels where the boolean array ``where`` is true."""
        bitmask = np.uint32(self.get_plane_bitmask(name))
        where = np.asarray(where, dtype=bool)
        if where.shape != self.array.shape:
            raise ValueError(f"Mask.set({name!r}): shape {where.shape} != {self.array.shape}")
        self.array[where] |= bitmask

    def clear(self, name: str, where: np.ndarray | None = None) -> None:
        """Clear plane ``name`` everywhere, or only where ``where`` is true."""
        keep = np.uint32(~self.get_plane_bitmask(name) & 0xFFFFFFFF)
        if where is None:
            self.array &= keep
        else:
            self.array[np.asarray(where, dtype=bool)] &= keep

    def is_set(self, names: str | Iterable[str]) -> np.ndarray:
        """Return a boolean array, true where any of the planes ``names`` is set."""
        return (self.array & np.uint32(self.get_plane_bitmask(names))) != 0

    def copy(self) -> Mask:
        """Return a deep copy (array and planes)."""
        return Mask(self.array.copy(), self._planes)

    def __getitem__(self, item: tuple[slice, slice]) -> Mask:
        """Return a view on a numpy-sliced part of the array, sharing planes by copy."""
        return Mask(self.array[item], self._planes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mask):
            return NotImplemented
        return self._planes == other._planes and np.array_equal(self.array, other.array)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Mask(shape={self.array.shape}, planes={self._planes})"

    # -- header -----------------------------------------------------------------------------------

    def to_header(self) -> dict[str, int]:
        """Return the planes as ``{"MP_<NAME>": bit}`` FITS keywords."""
        return {f"{_HEADER_PREFIX}{name}": bit for name, bit in self._planes.items()}

    @staticmethod
    def planes_from_header(
        header: Mapping[str, object], *, source: str = "header"
    ) -> dict[str, int]:
        """Read the ``MP_<NAME>`` keywords of a header into a plane dictionary.

        Parameters
        ----------
        header : `~collections.abc.Mapping`
            FITS header or dictionary.
        source : `str`
            Name of the file for error messages.

        Raises
        ------
        MaskPlaneError
            If a value is not an integer 0-31 or two planes share a bit.
        """
        planes: dict[str, int] = {}
        for key in header:
            if not str(key).upper().startswith(_HEADER_PREFIX):
                continue
            value = header[key]
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise MaskPlaneError(f"{source}: keyword {key} = {value!r} is not an integer bit")
            name = str(key)[len(_HEADER_PREFIX) :].upper()
            probe = Mask((0, 0), planes)
            try:
                probe._check_new(name, int(value))
            except MaskPlaneError as err:
                raise MaskPlaneError(f"{source}: keyword {key}: {err}") from None
            planes[name] = int(value)
        return planes

    @classmethod
    def from_header(
        cls, array: np.ndarray, header: Mapping[str, object], *, source: str = "header"
    ) -> Mask:
        """Build a mask from an array and the ``MP_<NAME>`` keywords of ``header``.

        A header without any ``MP_`` keyword gives the default planes.
        """
        planes = cls.planes_from_header(header, source=source)
        return cls(array, planes or None)
