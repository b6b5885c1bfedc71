"""Debug pictures: an exposure with its masks and sources, as a PNG a person can look at."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["write_debug_picture"]

_MASK_COLOURS = {
    "CR": (0.0, 1.0, 1.0),
    "SAT": (1.0, 0.2, 0.2),
    "INTRP": (1.0, 0.6, 0.0),
    "BAD": (1.0, 0.0, 1.0),
}


def write_debug_picture(
    exposure: Any, path: str, *, sources: Any = None, title: str = "", max_pixels: int = 1400
) -> str:
    """Write an asinh-stretched picture of ``exposure`` with masks and sources overlaid.

    Parameters
    ----------
    exposure : `imaging.exposure.Exposure`
        What to draw.
    path : `str`
        PNG file to write (folders are created; written atomically).
    sources : `astropy.table.Table`, optional
        Sources to circle (PSF stars in green, others in yellow).
    title : `str`
        Figure title.
    max_pixels : `int`
        Larger images are binned down to about this many pixels on a side.

    Returns
    -------
    path : `str`
        The file written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    image = np.asarray(exposure.image, dtype=float)
    step = max(1, int(np.ceil(max(image.shape) / max_pixels)))
    shown = image[::step, ::step]
    sky = float(np.nanmedian(shown))
    noise = float(1.4826 * np.nanmedian(np.abs(shown - sky))) or 1.0
    stretched = np.arcsinh((shown - sky) / (3.0 * noise))
    rgb = np.repeat(
        ((stretched - stretched.min()) / (np.ptp(stretched) or 1.0))[..., None], 3, axis=2
    )
    planes = exposure.mask.planes
    for name, colour in _MASK_COLOURS.items():
        if name in planes:
            hit = exposure.mask.is_set(name)[::step, ::step]
            rgb[hit] = 0.5 * rgb[hit] + 0.5 * np.array(colour)
    fig = Figure(figsize=(8, 8 * shown.shape[0] / shown.shape[1] + 0.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.07, 0.05, 0.9, 0.88))
    x0, y0 = exposure.xy0
    height, width = image.shape
    ax.imshow(
        rgb,
        origin="lower",
        extent=(x0 - 0.5, x0 + width - 0.5, y0 - 0.5, y0 + height - 0.5),
        interpolation="nearest",
    )
    if sources is not None and len(sources):
        x = np.asarray(sources["base_SdssCentroid_x"], float)
        y = np.asarray(sources["base_SdssCentroid_y"], float)
        used = (
            np.asarray(sources["calib_psf_used"], bool)
            if "calib_psf_used" in sources.colnames
            else None
        )
        colours = np.where(used, "lime", "yellow") if used is not None else "yellow"
        ax.scatter(x, y, s=60, facecolors="none", edgecolors=colours, linewidths=0.8)
    ax.set_title(title + "  (cyan: CR, red: SAT, orange: INTRP; green: PSF stars)", fontsize=9)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp)
    os.replace(tmp, path)
    return path
