"""Pictures of the extended PSF, for people: the model, its profile, a subtracted star.

* `write_model_picture`: each model (default and regions) on a logarithmic stretch with a
  colour bar; pixels where no stamp contributed (NaN or not positive) in a flat colour named in
  the legend.
* `write_profile_picture`: the azimuthal profile of each model on log-log axes, its fitted
  Moffat core + power-law wing, and the truth when one is given.
* `write_subtraction_picture`: a cut-out of an exposure around a star before and after the
  subtraction, on one arcsinh stretch with a colour bar.

Files are written atomically (temporary name, then rename); folders are created.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np

from .extended_psf import ExtendedPsf
from .extended_psf_profile import azimuthal_profile

__all__ = ["write_model_picture", "write_profile_picture", "write_subtraction_picture"]

_EMPTY_COLOUR = (0.25, 0.45, 0.85)


def _save(fig: Any, path: str) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}.png"
    try:
        fig.savefig(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def write_model_picture(psf: ExtendedPsf, path: str, *, title: str = "") -> str:
    """Write the models of ``psf`` on a log stretch with a colour bar; return the path."""
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Patch

    models = psf.regions
    n = max(len(models), 1)
    width = 4.6 * n + 1.2
    meta = ", ".join(f"{k}={v}" for k, v in psf.metadata.items())
    lines = [title] if title else ["Extended PSF", *textwrap.wrap(meta, int(width * 11))]
    height = 4.4 + 0.16 * len(lines)  # room for every line of the title above the axes
    fig = _figure(width, height)
    fig.subplots_adjust(top=1.0 - (0.35 + 0.16 * len(lines)) / height)
    images = [np.asarray(m.image.image, dtype=float) for m in models.values()]
    positive = np.concatenate([im[np.isfinite(im) & (im > 0)] for im in images] or [[1.0]])
    vmax = float(positive.max())
    vmin = max(float(np.percentile(positive, 1)), vmax * 1e-6)
    cmap = colormaps["magma"].with_extremes(bad=_EMPTY_COLOUR)
    norm = LogNorm(vmin=vmin, vmax=vmax)
    shown = None
    for k, (name, model) in enumerate(models.items()):
        ax = fig.add_subplot(1, n, k + 1)
        image = images[k].copy()
        image[~(np.isfinite(image) & (image > 0))] = np.nan
        shown = ax.imshow(image, origin="lower", cmap=cmap, norm=norm, interpolation="nearest")
        detectors = f", detectors {model.detector_list}" if model.detector_list else ""
        ax.set_title(f"{name}: {model.n_stamps} stamps{detectors}", fontsize=9)
        ax.set_xlabel("x (stamp pixels)")
        ax.set_ylabel("y (stamp pixels)")
    if shown is not None:
        bar = fig.colorbar(shown, ax=fig.axes, shrink=0.85)
        bar.set_label("model (annulus mean = 1), log stretch")
    fig.legend(
        handles=[Patch(color=_EMPTY_COLOUR, label="no stamp / not positive")],
        loc="lower left",
        fontsize=8,
    )
    fig.suptitle("\n".join(lines), fontsize=9)
    return _save(fig, path)


def write_profile_picture(
    psf: ExtendedPsf,
    path: str,
    *,
    truth: Callable[[np.ndarray], np.ndarray] | None = None,
    title: str = "",
) -> str:
    """Write the log-log azimuthal profile of each model with its fit (and ``truth(r)``)."""
    from matplotlib import colormaps

    fig = _figure(7.5, 5.2)
    ax = fig.add_subplot(1, 1, 1)
    colours = colormaps["tab10"]
    for k, (name, model) in enumerate(psf.regions.items()):
        profile = azimuthal_profile(model.image.image)
        r, v = profile.radius, profile.value
        keep = np.isfinite(v) & (v > 0) & (r > 0)
        colour = colours(k % 10)
        ax.loglog(r[keep], v[keep], "o", ms=3, color=colour, label=f"{name}: stacked profile")
        if model.profile is not None:
            grid = np.geomspace(max(r[keep].min(), 0.5), r[keep].max(), 200)
            ax.loglog(grid, model.profile(grid), "-", color=colour,
                      label=f"{name}: Moffat core + power-law wing fit")  # fmt: skip
        if truth is not None:
            grid = np.geomspace(0.5, r.max(), 200)
            ax.loglog(grid, truth(grid), "--", color="black", label="truth" if k == 0 else None)
    ax.set_xlabel("radius (stamp pixels)")
    ax.set_ylabel("surface brightness (annulus mean = 1)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "Extended PSF azimuthal profile", fontsize=10)
    return _save(fig, path)


def _asinh_ticks(vmin: float, vmax: float, linear_width: float) -> list[float]:
    """Round tick values (0, ±1/2/5 × 10^k) at least 1/8 of an asinh colour bar apart."""

    def position(v: float) -> float:
        return math.asinh(v / linear_width)

    spacing = (position(vmax) - position(vmin)) / 8.0
    candidates = [0.0]
    for k in range(-6, 12):
        for m in (1.0, 2.0, 5.0):
            candidates += [m * 10.0**k, -m * 10.0**k]
    inside = sorted(v for v in candidates if vmin <= v <= vmax)
    kept = [0.0] if vmin <= 0.0 <= vmax else []
    for v in sorted(inside, key=abs):
        if all(abs(position(v) - position(t)) >= spacing for t in kept):
            kept.append(v)
    return sorted(kept)


def write_subtraction_picture(
    before: np.ndarray,
    after: np.ndarray,
    center: tuple[float, float],
    path: str,
    *,
    half_size: int = 100,
    title: str = "",
) -> str:
    """Write a cut-out around ``center`` (``(x, y)`` array pixels) before and after."""
    from matplotlib.colors import AsinhNorm
    from matplotlib.ticker import NullLocator

    cx, cy = int(round(center[0])), int(round(center[1]))
    ny, nx = before.shape
    x0, x1 = max(cx - half_size, 0), min(cx + half_size + 1, nx)
    y0, y1 = max(cy - half_size, 0), min(cy + half_size + 1, ny)
    cut_before = np.asarray(before[y0:y1, x0:x1], dtype=float)
    cut_after = np.asarray(after[y0:y1, x0:x1], dtype=float)
    finite = cut_before[np.isfinite(cut_before)]
    noise = 1.4826 * float(np.median(np.abs(finite - np.median(finite)))) if finite.size else 1.0
    vmax = float(np.nanpercentile(cut_before, 99.5))
    norm = AsinhNorm(linear_width=max(noise, 1e-6), vmin=-5 * max(noise, 1e-6), vmax=vmax)
    fig = _figure(11.0, 5.0)
    shown = None
    extent = (x0 - 0.5, x1 - 0.5, y0 - 0.5, y1 - 0.5)
    for k, (label, cut) in enumerate((("before", cut_before), ("after", cut_after))):
        ax = fig.add_subplot(1, 2, k + 1)
        shown = ax.imshow(cut, origin="lower", cmap="gray", norm=norm, extent=extent,
                          interpolation="nearest")  # fmt: skip
        ax.set_title(f"{label} subtraction", fontsize=9)
        ax.set_xlabel("x (detector pixels)")
        ax.set_ylabel("y (detector pixels)")
    bar = fig.colorbar(shown, ax=fig.axes, shrink=0.85)
    bar.set_ticks(_asinh_ticks(norm.vmin, norm.vmax, max(noise, 1e-6)))
    bar.ax.yaxis.set_major_formatter("{x:.3g}")
    bar.ax.yaxis.set_minor_locator(NullLocator())
    bar.set_label(f"counts, arcsinh stretch (linear within {noise:.3g}, the noise)")
    fig.suptitle(title or "Bright-star subtraction", fontsize=10)
    return _save(fig, path)
