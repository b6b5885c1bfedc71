"""Debug pictures a person can read: an exposure with its masks and sources, and its PSF model.

`write_debug_picture` draws the image with an asinh stretch (a colour bar gives the stretch in
counts above the sky), axis labels in pixels, mask planes as coloured overlays and sources as
circles, with a legend entry for every colour drawn. Large images are shown binned: the image by
block means, each mask plane by *any* pixel set in a block, so a one-pixel bad column stays
visible at any binning.

`write_psf_picture` draws the PSF model at a 3x3 grid of positions over the detector and a map
of its FWHM (pixels), with axis labels and a colour bar.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = [
    "MASK_COLOURS",
    "block_any",
    "block_mean",
    "default_debug_dir",
    "write_debug_picture",
    "write_psf_picture",
]

#: Overlay colour of each mask plane drawn, and its legend text.
MASK_COLOURS: dict[str, tuple[tuple[float, float, float], str]] = {
    "INTRP": ((1.0, 0.6, 0.0), "INTRP (orange)"),
    "CR": ((0.0, 1.0, 1.0), "CR (cyan)"),
    "SAT": ((1.0, 0.2, 0.2), "SAT (red)"),
    "BAD": ((1.0, 0.0, 1.0), "BAD (magenta)"),
}
"""Drawn in this order: a later plane covers an earlier one (an interpolated bad column shows
as BAD)."""


def _blocks(array: np.ndarray, step: int, fill: Any) -> np.ndarray:
    ny, nx = array.shape
    py, px = (-ny) % step, (-nx) % step
    padded = np.pad(array, ((0, py), (0, px)), constant_values=fill)
    return padded.reshape(padded.shape[0] // step, step, padded.shape[1] // step, step)


def block_any(mask: np.ndarray, step: int) -> np.ndarray:
    """Return ``mask`` binned by ``step``: True where any pixel of a block is set."""
    if step <= 1:
        return np.asarray(mask, bool)
    return _blocks(np.asarray(mask, bool), step, False).any(axis=(1, 3))


def block_mean(image: np.ndarray, step: int) -> np.ndarray:
    """Return ``image`` binned by ``step`` (mean of each block, NaNs ignored)."""
    if step <= 1:
        return np.asarray(image, float)
    blocks = _blocks(np.asarray(image, float), step, np.nan)
    with np.errstate(invalid="ignore"):
        return np.nanmean(blocks, axis=(1, 3))


def _save(fig: Any, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp)
    os.replace(tmp, path)
    return path


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
        Larger images are binned down to about this many pixels on a side (masks by "any").

    Returns
    -------
    path : `str`
        The file written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    image = np.asarray(exposure.image, dtype=float)
    height, width = image.shape
    step = max(1, int(np.ceil(max(image.shape) / max_pixels)))
    shown = block_mean(image, step)
    sky = float(np.nanmedian(shown))
    noise = float(1.4826 * np.nanmedian(np.abs(shown - sky))) or 1.0
    scale = 3.0 * noise
    stretched = np.arcsinh((shown - sky) / scale)
    x0, y0 = exposure.xy0
    extent = (x0 - 0.5, x0 + width - 0.5, y0 - 0.5, y0 + height - 0.5)

    fig = Figure(figsize=(9, 8 * height / width + 0.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.08, 0.07, 0.74, 0.86))
    low, high = np.nanpercentile(stretched, [0.5, 99.8])
    drawn = ax.imshow(
        stretched, origin="lower", extent=extent, cmap="gray", vmin=low, vmax=high,
        interpolation="nearest",
    )
    handles: list[Any] = []
    planes = exposure.mask.planes
    overlay = np.zeros((*shown.shape, 4))
    for name, (colour, text) in MASK_COLOURS.items():
        if name not in planes:
            continue
        hit = block_any(exposure.mask.is_set(name), step)
        if hit.any():
            overlay[hit] = (*colour, 0.6)
            handles.append(Patch(color=colour, label=f"{text}: {int(hit.sum())} shown px"))
    if handles:
        ax.imshow(overlay, origin="lower", extent=extent, interpolation="nearest")
    if sources is not None and len(sources):
        x = np.asarray(sources["base_SdssCentroid_x"], float)
        y = np.asarray(sources["base_SdssCentroid_y"], float)
        used = (
            np.asarray(sources["calib_psf_used"], bool)
            if "calib_psf_used" in sources.colnames
            else np.zeros(len(x), bool)
        )
        pairs = ((~used, "yellow", "other sources"), (used, "lime", "PSF stars"))
        for chosen, colour, text in pairs:
            if chosen.any():
                ax.scatter(x[chosen], y[chosen], s=60, facecolors="none", edgecolors=colour,
                           linewidths=0.8)
                label = f"{text} ({int(chosen.sum())})"
                handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="none",
                                      markeredgecolor=colour, label=label))
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    binned = f", shown binned {step}x{step}" if step > 1 else ""
    ax.set_title(
        f"{title}{binned}\nsky {sky:.4g}, stretch asinh((counts - sky) / {scale:.3g}) "
        "(3 x the noise)",
        fontsize=9,
    )
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.8)
    bar = fig.colorbar(drawn, cax=fig.add_axes((0.85, 0.07, 0.02, 0.86)))
    ticks = np.linspace(low, high, 6)
    bar.set_ticks(ticks)
    bar.set_ticklabels([f"{scale * np.sinh(t) + 0.0:.3g}" for t in ticks])
    bar.set_label("counts above sky (asinh stretch)", fontsize=8)
    return _save(fig, path)


def write_psf_picture(exposure: Any, path: str, *, title: str = "", grid: int = 3) -> str:
    """Write the PSF model of ``exposure`` at a grid of positions and its FWHM map.

    Parameters
    ----------
    exposure : `imaging.exposure.Exposure`
        Must have a PSF.
    path : `str`
        PNG file to write (folders are created; written atomically).
    title : `str`
        Figure title.
    grid : `int`
        The model is drawn at ``grid x grid`` positions spread over the detector.

    Returns
    -------
    path : `str`
        The file written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    psf = exposure.psf
    x0, y0 = exposure.xy0
    height, width = np.asarray(exposure.image).shape
    xs = x0 + (np.arange(grid) + 0.5) * width / grid
    ys = y0 + (np.arange(grid) + 0.5) * height / grid
    fig = Figure(figsize=(13, 6.0), dpi=100)
    FigureCanvasAgg(fig)
    fig.suptitle(f"{title}: PSF model", fontsize=10)
    kernels = [[psf.kernel_image((float(x), float(y))) for x in xs] for y in ys]
    peak = max(float(k.max()) for row in kernels for k in row)
    size = kernels[0][0].shape[0]
    for j in range(grid):  # row 0 at the bottom, as on the detector
        for i in range(grid):
            ax = fig.add_axes((0.02 + i * 0.38 / grid, 0.1 + j * 0.8 / grid,
                               0.33 / grid, 0.68 / grid))
            shown = ax.imshow(
                np.arcsinh(kernels[j][i] / (0.01 * peak)), origin="lower", cmap="viridis",
                vmin=0.0, vmax=float(np.arcsinh(100.0)),
            )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"x={xs[i]:.0f} y={ys[j]:.0f}\nFWHM {psf.fwhm((xs[i], ys[j])):.2f} px",
                          fontsize=7, labelpad=2)
    kbar = fig.colorbar(shown, cax=fig.add_axes((0.41, 0.1, 0.01, 0.78)))
    levels = np.array([0.0, 1.0, 10.0, 100.0])
    kbar.set_ticks(np.arcsinh(levels))
    kbar.set_ticklabels(["0", "1%", "10%", "100%"])
    kbar.set_label(f"kernel, of its peak ({size}x{size} px; asinh stretch)", fontsize=8)
    n = 16
    mx = x0 + (np.arange(n) + 0.5) * width / n
    my = y0 + (np.arange(n) + 0.5) * height / n
    fwhm = np.array([[psf.fwhm((float(x), float(y))) for x in mx] for y in my])
    ax = fig.add_axes((0.54, 0.1, 0.34, 0.78))
    drawn = ax.imshow(
        fwhm, origin="lower", cmap="magma", interpolation="nearest",
        extent=(x0 - 0.5, x0 + width - 0.5, y0 - 0.5, y0 + height - 0.5),
    )
    ax.plot(*np.meshgrid(xs, ys), "w+", markersize=8)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    ax.set_title(f"FWHM over the detector: {fwhm.min():.2f}-{fwhm.max():.2f} px "
                 "(+: the kernels drawn)", fontsize=8)
    bar = fig.colorbar(drawn, cax=fig.add_axes((0.9, 0.1, 0.012, 0.78)))
    bar.set_label("PSF FWHM (pixels)")
    return _save(fig, path)


def default_debug_dir(butlerQC: Any, outputRefs: Any) -> str:
    """Return ``<datastore root>/<run>/debug`` for a local datastore, else ``./debug``."""
    root = getattr(getattr(butlerQC, "butler", None), "spec", None)
    run = None
    for _, ref in outputRefs:
        run = (ref[0] if isinstance(ref, list | tuple) else ref).run
        break
    if root is not None and "://" not in root.datastore_root and run:
        return os.path.join(root.datastore_root, run, "debug")
    return os.path.join(os.getcwd(), "debug")
