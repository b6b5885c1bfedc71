"""Lanczos/bilinear warping of masked images through StampTransforms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.wcs import WCS

from imaging.geometry import Box
from imaging.mask import Mask
from imaging.sim.camera import make_camera
from imaging.sim.wcs import make_detector_wcs
from imaging.warping import (
    StampTransform,
    WarpingError,
    nb90_rotations,
    rotate_quarter_turns,
    warp_masked_image,
)

SIZE = 120


def _gaussian(cx, cy, sigma=2.0, origin=(0, 0), amplitude=1000.0):
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    xs += origin[0]
    ys += origin[1]
    return amplitude * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))


def _distortion(k=1e-10):
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[3, 0] = a[1, 2] = k
    b[0, 3] = b[2, 1] = k
    return StampTransform(crpix=(-3000.0, -2500.0), sip_a=a, sip_b=b)


def test_integer_shift_reproduces_the_source_exactly():
    rng = np.random.default_rng(2)
    image = rng.normal(0, 1, (SIZE, SIZE)).astype(np.float32)
    variance = rng.uniform(1, 2, (SIZE, SIZE)).astype(np.float32)
    mask = Mask((SIZE, SIZE))
    for kernel in ("bilinear", "lanczos3", "lanczos5"):
        out = warp_masked_image(
            image,
            mask,
            variance,
            transform=StampTransform(shift=(3.0, -2.0)),
            source_xy0=(10, 20),
            dest_box=Box(30, 30, 60, 60),
            kernel=kernel,
        )
        # destination (X, Y) = source (X - 3, Y + 2): array [20 + 2 - 20 + i, 30 - 3 - 10 + j]
        np.testing.assert_allclose(out.image, image[12:72, 17:77], atol=2e-6)
        np.testing.assert_allclose(out.variance, variance[12:72, 17:77], rtol=1e-5)
        assert not out.mask.array.any()


@pytest.mark.parametrize("kernel,tolerance", [("lanczos5", 2e-3), ("lanczos3", 5e-3)])
def test_distorted_warp_matches_the_analytic_image(kernel, tolerance):
    transform = _distortion()
    source_xy0 = (1000, 2000)
    cx, cy = 1059.3, 2061.7
    image = _gaussian(cx, cy, origin=source_xy0).astype(np.float32)
    dest_x, dest_y = transform.apply(cx, cy)
    dest = Box(int(dest_x) - 40, int(dest_y) - 40, 81, 81)
    out = warp_masked_image(
        image,
        Mask(image.shape),
        None,
        transform=transform,
        source_xy0=source_xy0,
        dest_box=dest,
        kernel=kernel,
    )
    assert out.fit_residual < 1e-4
    ys, xs = np.mgrid[dest.y0 : dest.y1, dest.x0 : dest.x1].astype(float)
    sx, sy = transform.apply_inverse(xs, ys)
    truth = 1000.0 * np.exp(-((sx - cx) ** 2 + (sy - cy) ** 2) / 8.0)
    assert np.nanmax(np.abs(out.image - truth)) < tolerance * 1000.0
    weights = np.nan_to_num(out.image)
    cen_x = (weights * xs).sum() / weights.sum()
    cen_y = (weights * ys).sum() / weights.sum()
    assert math.hypot(cen_x - dest_x, cen_y - dest_y) < 0.02


def test_mask_bits_are_ored_over_the_kernel_footprint_and_edges_are_no_data():
    image = np.ones((SIZE, SIZE), np.float32)
    mask = Mask((SIZE, SIZE))
    one = np.zeros((SIZE, SIZE), bool)
    one[50, 60] = True
    mask.set("CR", one)
    image[80, 80] = np.nan
    out = warp_masked_image(
        image,
        mask,
        np.ones_like(image),
        transform=StampTransform(shift=(0.5, 0.25)),
        source_xy0=(0, 0),
        dest_box=Box(-20, -20, 160, 160),
        kernel="lanczos5",
    )
    cr = out.mask.is_set("CR")
    ys, xs = np.nonzero(cr)
    # destination X samples source x = X - 0.5, taps X - 5 .. X + 4: X in [56, 65] hold x = 60
    # (array column X + 20); likewise rows Y in [46, 55] hold y = 50.
    assert set(xs) == set(range(76, 86)) and set(ys) == set(range(66, 76))
    assert cr.sum() == 100
    no_data = out.mask.is_set("NO_DATA")
    assert np.array_equal(no_data, ~np.isfinite(out.image))
    assert np.isinf(out.variance[no_data]).all()
    # The NaN pixel poisons exactly its 10x10 footprint; the border is no data.
    inside = no_data[30:130, 30:130]
    assert inside.sum() == 100
    assert no_data[0].all() and no_data[-1].all() and no_data[:, 0].all()
    np.testing.assert_allclose(out.image[40:60, 40:60], 1.0, rtol=1e-6)


def test_from_wcs_is_the_wcs_without_its_sip_terms():
    camera = make_camera(n_detectors=4, detector_size=(512, 512))
    det = camera.detectors[3]
    wcs = make_detector_wcs(
        detector=det,
        boresight=(150.0, 2.0),
        rotation_angle=30.0,
        pixel_scale=0.2,
        distortion_k=camera.distortion_k,
    )
    transform = StampTransform.from_wcs(wcs)
    tan = WCS(naxis=2)
    tan.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    tan.wcs.crval = wcs.wcs.crval
    tan.wcs.crpix = wcs.wcs.crpix
    tan.wcs.cd = wcs.wcs.cd
    xs = np.array([0.0, 100.0, 511.0])
    ys = np.array([0.0, 400.0, 511.0])
    tx, ty = transform.apply(xs, ys)
    ra1, dec1 = wcs.all_pix2world(xs, ys, 0)
    ra2, dec2 = tan.all_pix2world(tx, ty, 0)
    np.testing.assert_allclose(ra1, ra2, atol=1e-10)
    np.testing.assert_allclose(dec1, dec2, atol=1e-10)
    back = transform.apply_inverse(tx, ty)
    np.testing.assert_allclose(back, (xs, ys), atol=1e-8)
    assert StampTransform.from_wcs(None) == StampTransform()


def test_quarter_turn_rules():
    assert [nb90_rotations(a) for a in (0, 90, 180, 270)] == [0, 1, 2, 3]
    assert nb90_rotations(-90) == 0  # the seed's rule has no wrap-around
    assert nb90_rotations(360) == 3
    with pytest.raises(WarpingError, match="45"):
        nb90_rotations(45)
    array = np.zeros((5, 5))
    array[2, 4] = 1.0  # a feature at +x of the centre
    turned = rotate_quarter_turns(array, 1)
    assert turned[4, 2] == 1.0  # now at +y: counter-clockwise with y up
    assert rotate_quarter_turns(array, 2)[2, 0] == 1.0


def test_unknown_kernel():
    with pytest.raises(WarpingError, match="lanczos7"):
        warp_masked_image(
            np.zeros((10, 10), np.float32),
            Mask((10, 10)),
            None,
            transform=StampTransform(),
            source_xy0=(0, 0),
            dest_box=Box(0, 0, 5, 5),
            kernel="lanczos7",
        )


def _smooth_field(rng, size):
    """A sloped sky with a few stars (sigma 1.5-4 px): band-limited enough for Lanczos."""
    ys, xs = np.mgrid[0:size, 0:size].astype(float)
    image = 50.0 + 0.1 * xs - 0.05 * ys
    for _ in range(6):
        cx, cy = rng.uniform(15, size - 15, 2)
        sigma = rng.uniform(1.5, 4.0)
        r2 = (xs - cx) ** 2 + (ys - cy) ** 2
        image += rng.uniform(100, 1000) * np.exp(-r2 / (2 * sigma**2))
    return image.astype(np.float32)


@pytest.mark.parametrize("kernel", ["lanczos5", "lanczos3"])
def test_separable_path_equals_the_direct_path_on_random_affine_transforms(kernel):
    """The fast path (fitted inverse, two 1-D passes) against the reference (exact inverse at
    every pixel, 2-D kernel) on random sub-pixel shifts with random linear terms up to 1e-2
    (a stamp's optical distortion is ~1e-3): image within 2e-4 of the peak, variance within
    2e-3 (of 1; squared weights along the pre-image curve vs. a square), masks and no-data
    pixels identical, and bit-identical for a pure shift."""
    rng = np.random.default_rng(12)
    for trial in range(4):
        image = _smooth_field(rng, SIZE)
        image[rng.integers(0, SIZE, 3), rng.integers(0, SIZE, 3)] = np.nan
        mask = Mask((SIZE, SIZE))
        cr = np.zeros((SIZE, SIZE), bool)
        cr[rng.integers(0, SIZE, 5), rng.integers(0, SIZE, 5)] = True
        mask.set("CR", cr)
        a = np.zeros((2, 2))
        b = np.zeros((2, 2))
        if trial:  # trial 0: a pure sub-pixel shift
            a[1, 0], a[0, 1], b[1, 0], b[0, 1] = rng.uniform(-1e-2, 1e-2, 4)
        transform = StampTransform(
            crpix=(60.0, 60.0), sip_a=a, sip_b=b, shift=tuple(rng.uniform(-3, 3, 2))
        )
        results = {
            method: warp_masked_image(
                image,
                mask,
                np.ones_like(image),
                transform=transform,
                source_xy0=(0, 0),
                dest_box=Box(-10, -10, 140, 140),  # beyond the source on every side
                kernel=kernel,
                method=method,
            )
            for method in ("separable", "direct")
        }
        fast, reference = results["separable"], results["direct"]
        assert fast.method == "separable" and reference.method == "direct"
        np.testing.assert_array_equal(fast.mask.array, reference.mask.array)
        good = np.isfinite(reference.image)
        np.testing.assert_array_equal(np.isfinite(fast.image), good)
        assert 0.5 < good.mean() < 0.9  # edges and NaN footprints are no data, most is not
        peak = np.abs(reference.image[good]).max()
        error = np.abs(fast.image[good] - reference.image[good]).max() / peak
        var_error = np.abs(fast.variance[good] - reference.variance[good]).max()
        if trial == 0:
            assert error == 0.0 and var_error == 0.0
        else:
            assert error < 2e-4, error
            assert var_error < 2e-3, var_error


def test_quarter_turns_are_written_in_place_as_rotating_afterwards():
    rng = np.random.default_rng(3)
    image = _smooth_field(rng, SIZE)
    image[5, 7] = np.nan
    kwargs = dict(
        transform=_distortion().then_shift(0.3, -0.4),
        source_xy0=(0, 0),
        dest_box=Box(-5, -5, 131, 125),  # not square: odd turns transpose the shape
    )
    plain = warp_masked_image(image, Mask(image.shape), np.ones_like(image), **kwargs)
    for turns in (1, 2, 3):
        turned = warp_masked_image(
            image, Mask(image.shape), np.ones_like(image), quarter_turns=turns, **kwargs
        )
        np.testing.assert_array_equal(turned.image, rotate_quarter_turns(plain.image, turns))
        np.testing.assert_array_equal(turned.variance, rotate_quarter_turns(plain.variance, turns))
        np.testing.assert_array_equal(
            turned.mask.array, rotate_quarter_turns(plain.mask.array, turns)
        )


def test_a_transform_the_cubics_cannot_follow_takes_the_direct_path():
    a = np.zeros((6, 6))
    a[5, 0] = 1e-7  # a fifth-order term: over 80 px far from any cubic
    transform = StampTransform(crpix=(60.0, 60.0), sip_a=a, sip_b=np.zeros((6, 6)))
    image = _smooth_field(np.random.default_rng(4), SIZE)
    kwargs = dict(transform=transform, source_xy0=(0, 0), dest_box=Box(20, 20, 80, 80))
    with pytest.raises(WarpingError, match="not smooth"):
        warp_masked_image(image, Mask(image.shape), None, method="separable", **kwargs)
    out = warp_masked_image(image, Mask(image.shape), None, **kwargs)
    assert out.method == "direct" and out.fit_residual > 1e-3
    assert np.isfinite(out.image).all()


def test_a_mask_with_all_32_planes_warps_the_same():
    """No spare bit for the no-data marker: the warp works on a 64-bit copy of the mask."""
    planes = {f"P{bit}": bit for bit in range(32)}
    planes["NO_DATA"] = planes.pop("P8")
    full = Mask((SIZE, SIZE), planes)
    few = Mask((SIZE, SIZE))
    cr = np.zeros((SIZE, SIZE), bool)
    cr[40, 50] = True
    full.array[cr] = np.uint32(1 << 31)
    few.set("CR", cr)
    image = _smooth_field(np.random.default_rng(5), SIZE)
    image[70, 70] = np.nan
    kwargs = dict(transform=StampTransform(shift=(0.5, 0.25)), source_xy0=(0, 0))
    kwargs["dest_box"] = Box(-20, -20, 160, 160)
    a = warp_masked_image(image, full, None, **kwargs)
    b = warp_masked_image(image, few, None, **kwargs)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask.array == np.uint32(1 << 31), b.mask.is_set("CR"))
    np.testing.assert_array_equal(a.mask.is_set("NO_DATA"), b.mask.is_set("NO_DATA"))


WARP_IN_A_NEW_PROCESS = """
import numpy as np
from imaging import _warp_kernels
from imaging.geometry import Box
from imaging.mask import Mask
from imaging.warping import StampTransform, warp_masked_image

image = np.ones((40, 40), np.float32)
warp_masked_image(
    image, Mask(image.shape), image.copy(), transform=StampTransform(shift=(0.5, 0.25)),
    source_xy0=(0, 0), dest_box=Box(5, 5, 20, 20), kernel="lanczos3",
)
stats = _warp_kernels.separable_warper(3, True).stats
print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
"""


def test_a_new_process_takes_the_compiled_warp_from_numbas_cache():
    """The separable warp closes over other compiled functions; numba keys its cache by a
    pickle of them, which held a per-process random identity: every process that warped
    compiled it again (~20 s of each pipetask and worker of the bright-star tasks). The two
    processes hash strings differently (seeds 1 and 2 order the set {"reassoc", "contract"}
    differently): fastmath options given as such a set made the key differ between them."""
    import os
    import subprocess
    import sys

    run = [sys.executable, "-c", WARP_IN_A_NEW_PROCESS]
    for seed in ("1", "2"):  # the first may compile and store it (a fresh clone); the second not
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run(run, capture_output=True, text=True, timeout=300, env=env)
        assert out.returncode == 0, out.stderr
    hits, misses = map(int, out.stdout.split())
    assert (hits, misses) == (1, 0), out.stdout
