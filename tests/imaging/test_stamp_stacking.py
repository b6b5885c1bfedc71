"""Stacking bright-star stamps: statistics, sub-box partial reads, the profile against truth,
and peak memory measured in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from _extended_psf_factory import annulus_mean, make_star_stamps, truth_image

from imaging._convolve import clipped_stats
from imaging.extended_psf_profile import azimuthal_profile, fit_profile
from imaging.geometry import Box
from imaging.stamp_stacking import (
    FileStampSource,
    NoStampsError,
    StackingConfig,
    StampCorrections,
    pixel_statistic,
    stack_stamps,
    take_inventory,
)
from imaging.stamps_io import (
    FitsStampsReader,
    ZarrStampsReader,
    write_stamps_fits,
    write_stamps_zarr,
)

SIZE = 75
RADII = (12, 16)
FWHM = 3.0


def test_pixel_statistics_match_their_references():
    rng = np.random.default_rng(3)
    cube = rng.normal(size=(400, 57)).astype(np.float32)
    cube[rng.random(cube.shape) < 0.1] = np.nan
    cube[rng.random(cube.shape) < 0.05] += 20  # outliers to clip
    cube[0] = np.nan  # no value
    cube[1] = 1.0  # zero width
    cube[2, :55] = np.nan  # two values
    value, count = pixel_statistic(cube, "MEANCLIP", num_sigma_clip=4, num_iter=3)
    ref = [clipped_stats(row, n_sigma=4, n_iter=3) for row in cube]
    np.testing.assert_allclose(value, [r[0] for r in ref], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(count, [r[2] for r in ref])
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        median = np.nanmedian(cube, axis=1)
        mean = np.nanmean(cube.astype(np.float64), axis=1)
    np.testing.assert_allclose(pixel_statistic(cube, "MEDIAN")[0], median, rtol=1e-6)
    np.testing.assert_allclose(pixel_statistic(cube, "MEAN")[0], mean, rtol=1e-6)
    with pytest.raises(ValueError, match="MEANSQ"):
        pixel_statistic(cube, "MEANSQ")


@pytest.fixture(scope="module")
def star_files(tmp_path_factory):
    """Six detectors' stamps (quarter turns 0-3), half FITS and half zarr."""
    root = tmp_path_factory.mktemp("stamps")
    rng = np.random.default_rng(13)
    paths = []
    for k in range(6):
        stamps = make_star_stamps(
            rng,
            25,
            size=SIZE,
            fwhm=FWHM,
            radii=RADII,
            nb90Rots=k % 4,
            unmasked_outliers=0.3,
            first_id=100 * k,
        )
        if k % 2:
            path = root / f"d{k}.zarr"
            write_stamps_zarr(stamps, str(path))
        else:
            path = root / f"d{k}.fits"
            write_stamps_fits(stamps, path)
        paths.append(str(path))
    return paths


def _truth_profile():
    truth = truth_image(SIZE, FWHM)
    return azimuthal_profile(truth / annulus_mean(truth, *RADII)).value


def test_stacked_profile_matches_the_truth(star_files):
    sources = [FileStampSource(p) for p in star_files]
    result = stack_stamps(sources, StackingConfig(subregion_size=(40, 75)))
    assert result.n_stamps == 150 and result.n_sources == 6
    profile = azimuthal_profile(result.model.image).value
    truth = _truth_profile()
    ratio = profile / truth
    inner = ratio[: RADII[1] + 1]
    outer = ratio[RADII[1] + 1 :]
    assert np.all(np.abs(inner - 1) < 0.02), inner
    assert np.all(np.abs(outer - 1) < 0.10), outer
    assert not result.model.mask.is_set("NO_DATA").any()
    # the fit follows the stack: Moffat core + power-law wing
    stacked = azimuthal_profile(result.model.image)
    fit = fit_profile(stacked)
    ratio = fit(stacked.radius) / truth
    assert np.all(np.abs(ratio[:4] - 1) < 0.2)  # the pixel-integrated core is not a Moffat
    assert np.all(np.abs(ratio[4:] - 1) < 0.05), ratio
    assert fit.rms_log < 0.05


