"""Cosmic rays after CharacterizeImageTask, at the centre and the corners, 0° and 90° detectors.

Issue 14: recall ≥ 0.99 with fewer false pixels than astroscrappy at its default, star cores
never flagged, and nothing flagged on saturated cores or bleed trails. Two 2048² detectors of
a 3×3 camera (a corner one at 0°, an edge one at 90°; the PSF varies over the field) with
20,000 stars per deg². Truth is the simulator's: a pixel whose deposited CR charge exceeds 3σ
of the sky noise. The regions are the central half and the four quadrants.

Measured when written (seeds 21 and 22 of each detector): recall 0.990 / 0.991 (0°) and
0.979 / 0.983 (90°) on the whole detector, 0.951-0.995 per region; 168-207 false pixels.
astroscrappy (sigclip 4.5, objlim 5, as the characterize bench runs it) on the same
detectors: recall 0.929-0.939 with 178-231 false pixels. About 40% of the misses on the 90°
detectors lie on starlight above 3σ (a track crossing a star of peak 12,000 counts leaves 16
of 45): the extension judges sharpness against the sky so that a track beside a star does
not spread into its core, and on a bright star's slope a CR's faint pixels are not sharp.
With the extension's sharpness test closer to the PSF's ratio along directions without CR
pixels (``extend_cond3_fac2``), seed 21: 0.990 (0°) and 0.979 → 0.982 (90°), the 90°
detector's worst region 0.951 → 0.962, false pixels unchanged (206, 167).

With the final CR pass judged against the measured sources' PSF model (RepairTask's
``sources``; model error 0.05; sources of PSF peak above 50σ of the sky) and the extension
looking at the outermost rows and columns too, seeds 21 / 22: 0° 0.990 → 0.9904 and 0.991
→ 0.991 (worst region 0.987 / 0.989; no track crossed a bright star), 90° 0.982 → 0.989
and 0.983 → 0.989 (worst region 0.962 → 0.985 and 0.969 → 0.985), false pixels 206 / 208
(0°) and 170 / 191 (90°) against astroscrappy's 231 / 217 and 178 / 208. What is left is
the faint edge of a track: 24-27 pixels per detector, nearly all with a deposit of 3-4σ
that the noise took to 1-2.5σ. Among the pixels beside a track with an excess of 1.25-2σ
only 4% are CR pixels (2-3σ: 20%), so a lower threshold buys each one with several false
pixels (``flanked_sigma`` 1.75: recall +0.1-0.2%, false pixels +20-30, more than
astroscrappy's). Issue 14's 0.99 in every region is not reached (a strict xfail says so).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

pytest.importorskip("galsim")

from _corner_field import PLACEMENT_IDS, PLACEMENTS, characterized_field  # noqa: E402

SIZE = 2048
SEED = 21


def _regions(h: int, w: int) -> dict[str, tuple[slice, slice]]:
    q = h // 4
    return {
        "centre": (slice(q, h - q), slice(q, w - q)),
        "corner (0, 0)": (slice(0, h // 2), slice(0, w // 2)),
        "corner (0, 1)": (slice(0, h // 2), slice(w // 2, w)),
        "corner (1, 0)": (slice(h // 2, h), slice(0, w // 2)),
        "corner (1, 1)": (slice(h // 2, h), slice(w // 2, w)),
    }


@pytest.fixture(scope="module", params=PLACEMENTS, ids=PLACEMENT_IDS)
def field(request):
    sim, exposure, _ = characterized_field(
        *request.param, size=SIZE, seed=SEED, star_density=20000
    )
    valid = ~sim.exposure.mask.is_set(["BAD", "SAT"])
    return sim, exposure.mask.is_set("CR"), valid


def _recalls(field) -> tuple[float, dict[str, float]]:
    sim, found, valid = field
    truth = sim.truth.cr_mask & valid
    regions = {}
    for name, region in _regions(*truth.shape).items():
        t, f = truth[region], found[region]
        assert t.sum() > 400, name
        regions[name] = (f & t).sum() / t.sum()
    return (found & truth).sum() / truth.sum(), regions


def test_recall_at_the_centre_and_the_corners(field):
    sim, found, valid = field
    truth = sim.truth.cr_mask & valid
    assert truth.sum() > 2000
    recall, regions = _recalls(field)
    # (0.975 and 0.945 before the final pass judged CRs against the sources' PSF model)
    assert recall >= 0.985, recall
    assert min(regions.values()) >= 0.978, regions
    assert (found & valid & ~truth).sum() < 0.1 * truth.sum()


@pytest.mark.xfail(strict=True, reason="issue 14's 0.99 in every region is not reached: faint "
                   "track edges taken below the threshold by noise (see the module docstring)")
def test_recall_099_in_every_region(field):
    recall, regions = _recalls(field)
    assert recall >= 0.99 and min(regions.values()) >= 0.99, (recall, regions)


def test_fewer_false_pixels_than_astroscrappy(field):
    astroscrappy = pytest.importorskip("astroscrappy")
    sim, found, valid = field
    truth = sim.truth.cr_mask & valid
    det = sim.exposure.detector
    theirs, _ = astroscrappy.detect_cosmics(
        np.ascontiguousarray(sim.exposure.image, dtype=np.float32), inmask=~valid,
        gain=det.gain, readnoise=det.read_noise, satlevel=det.saturation, sigclip=4.5,
        objlim=5.0, sepmed=True, cleantype="meanmask", fsmode="median",
    )
    theirs &= valid
    ours = found & valid
    assert (ours & truth).sum() > (theirs & truth).sum()
    assert (ours & ~truth).sum() < (theirs & ~truth).sum()


def test_star_cores_and_saturated_pixels_are_never_cosmic_rays(field):
    sim, found, _ = field
    h, w = found.shape
    truth = sim.truth.cr_mask
    stars = sim.truth.stars
    ix, iy = np.rint(stars["x"]).astype(int), np.rint(stars["y"]).astype(int)
    inside = (ix >= 1) & (ix < w - 1) & (iy >= 1) & (iy < h - 1)
    ix, iy = ix[inside], iy[inside]
    # a core pixel flagged with no CR pixel (above the truth cut) at or next to it: a track
    # beside the star spread into the core (a track's faint edge may be flagged)
    near_cr = ndimage.binary_dilation(truth, structure=np.ones((3, 3), bool))
    wrong = np.zeros(ix.size, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            wrong |= found[iy + dy, ix + dx] & ~near_cr[iy + dy, ix + dx]
    assert ix.size > 100
    assert not wrong.any(), list(zip(ix[wrong], iy[wrong], strict=True))
    sat = sim.exposure.mask.is_set("SAT")
    assert sat.sum() > 100  # saturated stars and their bleed trails
    near_sat = ndimage.binary_dilation(sat, structure=np.ones((5, 5), bool))
    assert not (found & near_sat).any()
