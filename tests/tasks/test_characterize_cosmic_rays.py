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
``sources``; model error 0.05; sources of PSF peak above 50σ of the sky), the extension
judging a neighbour against the background (and model) rather than its ring's median
unless that shows light, and looking at the outermost rows and columns and beside
interpolated columns, seeds 21 / 22:

=========  =================  ==================  ===================  =============
detector   recall             worst region        false pixels         astroscrappy
=========  =================  ==================  ===================  =============
0°         0.990 → 0.994 /    0.987 → 0.989 /     206 → 197 /          231 / 217
           0.991 → 0.994      0.989 → 0.991       208 → 210
90°        0.982 → 0.993 /    0.962 → 0.991 /     168 → 175 /          178 / 208
           0.983 → 0.992      0.969 → 0.985       188 → 185
=========  =================  ==================  ===================  =============

So 0.99 in every region was reached on 2 of the 4 detectors (90° seed 21, 0° seed 22).
The model's fluxes were the catalog's, measured with characterizeImage's Gaussian stand-in
PSF: 10% low on unsaturated stars, up to 50% on saturated ones (the star ~15% off under a
track near the 90° seed-22 detector's edge was saturated; the track across another star
there had moved its centroid by 0.16 px).  With the fluxes and centres fitted to the
image (``modelFitFlux``; ``modelError`` 0.01) and the track pass (a track's edge judged by
the distance of the track's line from the pixel: ``trackNear`` 0.8 px, 1.5σ; ``trackFar``
0.9 px, 3σ; see `imaging.cosmic_rays`), both seeds
(``pytest tests/tasks/test_characterize_cosmic_rays.py``; regions to 4 decimals, misses
in brackets):

=========  ====================  ============================  ===========  ============
detector   recall                worst region                  false px     astroscrappy
=========  ====================  ============================  ===========  ============
0° s21     0.9940 → 0.9940 (15)  0.9889 centre → 0.9896 (1, 1)  197 → 180    231
0° s22     0.9940 → 0.9944 (15)  0.9914 → 0.9914                210 → 183    217
90° s21    0.9930 → 0.9944 (12)  0.9906 → 0.9906                175 → 176    178
90° s22    0.9923 → 0.9947 (13)  0.9866 → 0.9899 (1, 0)         186 → 173    208
=========  ====================  ============================  ===========  ============

"Before" has the PSF's radial degree-2 term (which moved 90° seed 22 from 0.9849 / 0.9919
to 0.9866 / 0.9923).  0.99 in every region: 2 of the 4 detectors (90° seed 21, 0° seed
22), as before; without the radial term these changes gave 3 of 4 (90° seed 22's worst
region 0.9916).  0° seed 21 misses 6 of the 576 CR pixels
in its corner (1, 1) (5 would do): faint track edges, deposits of 3-4σ that the noise
took to 0.4-2.6σ, most at the inner corner of a diagonal track's step.  90° seed 22 misses
6 of 597 in its corner (1, 0): two lie within 2 px of a saturated star's core (never
flagged, by design), one beside a faint star the model leaves out (its ring's light keeps
the track pass away; modelling sources from 20σ instead of 50σ finds it, but on seeds
23-26 changes nothing overall and lowers 90° seed 25's worst region 0.9816 → 0.9795).
Every remaining false pixel lies beside a track (a faint edge under the truth cut), so
lower thresholds buy recall at 10-20 false pixels per CR pixel: ``trackNearSigma`` 1.3 and
``trackFarSigma`` 2.5 reach 0.99 in every region on 3 of the 4 with 47 misses (55 here) but
209 false pixels on 90° seed 21, above astroscrappy's 178.  On eight more detectors (seeds
23-26, where the track pass's parameters were chosen) 0.99 in every region holds on 2 (1
before): misses 166 → 143, false pixels 1,578 → 1,480; the worst regions there are
0.982-0.989 (in the two looked at: a track across a faint star that the model leaves out,
and pixels within 2 px of a saturated one, never flagged by design but counted by the
truth).

The track pass now judges a track's edge pixel by its excess averaged with the charge the
track's line puts in it (its CR neighbour's light times the share diffusion leaves at the
line's distance; see `imaging.cosmic_rays`), not by the line's distance alone; seeds
21 / 22, regions to 4 decimals:

=========  ===============  ======================  ===========  ============
detector   misses           worst region            false px     astroscrappy
=========  ===============  ======================  ===========  ============
0° s21     15 → 11          0.9896 → 0.9913 (1, 1)  180 → 177    231
0° s22     15 → 14          0.9914 → 0.9920 (1, 1)  183 → 185    217
90° s21    12 → 9           0.9906 → 0.9930 (1, 1)  176 → 176    178
90° s22    13 → 12          0.9899 → 0.9916 (1, 0)  173 → 175    208
=========  ===============  ======================  ===========  ============

0.99 in every region on the 4 detectors (2 before).  Not by much: on eight detectors where
the new rule's threshold was chosen (seeds 23-26) it holds on 2 (2 before; misses 143 →
131, false pixels 1,480 → 1,471), and on eight held out (seeds 27-30) on 3 (2 before;
148 → 135, 1,402 → 1,378), the worst regions there 0.969-0.990: a track along a column
beside an interpolated bad one (never a candidate), a track across a star whose fitted
model took in part of its charge, pixels within 2 px of a saturated one, and faint edges.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

pytest.importorskip("galsim")

from _corner_field import PLACEMENT_IDS, PLACEMENTS, characterized_field  # noqa: E402

SIZE = 2048
SEEDS = (21, 22)
def _regions(h: int, w: int) -> dict[str, tuple[slice, slice]]:
    q = h // 4
    return {
        "centre": (slice(q, h - q), slice(q, w - q)),
        "corner (0, 0)": (slice(0, h // 2), slice(0, w // 2)),
        "corner (0, 1)": (slice(0, h // 2), slice(w // 2, w)),
        "corner (1, 0)": (slice(h // 2, h), slice(0, w // 2)),
        "corner (1, 1)": (slice(h // 2, h), slice(w // 2, w)),
    }


@pytest.fixture(
    scope="module",
    params=[(p, seed) for p in PLACEMENTS for seed in SEEDS],
    ids=[f"{i}-s{seed}" for i in PLACEMENT_IDS for seed in SEEDS],
)
def field(request):
    placement, seed = request.param
    sim, exposure, _ = characterized_field(
        *placement, size=SIZE, seed=seed, star_density=20000
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
    # (0.975 and 0.945 before the final pass judged CRs against the sources' PSF model and
    # the extension a neighbour against the background, not its ring)
    assert recall >= 0.99, recall
    assert min(regions.values()) >= 0.985, regions
    assert (found & valid & ~truth).sum() < 0.1 * truth.sum()


def test_recall_099_in_every_region(field):
    """Issue 14's recall 0.99 in every region (see the module docstring)."""
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
    assert sat.sum() > 10  # saturated stars and their bleed trails (19 px on 90° seed 22)
    near_sat = ndimage.binary_dilation(sat, structure=np.ones((5, 5), bool))
    assert not (found & near_sat).any()
