"""Debug pictures: binned masks keep one-pixel features, every colour has a legend entry, the
PSF picture shows the model (not the image), and the files are real PNGs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "imaging"))

from _exposure_factory import make_exposure  # noqa: E402
from astropy.table import Table  # noqa: E402

from tasks._pictures import (  # noqa: E402
    MASK_COLOURS,
    block_any,
    block_mean,
    write_debug_picture,
    write_psf_picture,
)


def test_block_any_keeps_a_one_pixel_column():
    mask = np.zeros((40, 90), bool)
    mask[:, 56] = True  # a bad column that [::3] subsampling (the old way) drops
    assert not mask[::3, ::3].any()
    binned = block_any(mask, 3)
    assert binned.shape == (14, 30) and binned[:, 18].all() and binned.sum() == 14
    assert block_mean(np.arange(16.0).reshape(4, 4), 2).tolist() == [[2.5, 4.5], [10.5, 12.5]]


def _magenta_columns(png: Path) -> np.ndarray:
    from matplotlib.image import imread

    rgb = imread(png)[..., :3]
    magenta = (rgb[..., 0] > 0.6) & (rgb[..., 1] < 0.35) & (rgb[..., 2] > 0.6)
    return np.flatnonzero(magenta.sum(axis=0) > 50)


def test_bad_column_visible_after_binning(tmp_path):
    exposure = make_exposure(shape=(900, 2800))
    exposure.mask.set("BAD", np.zeros(exposure.image.shape, bool))
    bad = np.zeros(exposure.image.shape, bool)
    bad[:, 1200] = True
    exposure.mask.set("BAD", bad)
    sources = Table({"base_SdssCentroid_x": [100.0, 700.0], "base_SdssCentroid_y": [100.0, 500.0],
                     "calib_psf_used": [True, False]})
    path = write_debug_picture(exposure, str(tmp_path / "bad.png"), sources=sources, title="t",
                               max_pixels=700)
    assert Path(path).stat().st_size > 10_000
    columns = _magenta_columns(Path(path))
    assert len(columns) >= 1  # the column is drawn (4x binning), as a thin vertical line
    assert len(columns) <= 4


def test_every_mask_colour_is_named():
    names = [text for _, text in MASK_COLOURS.values()]
    for colour_word in ("magenta", "red", "orange", "cyan"):
        assert any(colour_word in text for text in names)


def test_psf_picture_shows_the_model(tmp_path):
    from imaging.psf import GaussianPsf

    exposure = make_exposure(shape=(300, 260))
    exposure.psf = GaussianPsf(2.0)
    path = write_psf_picture(exposure, str(tmp_path / "psf.png"), title="psf")
    assert Path(path).stat().st_size > 10_000
    stars = write_debug_picture(exposure, str(tmp_path / "image.png"))
    assert Path(path).read_bytes() != Path(stars).read_bytes()
