"""The detector geometry of an exposure, taken from the registered camera (the ``camera`` dataset).

Raw headers may lack (or misstate) ``DETORIEN``/``DETFPX``/``DETFPY``; the registered camera is
the reference for where a detector sits on the focal plane and how it is turned, which the
bright-star stamps' quarter turns depend on.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["CAMERA_CONNECTION_DOC", "registered_detector"]

CAMERA_CONNECTION_DOC = (
    "Registered camera description: the detector geometry (orientation, focal-plane position) "
    "comes from it, not from raw header keywords"
)


def registered_detector(camera: Any, detector: Any, label: str) -> Any:
    """Return the exposure's detector with the geometry of the registered camera.

    Orientation, focal-plane position, pixel size and bounding box come from the camera; gain,
    read noise and saturation stay as the exposure had them.

    Raises
    ------
    RuntimeError
        If the exposure has no detector, or the camera does not know it (names ``label``).
    """
    if detector is None:
        raise RuntimeError(f"{label} has no detector description")
    try:
        registered = camera.detector(detector.id)
    except KeyError as err:
        raise RuntimeError(f"{label}: {err.args[0]}") from None
    return dataclasses.replace(
        detector,
        orientation=registered.orientation,
        focal_plane_position=registered.focal_plane_position,
        pixel_size=registered.pixel_size,
        bbox=registered.bbox,
    )
