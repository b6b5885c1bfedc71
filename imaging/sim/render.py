"""A picture of a simulated detector with its truth overlaid, for people.

`render_detector_png` shows the image with an asinh stretch around the sky level, circles on
truth stars (red when saturated, orange for halo stars), squares on galaxies, and cosmic-ray
pixels in cyan. It uses matplotlib's Agg canvas directly (no pyplot state).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from .simulate import SimulatedDetector

__all__ = ["render_detector_png"]


def render_detector_png(
    sim: SimulatedDetector, path: str | os.PathLike[str], *, dpi: int = 100, size_inches: float = 8
) -> Path:
    """Render ``sim`` to a PNG at ``path`` and return the path.

    Parameters
    ----------
    sim : `~imaging.sim.simulate.SimulatedDetector`
        Exposure and truth.
    path : `str` or `os.PathLike`
        Output PNG.
    dpi : `int`
        Resolution.
    size_inches : `float`
        Figure width and height (inches).
    """
    path = Path(path)
    exp = sim.exposure
    image = exp.image.astype(float)
    sky = float(np.median(image))
    noise = float(1.4826 * np.median(np.abs(image - sky))) or 1.0
    stretched = np.arcsinh((image - sky) / (3.0 * noise))
    fig = Figure(figsize=(size_inches, size_inches), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.06, 0.05, 0.9, 0.9))
    x0, y0 = exp.xy0
    extent = (x0 - 0.5, x0 + exp.width - 0.5, y0 - 0.5, y0 + exp.height - 0.5)
    ax.imshow(
        stretched, origin="lower", cmap="gray", vmin=-1.0, vmax=float(np.arcsinh(300.0)),
        extent=extent, interpolation="nearest",
    )  # fmt: skip
    cr = np.ma.masked_where(~sim.truth.cr_mask, np.ones(image.shape))
    ax.imshow(cr, origin="lower", cmap=ListedColormap(["cyan"]), extent=extent, alpha=0.8,
              interpolation="nearest")  # fmt: skip
    src = sim.truth.sources
    stars = src[~src["is_galaxy"]]
    radius = 3.0 * max(float(np.median(stars["psf_fwhm"])) if len(stars) else 4.0, 2.0)
    for row in stars:
        colour = "red" if row["is_saturated"] else ("orange" if row["is_bright"] else "lime")
        ax.add_patch(_circle((row["x"], row["y"]), radius * (2 if row["is_bright"] else 1), colour))
    gals = src[src["is_galaxy"]]
    ax.scatter(gals["x"], gals["y"], s=30, marker="s", facecolors="none", edgecolors="yellow",
               linewidths=0.6)  # fmt: skip
    det = exp.detector
    visit = exp.visit
    title = f"detector {det.id if det else '?'} ({det.orientation if det else 0:.0f} deg)"
    if visit is not None:
        title += f", visit {visit.id}, band {visit.band}"
    ax.set_title(
        f"{title}: {len(stars)} stars (red: saturated), {len(gals)} galaxies, "
        f"{int(sim.truth.cr_mask.sum())} CR px (cyan)",
        fontsize=9,
    )
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    fig.savefig(path)
    return path


def _circle(center: tuple[float, float], radius: float, colour: str):
    from matplotlib.patches import Circle

    return Circle(center, radius, fill=False, edgecolor=colour, linewidth=0.8)
