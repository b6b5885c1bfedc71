"""Integer pixel bounding boxes.

`Box` is the ``lsst.geom.Box2I`` of this package: a frozen value object holding the first pixel
``(x0, y0)`` and the size ``(width, height)``. The end coordinates ``x1 = x0 + width`` and
``y1 = y0 + height`` are *exclusive*, as in Python slices. Pixel ``(x, y)`` has its centre at
integer coordinates; numpy arrays are indexed ``[y, x]``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Box"]


@dataclass(frozen=True, slots=True)
class Box:
    """An integer pixel bounding box, end exclusive.

    Parameters
    ----------
    x0, y0 : `int`
        First column and row (pixels, parent frame).
    width, height : `int`
        Size (pixels); zero gives an empty box, negative is an error.

    Raises
    ------
    ValueError
        If a size is negative.
    """

    x0: int
    y0: int
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("x0", "y0", "width", "height"):
            value = getattr(self, name)
            if int(value) != value:
                raise ValueError(f"Box.{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.width < 0 or self.height < 0:
            raise ValueError(f"Box size must be non-negative, got {self.width}x{self.height}")

    @classmethod
    def from_corners(cls, x0: int, y0: int, x1: int, y1: int) -> Box:
        """Build a box from its first pixel and its exclusive end ``(x1, y1)``."""
        return cls(x0, y0, max(x1 - x0, 0), max(y1 - y0, 0))

    @classmethod
    def from_shape(cls, shape: tuple[int, int], *, origin: tuple[int, int] = (0, 0)) -> Box:
        """Build the box of an array of numpy ``shape`` ``(ny, nx)`` at ``origin`` ``(x0, y0)``."""
        return cls(origin[0], origin[1], shape[1], shape[0])

    @property
    def x1(self) -> int:
        """Exclusive end column."""
        return self.x0 + self.width

    @property
    def y1(self) -> int:
        """Exclusive end row."""
        return self.y0 + self.height

    @property
    def shape(self) -> tuple[int, int]:
        """Numpy shape ``(height, width)``."""
        return (self.height, self.width)

    @property
    def origin(self) -> tuple[int, int]:
        """First pixel ``(x0, y0)``."""
        return (self.x0, self.y0)

    @property
    def center(self) -> tuple[float, float]:
        """Centre ``(x, y)`` in pixel coordinates (centre of the central pixel or between two)."""
        return (self.x0 + (self.width - 1) / 2.0, self.y0 + (self.height - 1) / 2.0)

    @property
    def area(self) -> int:
        """Number of pixels."""
        return self.width * self.height

    def is_empty(self) -> bool:
        """Return `True` if the box holds no pixel."""
        return self.width == 0 or self.height == 0

    def contains(self, other: Box | tuple[float, float]) -> bool:
        """Return `True` if ``other`` (a box or an ``(x, y)`` point) lies inside this box.

        A point is inside when its nearest pixel is; an empty box is contained in any box.
        """
        if isinstance(other, Box):
            if other.is_empty():
                return True
            return (
                self.x0 <= other.x0
                and self.y0 <= other.y0
                and other.x1 <= self.x1
                and other.y1 <= self.y1
            )
        x, y = other
        return self.x0 - 0.5 <= x < self.x1 - 0.5 and self.y0 - 0.5 <= y < self.y1 - 0.5

    def intersection(self, other: Box) -> Box:
        """Return the overlap of two boxes (an empty box if they do not overlap)."""
        x0, y0 = max(self.x0, other.x0), max(self.y0, other.y0)
        x1, y1 = min(self.x1, other.x1), min(self.y1, other.y1)
        if x1 <= x0 or y1 <= y0:
            return Box(x0, y0, 0, 0)
        return Box.from_corners(x0, y0, x1, y1)

    def union(self, other: Box) -> Box:
        """Return the smallest box holding both boxes."""
        if self.is_empty():
            return other
        if other.is_empty():
            return self
        return Box.from_corners(
            min(self.x0, other.x0),
            min(self.y0, other.y0),
            max(self.x1, other.x1),
            max(self.y1, other.y1),
        )

    def dilated(self, nx: int, ny: int | None = None) -> Box:
        """Return the box grown by ``nx`` columns and ``ny`` rows per side (negative shrinks)."""
        ny = nx if ny is None else ny
        return Box.from_corners(self.x0 - nx, self.y0 - ny, self.x1 + nx, self.y1 + ny)

    def shifted(self, dx: int, dy: int) -> Box:
        """Return the box moved by ``(dx, dy)`` pixels."""
        return Box(self.x0 + dx, self.y0 + dy, self.width, self.height)

    def slices(self, origin: tuple[int, int] = (0, 0)) -> tuple[slice, slice]:
        """Return numpy slices ``(rows, columns)`` of this box in an array starting at ``origin``.

        Parameters
        ----------
        origin : `tuple` [`int`, `int`]
            Pixel ``(x0, y0)`` of element ``[0, 0]`` of the array (its ``xy0``).

        Raises
        ------
        ValueError
            If the box starts before ``origin`` (a negative slice would wrap around).
        """
        ox, oy = origin
        if self.x0 < ox or self.y0 < oy:
            raise ValueError(f"{self} starts before the array origin {origin}")
        return (slice(self.y0 - oy, self.y1 - oy), slice(self.x0 - ox, self.x1 - ox))

    def to_fits_section(self) -> str:
        """Return the 1-based inclusive FITS/IRAF section ``[x0+1:x1,y0+1:y1]``."""
        return f"[{self.x0 + 1}:{self.x1},{self.y0 + 1}:{self.y1}]"

    def to_list(self) -> list[int]:
        """Return ``[x0, y0, width, height]`` (for JSON and YAML)."""
        return [self.x0, self.y0, self.width, self.height]

    @classmethod
    def from_list(cls, values: list[int] | tuple[int, ...]) -> Box:
        """Inverse of `to_list`."""
        x0, y0, width, height = values
        return cls(x0, y0, width, height)
