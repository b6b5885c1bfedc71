import numpy as np
import pytest

from imaging.sim import PsfField, SimOptions, SkyModel, Visit, make_camera, simulate_detector

SEED = 11


@pytest.fixture(scope="session")
def camera():
    # Two 512² detectors, rotated 0 and 90 deg; a constant sky-frame PSF ellipticity so that
    # only the detector rotation changes the PSF orientation in pixels.
    return make_camera(
        2,
        detector_size=512,
        orientations=(0, 90),
        psf=PsfField(e1=0.12, e2=0.05, e_radial=0.0, fwhm_gradient=0.0),
    )


@pytest.fixture(scope="session")
def sky():
    return SkyModel(star_density=150_000, star_mag_range=(12.5, 21.0), galaxy_density=20_000)


@pytest.fixture(scope="session")
def options():
    return SimOptions(cr_rate=3.0, n_bad_columns=2)


@pytest.fixture(scope="session")
def visit():
    return Visit(7, "r", 150.0, 2.0, rotation_angle=20.0, seeing=0.8)


@pytest.fixture(scope="session")
def sims(camera, sky, options, visit):
    return {
        det.id: simulate_detector(camera, visit, det.id, seed=SEED, sky=sky, options=options)
        for det in camera.detectors
    }


def adaptive_sigma(stamp, max_iter=100):
    """SDSS-style adaptive moments: the weight converges to twice the weighted moments."""
    ny, nx = stamp.shape
    y, x = np.mgrid[0:ny, 0:nx].astype(float)
    cx, cy = (nx - 1) / 2, (ny - 1) / 2
    m = np.array([[4.0, 0.0], [0.0, 4.0]])
    for _ in range(max_iter):
        inv = np.linalg.inv(m)
        dx, dy = x - cx, y - cy
        w = np.exp(-0.5 * (inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy))
        f = (w * stamp).sum()
        cx += (w * stamp * dx).sum() / f
        cy += (w * stamp * dy).sum() / f
        dx, dy = x - cx, y - cy
        new = 2 * np.array(
            [
                [(w * stamp * dx * dx).sum() / f, (w * stamp * dx * dy).sum() / f],
                [(w * stamp * dx * dy).sum() / f, (w * stamp * dy * dy).sum() / f],
            ]
        )
        if np.abs(new - m).max() < 1e-7:
            m = new
            break
        m = new
    ixx, iyy, ixy = m[0, 0], m[1, 1], m[0, 1]
    return (ixx * iyy - ixy**2) ** 0.25, (ixx - iyy) / (ixx + iyy), 2 * ixy / (ixx + iyy)


def clean_stars(sim, *, half=12):
    """Isolated, unsaturated, high-S/N stars with clean stamps: (row, stamp) pairs."""
    exp, truth = sim.exposure, sim.truth
    src = truth.sources
    ny, nx = exp.image.shape
    bad = exp.mask.is_set(["BAD", "SAT"]) | truth.cr_mask
    noise = np.sqrt(np.median(truth.background) / exp.detector.gain)
    out = []
    for row in src:
        if row["is_galaxy"] or row["is_saturated"] or row["is_bright"]:
            continue
        if not 30 * noise < row["peak"] < 0.3 * exp.detector.saturation:
            continue
        x, y = row["x"], row["y"]
        others = src[(src["id"] != row["id"])]
        dist = np.hypot(others["x"] - x, others["y"] - y)
        limit = np.where(others["is_bright"], 120, 2 * half)
        if np.any(dist < limit):
            continue
        ix, iy = int(round(x)), int(round(y))
        if not (half <= ix < nx - half and half <= iy < ny - half):
            continue
        sl = (slice(iy - half, iy + half + 1), slice(ix - half, ix + half + 1))
        if bad[sl].any():
            continue
        out.append((row, exp.image[sl].astype(float) - truth.background[sl]))
    return out
