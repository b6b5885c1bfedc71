"""A picture of a simulated detector with its truth overlaid, for people.

`render_detector_png` shows the image with an asinh stretch around the sky level, circles on
truth stars (red when saturated, orange for halo stars, lime otherwise), squares on galaxies,
and cosmic-ray pixels in cyan, each colour in the legend with its count, and a colour bar in
counts. It uses matplotlib's Agg canvas directly (no pyplot state).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

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
    fig = Figure(figsize=(size_inches * 1.15, size_inches), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.08, 0.07, 0.74, 0.86))
    x0, y0 = exp.xy0
    extent = (x0 - 0.5, x0 + exp.width - 0.5, y0 - 0.5, y0 + exp.height - 0.5)
    shown = ax.imshow(
        stretched, origin="lower", cmap="gray", vmin=-1.0, vmax=float(np.arcsinh(300.0)),
        extent=extent, interpolation="nearest",
    )  # fmt: skip
    bar = fig.colorbar(shown, cax=fig.add_axes((0.84, 0.07, 0.025, 0.86)))
    ticks = np.array([-3.0, 0.0, 3.0, 30.0, 300.0, 3000.0])  # in units of the noise
    ticks = ticks[np.arcsinh(ticks / 3.0) <= float(np.arcsinh(300.0))]
    bar.set_ticks(np.arcsinh(ticks / 3.0), labels=[f"{t * noise:+.0f}" for t in ticks])
    bar.set_label(f"counts above sky {sky:.0f} (asinh stretch, linear within 3x noise {noise:.1f})")
    cr = np.ma.masked_where(~sim.truth.cr_mask, np.ones(image.shape))
    ax.imshow(cr, origin="lower", cmap=ListedColormap(["cyan"]), extent=extent, alpha=0.8,
              interpolation="nearest")  # fmt: skip
    src = sim.truth.sources
    stars = src[~src["is_galaxy"]]
    radius = 3.0 * max(float(np.median(stars["psf_fwhm"])) if len(stars) else 4.0, 2.0)
    kinds = {"red": "saturated star", "orange": "bright star (halo)", "lime": "star"}
    counts = dict.fromkeys(kinds, 0)
    for row in stars:
        colour = "red" if row["is_saturated"] else ("orange" if row["is_bright"] else "lime")
        counts[colour] += 1
        ax.add_patch(_circle((row["x"], row["y"]), radius * (2 if row["is_bright"] else 1), colour))
    gals = src[src["is_galaxy"]]
    ax.scatter(gals["x"], gals["y"], s=30, marker="s", facecolors="none", edgecolors="yellow",
               linewidths=0.6)  # fmt: skip
    handles = [
        Line2D([], [], marker="o", linestyle="none", markerfacecolor="none",
               markeredgecolor=colour, label=f"{kinds[colour]} ({n})")
        for colour, n in counts.items() if n
    ]  # fmt: skip
    handles.append(Line2D([], [], marker="s", linestyle="none", markerfacecolor="none",
                          markeredgecolor="yellow", label=f"galaxy ({len(gals)})"))  # fmt: skip
    handles.append(Line2D([], [], marker="s", linestyle="none", markerfacecolor="cyan",
                          markeredgecolor="cyan",
                          label=f"cosmic-ray pixel ({int(sim.truth.cr_mask.sum())})"))  # fmt: skip
    ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.8, title="truth")
    det = exp.detector
    visit = exp.visit
    title = f"simulated detector {det.id if det else '?'} ({det.orientation if det else 0:.0f} deg)"
    if visit is not None:
        title += f", visit {visit.id}, band {visit.band}"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x (detector pixels)")
    ax.set_ylabel("y (detector pixels)")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    fig.savefig(path)
    return path


def _circle(center: tuple[float, float], radius: float, colour: str):
    from matplotlib.patches import Circle

    return Circle(center, radius, fill=False, edgecolor=colour, linewidth=0.8)
