"""Write a simulated observing run to disk, as a user would bring it to ``butler ingest``.

`write_simulated_observations` writes, under ``out_dir``::

    camera.yaml                                   Camera.to_yaml
    refcat.fits                                   Gaia-like reference catalog of the field
    raw/<instrument>_<visit>_<detector>.fits      Exposure layout (imaging.fits_io)
    truth/<instrument>_<visit>_<detector>_truth.fits   DetectorTruth.write_fits

Each raw file's primary header carries what ingest needs: INSTRUME, DETECTOR, DETNAME, VISIT,
BAND, FILTER, EXPTIME, DATE-OBS, MJD-OBS, BORE-RA, BORE-DEC, ROTANG, GAIN, RDNOISE, SATURATE.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..fits_io import write_exposure_fits
from ..refcat import write_reference_catalog
from .camera import Camera
from .simulate import SimOptions, Visit, simulate_detector
from .sky import SkyModel, make_reference_catalog

__all__ = ["write_simulated_observations"]


def _field_center(visits: Sequence[Visit]) -> tuple[float, float]:
    ra = np.radians([v.ra for v in visits])
    dec = np.radians([v.dec for v in visits])
    xyz = np.array([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)]).mean(axis=1)
    return (
        float(np.degrees(np.arctan2(xyz[1], xyz[0])) % 360.0),
        float(np.degrees(np.arctan2(xyz[2], np.hypot(xyz[0], xyz[1])))),
    )


def write_simulated_observations(
    out_dir: str | os.PathLike[str],
    camera: Camera,
    visits: Sequence[Visit],
    *,
    seed: int,
    refcat_radius: float | None = None,
    detectors: Sequence[int] | None = None,
    sky: SkyModel | None = None,
    options: SimOptions | None = None,
    map_fn: Callable[[Callable[[Any], Path], Iterable[Any]], Iterable[Path]] | None = None,
) -> list[Path]:
    """Simulate every detector of every visit and write raw, truth, refcat and camera files.

    Parameters
    ----------
    out_dir : `str` or `os.PathLike`
        Output directory (created).
    camera : `~imaging.sim.camera.Camera`
        The camera.
    visits : `~collections.abc.Sequence` [`~imaging.sim.simulate.Visit`]
        The pointings.
    seed : `int`
        Master seed.
    refcat_radius : `float`, optional
        Radius (deg) of the reference catalog around the mean pointing; `None` covers all
        visits plus the field of view.
    detectors : `~collections.abc.Sequence` [`int`], optional
        Detector ids to simulate; `None` means all.
    sky : `~imaging.sim.sky.SkyModel`, optional
        Sky model (also used for the refcat).
    options : `~imaging.sim.simulate.SimOptions`, optional
        Detector effects.
    map_fn : callable, optional
        ``map``-like function running the per-detector jobs (e.g. a dask client's
        ``lambda f, jobs: client.gather(client.map(f, list(jobs)))``); the builtin `map` if
        `None`. Every job is deterministic from (seed, visit, detector), so any order works.

    Returns
    -------
    paths : `list` [`pathlib.Path`]
        The raw exposure files, in (visit, detector) order.
    """
    out = Path(out_dir)
    (out / "raw").mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    sky = SkyModel() if sky is None else sky
    camera.to_yaml(out / "camera.yaml")
    center = _field_center(visits)
    if refcat_radius is None:
        fov = camera.field_radius * camera.plate_scale / 3600.0
        from ..refcat import angular_separation

        offsets = [float(angular_separation(v.ra, v.dec, *center)) for v in visits]
        refcat_radius = max(offsets) + fov * 1.1
    refcat = make_reference_catalog(center, refcat_radius, seed=seed, sky=sky)
    write_reference_catalog(refcat, out / "refcat.fits")
    ids = [d.id for d in camera.detectors] if detectors is None else list(detectors)
    jobs = [
        (out, camera, visit, det_id, seed, sky, options) for visit in visits for det_id in ids
    ]
    return list((map_fn or map)(_simulate_and_write, jobs))


def _simulate_and_write(job: tuple) -> Path:
    """Simulate one detector-visit and write its raw and truth files (one parallel task)."""
    out, camera, visit, det_id, seed, sky, options = job
    sim = simulate_detector(camera, visit, det_id, seed=seed, sky=sky, options=options)
    stem = f"{camera.name}_{visit.id:06d}_{det_id:03d}"
    raw = Path(out) / "raw" / f"{stem}.fits"
    write_exposure_fits(sim.exposure, raw)
    sim.truth.write_fits(Path(out) / "truth" / f"{stem}_truth.fits")
    return raw
