"""Detector artifacts GalSim does not make: cosmic rays, saturation bleed, bad columns.

All functions work in electrons on ``float64`` arrays, in place, and draw from the generator
they are given, so the simulator stays deterministic.

Cosmic rays: a muon crossing a ``thickness`` µm thick sensor at a random inclination leaves a
straight (or slightly curved, ``curvature``) track whose projected length is ``thickness·tan(i)``
pixels-worth; it deposits ``80 e-/µm`` of path with Landau-like (log-normal) fluctuations per
step, spread by charge diffusion (Gaussian, ``diffusion`` px) over neighbouring pixels. Near
vertical incidence gives the single- or few-pixel hits. Deposits are added after the PSF.

Bleed: charge above the full well of a pixel spills along its column: each run of over-full
pixels is clipped to the full well and its excess is pushed half up, half down the column,
filling pixels to the full well until it is absorbed; charge is conserved except what leaves the
detector edge.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["add_bad_columns", "add_cosmic_rays", "bleed_saturation"]

_E_PER_MICRON = 80.0


def add_cosmic_rays(
    electrons: np.ndarray,
    rng: np.random.Generator,
    *,
    n_tracks: int,
    pixel_size_um: float = 10.0,
    thickness_um: float = 100.0,
    diffusion: float = 0.3,
    curvature: float = 0.03,
) -> np.ndarray:
    """Add ``n_tracks`` cosmic rays to ``electrons`` and return their deposited charge image."""
    ny, nx = electrons.shape
    deposit = np.zeros_like(electrons)
    xs_all, ys_all, q_all = [], [], []
    for _ in range(n_tracks):
        cos_i = rng.uniform(0.05, 1.0) ** 0.5  # cos² distributed zenith angle, flat-ish
        tan_i = math.sqrt(1.0 - cos_i * cos_i) / cos_i
        length = min(thickness_um * tan_i / pixel_size_um, 300.0)  # projected, pixels
        path_um = thickness_um / cos_i
        charge = _E_PER_MICRON * path_um
        x0, y0 = rng.uniform(0, nx), rng.uniform(0, ny)
        angle = rng.uniform(0, 2 * math.pi)
        n_steps = max(1, int(length / 0.25))
        t = (np.arange(n_steps) + 0.5) / n_steps
        bend = rng.normal(0.0, curvature) * length * t * (1 - t)
        xs = x0 + (t - 0.5) * length * math.cos(angle) - bend * math.sin(angle)
        ys = y0 + (t - 0.5) * length * math.sin(angle) + bend * math.cos(angle)
        q = rng.lognormal(0.0, 0.35, n_steps)
        q *= charge / q.sum()
        xs_all.append(xs)
        ys_all.append(ys)
        q_all.append(q)
    if not xs_all:
        return deposit
    xs, ys, q = np.concatenate(xs_all), np.concatenate(ys_all), np.concatenate(q_all)
    ix, iy = np.rint(xs).astype(int), np.rint(ys).astype(int)
    offsets = [(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    weights = np.stack(
        [
            np.exp(-((ix + dx - xs) ** 2 + (iy + dy - ys) ** 2) / (2 * diffusion**2))
            for dx, dy in offsets
        ]
    )
    weights /= weights.sum(axis=0)
    for k, (dx, dy) in enumerate(offsets):
        px, py = ix + dx, iy + dy
        ok = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
        np.add.at(deposit, (py[ok], px[ok]), q[ok] * weights[k, ok])
    electrons += deposit
    return deposit


def _spill(segment: np.ndarray, charge: float, full_well: float) -> None:
    """Fill ``segment`` (a view, ordered away from the source) with ``charge`` electrons."""
    if charge <= 0 or segment.size == 0:
        return
    room = np.clip(full_well - segment, 0.0, None)
    cum = np.cumsum(room)
    k = int(np.searchsorted(cum, charge))
    if k >= segment.size:
        segment += room  # the rest leaves the detector
        return
    segment[:k] += room[:k]
    segment[k] += charge - (cum[k - 1] if k > 0 else 0.0)


def bleed_saturation(electrons: np.ndarray, full_well: float) -> np.ndarray:
    """Bleed charge above ``full_well`` along columns, in place; return the columns touched."""
    over = electrons > full_well
    columns = np.flatnonzero(over.any(axis=0))
    for j in columns:
        col = electrons[:, j]  # a view: edits go to the image
        idx = np.flatnonzero(col > full_well)
        runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
        for run in runs:
            a, b = int(run[0]), int(run[-1]) + 1
            excess = float((col[a:b] - full_well).clip(0).sum())
            col[a:b] = np.minimum(col[a:b], full_well)
            up = excess / 2.0
            _spill(col[b:], up, full_well)
            _spill(col[:a][::-1], excess - up, full_well)
    return columns


def add_bad_columns(
    image: np.ndarray, rng: np.random.Generator, *, n_columns: int
) -> tuple[np.ndarray, list[int]]:
    """Overwrite ``n_columns`` random columns of ``image`` (ADU) with garbage, in place.

    Each bad column starts at a random row in the lower half and runs to the top (a charge
    trap); it holds either near-zero values or a large random level.

    Returns
    -------
    mask : `numpy.ndarray`
        Boolean image of the bad pixels.
    columns : `list` [`int`]
        The bad column numbers, sorted.
    """
    ny, nx = image.shape
    mask = np.zeros(image.shape, dtype=bool)
    cols = sorted(int(c) for c in rng.choice(nx, size=min(n_columns, nx), replace=False))
    for c in cols:
        start = int(rng.integers(0, max(ny // 2, 1)))
        mask[start:, c] = True
        if rng.uniform() < 0.5:
            image[start:, c] = rng.uniform(0.0, 5.0, ny - start)
        else:
            image[start:, c] = rng.uniform(2e4, 6e4, ny - start)
    return mask, cols
