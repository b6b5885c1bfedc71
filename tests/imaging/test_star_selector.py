import numpy as np
import pytest
from _synthetic import PLANES, make_image
from astropy.table import Table

from imaging._errors import NoStarsSelectedError
from imaging.background import subtract_background
from imaging.detection import detect_sources
from imaging.measurement import measure_sources
from imaging.psf import GaussianPsf
from imaging.star_selector import ObjectSizeStarSelectorConfig, select_stars_object_size


@pytest.fixture(scope="module")
def catalog():
    s = make_image((768, 768), n_stars=80, n_galaxies=25, sigma0=1.8, flux_range=(2e4, 5e5),
                   seed=51, min_sep=30)
    img = s.image.copy()
    subtract_background(img, s.mask, planes=PLANES)
    det = detect_sources(img, s.mask, s.variance, 1.8, planes=PLANES)
    table = measure_sources(img, s.mask, s.variance, det.footprints, GaussianPsf(1.8),
                            labels=det.labels, planes=PLANES)
    d = np.hypot(np.asarray(table["base_SdssCentroid_x"])[:, None] - s.x[None],
                 np.asarray(table["base_SdssCentroid_y"])[:, None] - s.y[None])
    return s, table, d.argmin(axis=1)


def test_selects_stars_not_galaxies(catalog):
    s, table, j = catalog
    sel = select_stars_object_size(table)
    is_star = s.is_star[j]
    assert not sel[~is_star].any()
    eligible = is_star & (np.asarray(table["base_GaussianFlux_instFlux"]) >= 12500)
    eligible &= ~np.asarray(table["base_PixelFlags_flag_edge"])
    assert sel.sum() >= 0.9 * eligible.sum()
    assert (~is_star).sum() >= 15


def test_flux_cut_and_bad_flags(catalog):
    _, table, _ = catalog
    t = table.copy()
    t["base_PixelFlags_flag_crCenter"] = np.arange(len(t)) % 2 == 0
    sel = select_stars_object_size(t)
    assert not sel[::2].any() and sel.any()
    cfg = ObjectSizeStarSelectorConfig(flux_min=1e12)
    with pytest.raises(NoStarsSelectedError,
                       match="No objects passed our cuts for consideration as psf stars"):
        select_stars_object_size(table, config=cfg)


def test_clustering_on_a_literal_table():
    rng = np.random.default_rng(0)
    star_w = rng.normal(2.0, 0.02, 60)
    gal_w = rng.uniform(3.0, 6.0, 30)
    w = np.concatenate([star_w, gal_w, [9.5, 11.0]])
    t = Table({"base_GaussianFlux_instFlux": np.full(w.size, 1e5),
               "base_SdssShape_xx": w**2, "base_SdssShape_yy": w**2})
    sel = select_stars_object_size(t)
    assert sel[:60].sum() >= 57
    assert not sel[60:].any()
    with pytest.raises(RuntimeError):
        select_stars_object_size(t[:0])


def test_stars_with_a_close_neighbour_are_dropped():
    rng = np.random.default_rng(1)
    n = 60
    w = rng.normal(2.0, 0.02, n)
    x = 100.0 * np.arange(n)
    y = np.zeros(n)
    x[1], y[1] = x[0] + 9.0, 6.0  # 10.8 px apart: a blend
    x[3] = x[2] + 14.9
    t = Table({"base_GaussianFlux_instFlux": np.full(n, 1e5), "base_SdssShape_xx": w**2,
               "base_SdssShape_yy": w**2, "base_SdssCentroid_x": x, "base_SdssCentroid_y": y})
    sel = select_stars_object_size(t)
    assert not sel[:4].any() and sel[4:].sum() >= n - 8
    kept = select_stars_object_size(t, config=ObjectSizeStarSelectorConfig(isolation_radius=0))
    assert kept[:4].sum() >= 3