def test_sub_boxes_are_read_alone_and_give_the_same_stack(star_files):
    reads, asked = [], []

    class Recording(FileStampSource):
        def read(self, *, bbox=None, indices=None, planes=None):
            reads.append(bbox)
            asked.append(planes)
            return super().read(bbox=bbox, indices=indices, planes=planes)

    sources = [Recording(p) for p in star_files[:2]]
    small = stack_stamps(
        sources, StackingConfig(subregion_size=(20, 20), max_cube_bytes=1 << 16), shape=(75, 75)
    )
    assert reads and all(b is not None and b.area <= 20 * 20 for b in reads)
    # no read asks for the variance: a stack does not use it
    assert all(p is not None and "variance" not in p for p in asked), set(map(tuple, asked))
    assert all(4 * 50 * b.area <= 1 << 16 for b in reads)  # the budget cut boxes into strips
    assert small.peak_cube_bytes <= 1 << 16
    whole = stack_stamps(sources, StackingConfig(subregion_size=(75, 75)))
    np.testing.assert_array_equal(small.model.image, whole.model.image)
    np.testing.assert_array_equal(small.count, whole.count)


def test_strips_stacked_in_two_threads_give_the_same_stack(star_files):
    threads = set()
    started = threading.Barrier(2, timeout=10)

    class Recording(FileStampSource):
        def read(self, *, bbox=None, indices=None, planes=None):
            if bbox is not None and bbox.area > 1 and threading.get_ident() not in threads:
                threads.add(threading.get_ident())
                started.wait()  # two strips are under way at once, each in its own thread
            return super().read(bbox=bbox, indices=indices)

    # one FITS and one zarr source, as the sub-box test: 4x quicker than all six, same strips
    sources = [Recording(p) for p in star_files[:2]]
    config = StackingConfig(subregion_size=(20, 20), max_cube_bytes=1 << 16, num_threads=2)
    threaded = stack_stamps(sources, config, shape=(75, 75))
    assert len(threads) == 2 and threading.get_ident() not in threads
    assert threaded.peak_cube_bytes <= 1 << 16  # the budget holds per cube
    serial = stack_stamps(
        [FileStampSource(p) for p in star_files[:2]],
        StackingConfig(subregion_size=(20, 20), max_cube_bytes=1 << 16),
        shape=(75, 75),
    )
    np.testing.assert_array_equal(threaded.model.image, serial.model.image)
    np.testing.assert_array_equal(threaded.count, serial.count)
    with pytest.raises(ValueError, match="num_threads"):
        StackingConfig(num_threads=0)


@pytest.mark.parametrize("statistic", ["MEANCLIP", "MEAN", "MEDIAN"])
def test_threads_give_the_serial_stack_bit_for_bit(star_files, statistic):
    # readers opened once (as the gather's), FITS and zarr, read from several threads
    sources = [
        ZarrStampsReader(p) if p.endswith(".zarr") else FitsStampsReader(p) for p in star_files
    ]
    shape = (75, 75)
    inventory = take_inventory(sources, shape, StackingConfig())
    rng = np.random.default_rng(4)
    corrections = [  # the 2026 normalization: amplitude and a pedestal per stamp
        StampCorrections(
            amplitude=rng.uniform(0.5, 2.0, inv.n_stamps),
            background=rng.normal(0, 1e-3, (inv.n_stamps, 6)),
            order=2,
        )
        for inv in inventory
    ]
    results = [
        stack_stamps(
            sources,
            StackingConfig(statistic=statistic, subregion_size=(40, 30), max_cube_bytes=1 << 18,
                           num_threads=threads),  # fmt: skip
            corrections=corrections,
            shape=shape,
            inventory=inventory,
        )
        for threads in (1, 2)
    ]
    for source in sources:
        source.close()
    serial, threaded = results
    assert threaded.model.image.tobytes() == serial.model.image.tobytes()
    assert np.array_equal(threaded.count, serial.count)
    assert threaded.peak_cube_bytes == serial.peak_cube_bytes <= 1 << 18  # one cube at a time


