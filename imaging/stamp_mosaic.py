"""A picture of a detector's bright-star stamps, for people: one mosaic PNG.

Each stamp is shown on a common logarithmic stretch of its (normalized) pixel values, with its
Gaia G magnitude and id written on it; ``NO_DATA`` pixels are drawn in a flat colour named in
the legend and pixels with other bad planes are hatched over in a second colour. A colour bar
gives the stretch.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

__all__ = ["write_stamp_mosaic"]

_NO_DATA_COLOUR = (0.25, 0.45, 0.85)
_BAD_COLOUR = (1.0, 0.0, 1.0)


def write_stamp_mosaic(
    stamps: Any, path: str, *, title: str = "", max_stamps: int = 64, panel_inches: float = 2.2
) -> str:
    """Write a mosaic PNG of ``stamps`` (a `~imaging.stamps.BrightStarStamps`).

    Parameters
    ----------
    stamps : `~imaging.stamps.BrightStarStamps`
        The stamps (the brightest ``max_stamps`` are shown).
    path : `str`
        PNG file (folders are created; written atomically).
    title : `str`
        Figure title.
    max_stamps : `int`
        At most this many panels.
    panel_inches : `float`
        Size of one panel.

    Returns
    -------
    path : `str`
        The file written.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    order = np.argsort(stamps.getMagnitudes())[:max_stamps] if len(stamps) else []
    n = len(order)
    ncol = max(1, math.ceil(math.sqrt(n)))
    nrow = max(1, math.ceil(n / ncol))
    width_in = max(ncol * panel_inches, 4.5) + 1.6
    height_in = nrow * panel_inches + 1.2
    fig = Figure(figsize=(width_in, height_in), dpi=90)
    FigureCanvasAgg(fig)
    values = [np.asarray(stamps[int(i)].stamp_im.image, dtype=float) for i in order]
    finite = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in values]) if values else []
    if len(finite):
        vmax = float(np.percentile(finite, 99.9))
        vmin = max(float(np.percentile(finite, 5)), vmax * 1e-5)
    else:
        vmin, vmax = 1e-3, 1.0
    norm = LogNorm(vmin=vmin, vmax=vmax)
    cmap = colormaps["magma"].copy()
    cmap.set_bad(_NO_DATA_COLOUR)
    cmap.set_under("black")
    image_artist = None
    bad_planes = [
        p for p in ("BAD", "SAT", "CR", "SUSPECT") if n and p in stamps[0].stamp_im.mask.planes
    ]
    left = 0.6 / width_in
    right = 1.0 - 1.3 / width_in
    bottom = 0.45 / height_in
    top = 1.0 - 0.75 / height_in
    w = min((right - left) / ncol, (top - bottom) / nrow * height_in / width_in)
    h = w * width_in / height_in
    for k, index in enumerate(order):
        stamp = stamps[int(index)]
        row, col = divmod(k, ncol)
        ax = fig.add_axes((left + col * w, top - (row + 1) * h, w * 0.96, h * 0.96))
        data = np.array(stamp.stamp_im.image, dtype=float)
        mask = stamp.stamp_im.mask
        no_data = mask.is_set("NO_DATA") | ~np.isfinite(data)
        shown = np.ma.masked_array(np.where(data > 0, data, vmin * 0.5), mask=no_data)
        image_artist = ax.imshow(
            shown, origin="lower", cmap=cmap, norm=norm, interpolation="nearest"
        )
        if bad_planes:
            bad = mask.is_set(bad_planes) & ~no_data
            if bad.any():
                overlay = np.zeros((*bad.shape, 4))
                overlay[bad] = (*_BAD_COLOUR, 0.35)
                ax.imshow(overlay, origin="lower", interpolation="nearest")
        flux = stamp.annularFlux
        note = "" if flux is None or np.isfinite(flux) else " (not normalized)"
        ax.text(
            0.03,
            0.97,
            f"G = {stamp.gaiaGMag:.2f}{note}\nid {stamp.gaiaId}",
            transform=ax.transAxes,
            va="top",
            ha="left",
            fontsize=7,
            color="white",
        )
        if row == nrow - 1 and col == 0:
            size_y, size_x = data.shape
            ax.set_xticks([0, size_x // 2, size_x - 1])
            ax.set_yticks([0, size_y // 2, size_y - 1])
            ax.tick_params(labelsize=6)
            ax.set_xlabel("x [model px]", fontsize=7)
            ax.set_ylabel("y [model px]", fontsize=7)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    if image_artist is not None:
        cax = fig.add_axes((right + 0.2 / width_in, top - nrow * h, 0.15 / width_in, nrow * h))
        bar = fig.colorbar(image_artist, cax=cax)
        bar.set_label("pixel / annular flux (log stretch)")
    handles = [Patch(color=_NO_DATA_COLOUR, label="NO_DATA")]
    if bad_planes:
        handles.append(Patch(color=_BAD_COLOUR, alpha=0.35, label="/".join(bad_planes)))
    fig.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(left, 1.0 - 0.35 / height_in),
        fontsize=8,
        frameon=False,
        ncol=2,
    )
    rots = stamps.nb90Rots
    fig.suptitle(
        f"{title}  ({len(stamps)} stamps, nb90Rots={rots})"
        if title
        else f"{len(stamps)} bright-star stamps, nb90Rots={rots}",
        fontsize=9,
        x=0.02,
        ha="left",
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp)
    os.replace(tmp, path)
    return path
