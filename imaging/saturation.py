"""Saturated stars and bleed trails: one source each, centred from the unsaturated wings.

A star brighter than the full well leaves a plateau of SAT pixels and, along its column, a
bleed trail. The smoothed image along a trail is flat, so local-maximum peak finding puts a peak
every few pixels of it, and the peak splitter turns each into a source. LSST grows the SAT
plane and merges such pieces into the star's footprint; here:

* `saturated_regions` labels the 8-connected groups of SAT pixels grown by ``grow`` pixels
  (a Manhattan radius): one group is one saturated star with its trail, including the partly
  filled pixels at the trail ends and the bright pixels bordering the plateau;
* `merge_saturated_peaks` gives each footprint a single peak per group it touches (and merges
  footprints that touch the same group), placed at the group's `wing_centroid`;
* `wing_centroid` centres a saturated star on its unsaturated wings: the point about which
  the usable pixels are most point-symmetric (least squares with bilinear interpolation of the
  mirror image, Gauss-Newton), so masked pixels (the plateau, the trail and the pixels it
  bled into, dead columns) remove symmetric pairs and do not bias it. A first moment over the
  same asymmetric mask is biased by the bright plateau edge and does not converge.

No state is kept between calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from ._convolve import bitmask, connected_components_8
from ._footprint_kernels import label_boxes
from .footprint import Footprint, Peaks

__all__ = ["SaturatedRegions", "merge_saturated_peaks", "saturated_regions", "wing_centroid"]


class SaturatedRegions:
    """Grown SAT groups of an image.

    Attributes
    ----------
    labels : ndarray
        int32 label image, 0 outside every group, else 1..n.
    n : int
        Number of groups.
    slices : list of tuple of slice
        Bounding box of each group (index ``label - 1``).
    """

    __slots__ = ("labels", "n", "slices")

    def __init__(self, labels: np.ndarray, n: int, slices: list) -> None:
        self.labels = labels
        self.n = int(n)
        self.slices = slices

    def core(self, g: int) -> tuple[int, int, int]:
        """``(x, y, width)`` of the widest row of group ``g``: the saturated core."""
        sl = self.slices[g - 1]
        inside = self.labels[sl] == g
        widths = inside.sum(axis=1)
        rows = np.nonzero(widths == widths.max())[0]
        row = int(rows[rows.size // 2])
        cols = np.nonzero(inside[row])[0]
        x = int(sl[1].start + (cols[0] + cols[-1]) // 2)
        return x, int(sl[0].start + row), int(cols[-1] - cols[0] + 1)


def _boxes(y: np.ndarray, x: np.ndarray, lab: np.ndarray, n: int) -> np.ndarray:
    """(n, 4) inclusive boxes (y0, y1, x0, x1) of labelled pixel lists (one compiled pass)."""
    return label_boxes(np.asarray(y, np.int64), np.asarray(x, np.int64), lab, n)


def saturated_regions(
    mask: np.ndarray,
    planes: Mapping[str, int] | None,
    *,
    grow: int = 5,
    sat_planes: Sequence[str] = ("SAT",),
) -> SaturatedRegions:
    """Label the groups of SAT pixels, each grown by a Manhattan radius of ``grow`` pixels.

    Works on the SAT pixel list and small patches (cost ~ number of SAT pixels plus one scan
    of the mask).
    """
    h, w = mask.shape
    labels = np.zeros((h, w), np.int32)
    bits = bitmask(planes, sat_planes)
    if not bits:
        return SaturatedRegions(labels, 0, [])
    # rows holding SAT first (a cheap reduction), then the pixels of those rows only
    rows = np.flatnonzero(np.bitwise_or.reduce(mask, axis=1) & np.uint32(bits))
    if rows.size == 0:
        return SaturatedRegions(labels, 0, [])
    ry, xs = np.nonzero(mask[rows] & np.uint32(bits))
    ys = rows[ry]
    ys, xs = ys.astype(np.int64), xs.astype(np.int64)
    n0, lab0 = connected_components_8(ys, xs, w)
    d = np.abs(np.arange(-grow, grow + 1))
    struct = (d[:, None] + d[None, :]) <= grow
    order = np.argsort(lab0, kind="stable")
    bounds = np.searchsorted(lab0[order], np.arange(n0 + 1))
    gys, gxs = [], []
    for i, (y0, y1, x0, x1) in enumerate(_boxes(ys, xs, lab0, n0)):
        y0, y1 = max(y0 - grow, 0), min(y1 + 1 + grow, h)
        x0, x1 = max(x0 - grow, 0), min(x1 + 1 + grow, w)
        sel = order[bounds[i]:bounds[i + 1]]
        patch = np.zeros((y1 - y0, x1 - x0), bool)
        patch[ys[sel] - y0, xs[sel] - x0] = True
        py, px = np.nonzero(ndimage.binary_dilation(patch, structure=struct))
        gys.append(py + y0)
        gxs.append(px + x0)
    flat = np.unique(np.concatenate(gys) * w + np.concatenate(gxs))
    gy, gx = flat // w, flat % w
    n, gl = connected_components_8(gy, gx, w)
    labels[gy, gx] = gl + 1
    slices = [
        (slice(int(y0), int(y1) + 1), slice(int(x0), int(x1) + 1))
        for y0, y1, x0, x1 in _boxes(gy, gx, gl, n)
    ]
    return SaturatedRegions(labels, n, slices)


def wing_centroid(
    image: np.ndarray,
    mask: np.ndarray,
    x0: float,
    y0: float,
    radius: float,
    *,
    bad_bits: int,
    sat_bits: int,
    variance: np.ndarray | None = None,
    max_iter: int = 12,
    tol: float = 1e-3,
    clip: float = 5.0,
) -> tuple[float, float]:
    """Centre of a star from its wings: the point of best point symmetry around ``(x0, y0)``.

    Minimises ``Σ (I(p) − I(2c − p))² / (V(p) + V(2c − p))`` over the pixels ``p`` of a
    circular window whose mirror ``2c − p`` falls among usable pixels (bilinear interpolation),
    by Gauss-Newton steps; pairs more than ``clip`` sigma apart (a neighbour, a CR) are
    dropped once the steps are small. Masked pixels (the plateau, the trail and the pixels
    next to them, which the trail bleeds into) drop symmetric pairs, so they do not bias the
    centre, unlike a first moment over an asymmetric mask.

    Parameters
    ----------
    image : ndarray
        Background-subtracted image.
    mask : ndarray
        uint32 mask.
    x0, y0 : float
        Starting centre, pixel indices of ``image`` (within a pixel or two of the truth).
    radius : float
        Radius of the window (pixels); it should reach a few PSF widths past the plateau.
    bad_bits : int
        Mask bits of pixels never used (BAD, CR, NO_DATA ...).
    sat_bits : int
        Mask bits of saturated pixels: never used, nor their 8 neighbours (bled into).
    variance : ndarray, optional
        Variance plane; `None` weighs all pairs equally.
    max_iter : int
        Iteration limit.
    tol : float
        Convergence on the step, pixels.
    clip : float
        Pair rejection threshold, in sigmas of the pair difference.

    Returns
    -------
    x, y : float
        Centre in pixel indices of ``image``; the start when there are too few pairs.
    """
    from scipy.ndimage import map_coordinates

    h, w = image.shape
    r = int(np.ceil(radius)) + 3
    ix, iy = int(round(x0)), int(round(y0))
    ya, yb = max(iy - r, 0), min(iy + r + 1, h)
    xa, xb = max(ix - r, 0), min(ix + r + 1, w)
    if yb - ya < 3 or xb - xa < 3:
        return float(x0), float(y0)
    img = np.asarray(image[ya:yb, xa:xb], dtype=np.float64)
    msk = mask[ya:yb, xa:xb]
    ok = np.isfinite(img) & ((msk & np.uint32(bad_bits)) == 0)
    ok &= ~ndimage.binary_dilation((msk & np.uint32(sat_bits)) != 0, structure=np.ones((3, 3)))
    var = (np.ones_like(img) if variance is None
           else np.asarray(variance[ya:yb, xa:xb], dtype=np.float64))
    ok &= np.isfinite(var) & (var > 0)
    img = np.where(ok, img, 0.0)
    var = np.where(ok, var, np.inf)
    gy, gx = np.gradient(img)
    okf = ok.astype(np.float64)
    yy, xx = np.mgrid[0:yb - ya, 0:xb - xa].astype(np.float64)
    cx, cy = float(x0) - xa, float(y0) - ya
    keep = np.ones(img.shape, bool)
    converging = False
    for _ in range(max_iter):
        sel = ok & keep & ((xx - cx) ** 2 + (yy - cy) ** 2 <= radius * radius)
        py, px = yy[sel], xx[sel]
        my, mx = 2.0 * cy - py, 2.0 * cx - px
        coords = np.vstack([my, mx])
        mok = map_coordinates(okf, coords, order=1, mode="constant", cval=0.0) > 0.999
        if np.count_nonzero(mok) < 10:
            break
        coords = coords[:, mok]
        data = img[py[mok].astype(int), px[mok].astype(int)]
        mirror = map_coordinates(img, coords, order=1)
        dmy = map_coordinates(gy, coords, order=1)
        dmx = map_coordinates(gx, coords, order=1)
        pvar = var[py[mok].astype(int), px[mok].astype(int)]
        mvar = map_coordinates(np.where(ok, var, 0.0), coords, order=1)
        wgt = 1.0 / (pvar + mvar)
        resid = data - mirror
        # Clip only near the solution: far from it the bright wings are all "outliers".
        bad = resid * resid * wgt > clip * clip if converging else np.zeros(resid.size, bool)
        if bad.any():
            drop = np.nonzero(mok)[0][bad]
            keep[py[drop].astype(int), px[drop].astype(int)] = False
        good = ~bad
        # d(resid)/d(cx, cy) = -2 * gradient of the image at the mirror point
        jx, jy = -2.0 * dmx[good], -2.0 * dmy[good]
        wg, rg = wgt[good], resid[good]
        a = np.array([[np.sum(wg * jx * jx), np.sum(wg * jx * jy)],
                      [np.sum(wg * jx * jy), np.sum(wg * jy * jy)]])
        b = -np.array([np.sum(wg * jx * rg), np.sum(wg * jy * rg)])
        try:
            step = np.linalg.solve(a, b)
        except np.linalg.LinAlgError:
            break
        step = np.clip(step, -1.0, 1.0)
        cx, cy = cx + float(step[0]), cy + float(step[1])
        if np.hypot(*step) < tol and converging:
            break
        converging = converging or np.hypot(*step) < 0.05
    return cx + xa, cy + ya


def merge_saturated_peaks(
    footprints: list,
    labels: np.ndarray,
    regions: SaturatedRegions,
    image: np.ndarray,
    mask: np.ndarray,
    *,
    bad_bits: int,
    sat_bits: int,
    wing_radius: float,
    variance: np.ndarray | None = None,
) -> tuple[list, dict[tuple[int, int], tuple[float, float]]]:
    """One peak per saturated group: merge footprints and peaks that share a group.

    Parameters
    ----------
    footprints : list of `imaging.detection.Footprint`
        Footprints (``id`` = their value in ``labels``).
    labels : ndarray
        Their label image; pixels of a footprint merged into another are relabelled in place.
    regions : SaturatedRegions
        Grown SAT groups.
    image, mask : ndarray
        Background-subtracted image and its mask.
    bad_bits, sat_bits : int
        Passed to `wing_centroid`.
    wing_radius : float
        Wing-centroid window beyond the core's half-width (pixels).
    variance : ndarray, optional
        Variance plane, weights of `wing_centroid`.

    Returns
    -------
    footprints : list
        The footprints, merged ones dropped (the survivor keeps the lowest id).
    centres : dict
        ``{(peak x, peak y): (x, y)}``: for each peak that stands for a saturated star, the
        sub-pixel wing centroid (pixel indices; the peak is its rounding).
    """
    if regions.n == 0 or not footprints:
        return footprints, {}
    by_id = {fp.id: fp for fp in footprints}
    parent = {fid: fid for fid in by_id}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    groups_of: dict[int, set[int]] = {}
    for g, sl in enumerate(regions.slices, start=1):
        touched = np.unique(labels[sl][regions.labels[sl] == g])
        touched = [int(t) for t in touched if t > 0 and int(t) in by_id]
        for fid in touched:
            groups_of.setdefault(fid, set()).add(g)
        for a, b in zip(touched[:-1], touched[1:], strict=True):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    if not groups_of:
        return footprints, {}
    members: dict[int, list[int]] = {}
    for fp in footprints:
        members.setdefault(find(fp.id), []).append(fp.id)
    star: dict[int, tuple[float, float, float]] = {}  # group -> (x, y, peak value)
    out, centres = [], {}
    for fp in footprints:
        root = find(fp.id)
        if root != fp.id:
            continue
        ids = members[root]
        groups = set().union(*(groups_of.get(i, set()) for i in ids))
        if not groups:
            out.append(fp)
            continue
        fps = [by_id[i] for i in ids]
        px = np.concatenate([f.peaks.x for f in fps])
        py = np.concatenate([f.peaks.y for f in fps])
        pv = np.concatenate([f.peaks.value for f in fps])
        noise = float(fps[0].peaks.value[0] / fps[0].peaks.significance[0])
        in_group = regions.labels[py, px]
        keep = ~np.isin(in_group, sorted(groups))
        kx, ky, kv = [px[keep].astype(np.float64)], [py[keep].astype(np.float64)], [pv[keep]]
        for g in sorted(groups):
            if g not in star:
                x0, y0, width = regions.core(g)
                x, y = wing_centroid(image, mask, x0, y0, 0.75 * width + wing_radius,
                                     bad_bits=bad_bits, sat_bits=sat_bits, variance=variance)
                sel = in_group == g
                best = float(pv[sel].max()) if sel.any() else float(image[y0, x0])
                star[g] = (x, y, best)
            x, y, best = star[g]
            centres[(int(round(x)), int(round(y)))] = (x, y)
            kx.append(np.array([x]))
            ky.append(np.array([y]))
            kv.append(np.array([best]))
        fx, fy, fv = np.concatenate(kx), np.concatenate(ky), np.concatenate(kv)
        order = np.argsort(-fv, kind="stable")
        fx, fy, fv = fx[order], fy[order], fv[order]
        for other in fps[1:]:
            sub = labels[other.slices]
            sub[sub == other.id] = root
        ys = [f.slices[0] for f in fps]
        xs = [f.slices[1] for f in fps]
        out.append(
            Footprint(
                id=root,
                slices=(slice(min(s.start for s in ys), max(s.stop for s in ys)),
                        slice(min(s.start for s in xs), max(s.stop for s in xs))),
                area=int(sum(f.area for f in fps)),
                peaks=Peaks(x=np.rint(fx).astype(np.int64), y=np.rint(fy).astype(np.int64),
                            value=fv, significance=fv / noise),
                negative=fps[0].negative,
            )
        )
    return out, centres