def test_statistics_and_magnitude_cut(star_files):
    sources = [FileStampSource(p) for p in star_files]
    mean = stack_stamps(sources, StackingConfig(statistic="MEAN", subregion_size=(75, 75)))
    clip = stack_stamps(sources, StackingConfig(subregion_size=(75, 75)))
    median = stack_stamps(sources, StackingConfig(statistic="MEDIAN", subregion_size=(75, 75)))
    truth = _truth_profile()
    err = {
        name: np.max(np.abs(azimuthal_profile(r.model.image).value / truth - 1))
        for name, r in (("MEAN", mean), ("MEANCLIP", clip), ("MEDIAN", median))
    }
    assert err["MEAN"] > 2 * err["MEANCLIP"], err  # unmasked neighbours bias the mean
    cut = stack_stamps(
        sources, StackingConfig(do_mag_cut=True, mag_limit=14.0, subregion_size=(75, 75))
    )
    n_bright = sum(
        int(np.sum(np.asarray(FileStampSource(p).read(bbox=Box(0, 0, 1, 1)).getMagnitudes())
                   < 14.0))
        for p in star_files
    )  # fmt: skip
    assert 0 < cut.n_stamps == n_bright < 150
    with pytest.raises(NoStampsError, match="mag_limit 5.0"):
        stack_stamps(sources, StackingConfig(do_mag_cut=True, mag_limit=5.0))
    with pytest.raises(ValueError, match="statistic"):
        StackingConfig(statistic="SUM")


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, sys, tracemalloc
    import numpy as np
    from imaging.exposure import Exposure
    from imaging.geometry import Box
    from imaging.mask import Mask
    from imaging.stamp_stacking import StackingConfig, pixel_statistic, stack_stamps
    from imaging.stamps import BrightStarStamp, BrightStarStamps

    SIZE, PER_SOURCE = 101, 250
    # the MEANCLIP kernel's one-time cost (importing and compiling numba) before tracing:
    # what is measured is the stacking
    pixel_statistic(np.ones((2, 3), np.float32), "MEANCLIP")

    class Synthetic:
        # A detector's stamps made on demand: only the requested box of each (as a partial
        # read returns it), a known profile times a per-stamp flux, plus noise.
        def __init__(self, seed):
            self.seed = seed

        def read(self, *, bbox=None, indices=None, planes=None):
            box = bbox or Box(0, 0, SIZE, SIZE)
            chosen = range(PER_SOURCE) if indices is None else indices
            ys, xs = np.mgrid[box.y0 : box.y1, box.x0 : box.x1]
            r2 = (xs - SIZE // 2) ** 2 + (ys - SIZE // 2) ** 2
            profile = (1 + r2 / 9.0) ** -1.5
            rng = np.random.default_rng([self.seed, box.x0, box.y0])
            stamps = []
            for i in chosen:
                image = profile * (1 + i % 7) + rng.normal(0, 0.01, box.shape)
                stamp_im = Exposure(image.astype(np.float32), mask=Mask(box.shape), xy0=box.origin)
                stamps.append(BrightStarStamp(stamp_im, gaiaGMag=12.0, gaiaId=i))
            return BrightStarStamps(stamps)

    budget = int(sys.argv[1])
    sources = [Synthetic(k) for k in range(8)]
    tracemalloc.start()
    config = StackingConfig(subregion_size=(SIZE, SIZE), max_cube_bytes=budget)
    result = stack_stamps(sources, config)
    _, peak = tracemalloc.get_traced_memory()
    print(json.dumps({"n": result.n_stamps, "peak": peak, "cube": result.peak_cube_bytes}))
    """
)


def test_two_thousand_stamps_stay_under_a_measured_cap(tmp_path):
    script = tmp_path / "measure.py"
    script.write_text(_MEMORY_SCRIPT)
    budget = 8 << 20
    out = subprocess.run(
        [sys.executable, str(script), str(budget)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    assert measured["n"] == 2000
    assert measured["cube"] <= budget
    # Every allocation traced (numpy's included): 16 MB with this budget; 650 MB with a 1 GiB
    # budget, which reads the 2,000 stamps at once (245 MB of image, mask and variance).
    assert measured["peak"] < 32 << 20, measured
