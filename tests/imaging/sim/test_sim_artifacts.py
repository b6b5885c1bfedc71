import numpy as np

from imaging.sim import add_cosmic_rays, bleed_saturation


def test_bleed_conserves_charge_along_column():
    img = np.full((200, 5), 100.0)
    img[100, 2] = 1_000_000.0
    img[101, 2] = 300_000.0
    total = img.sum()
    cols = bleed_saturation(img, 100_000.0)
    assert list(cols) == [2]
    assert img.sum() == total
    assert img.max() <= 100_000.0
    full = np.flatnonzero(img[:, 2] >= 100_000.0)
    assert full.size >= 11 and np.all(np.diff(full) == 1)
    assert np.all(img[:, [0, 1, 3, 4]] == 100.0)


def test_bleed_loses_only_what_leaves_the_detector():
    img = np.zeros((10, 1))
    img[5, 0] = 5e6
    bleed_saturation(img, 1e5)
    assert np.all(img == 1e5)


def test_cosmic_rays_deposit_tracks():
    rng = np.random.default_rng(3)
    img = np.zeros((256, 256))
    dep = add_cosmic_rays(img, rng, n_tracks=10)
    assert np.array_equal(img, dep)
    assert (dep > 100).sum() > 30
    assert dep.sum() > 10 * 8000 * 0.9  # >= 80 e-/um over a 100 um thick sensor, per track
