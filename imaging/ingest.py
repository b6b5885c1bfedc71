"""Bringing a camera, raw exposures and a reference catalog into a butler repository.

- `register_instrument`: the instrument and detector records from a camera description.
- `ingest_raws`: detector images in LSST's Exposure FITS layout (or plain single-HDU
  images) become ``postISRCCD`` datasets (``GAIN`` and ``RDNOISE`` are required, as the
  reader needs them); visit records, filters and the sky region of
  every visit+detector come from the headers. A batch is all or nothing: headers are
  read and checked first, then the files are transferred and every record and dataset
  is registered in one transaction; on any failure the transferred files are removed.
  Raws that carry no SAT plane (plain single-HDU images, or a MASK HDU without ``MP_SAT``)
  but a ``SATURATE`` keyword are stored in the Exposure layout with SAT set on every pixel
  at or above ``SATURATE`` (what ISR does for LSST), so that a saturated core or bleed
  trail is never taken for a cosmic ray downstream; such raws need ``copy`` or ``move``.
- `ingest_refcat`: a reference catalog FITS table is sharded by the repository's
  HEALPix sky pixelization, one ``SimpleCatalog`` dataset per pixel, so the graph
  builder finds the shards overlapping a detector.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from butler import Butler, DatasetRef, DatasetType, DuplicateDatasetError, Region
from butler.data_coordinate import DataCoordinate

from ._errors import ExposureFormatError
from .fits_io import read_exposure_fits, write_exposure_fits
from .refcat_input import DEFAULT_REFCAT_EPOCH, read_user_reference_catalog

__all__ = [
    "CAMERA_DATASET_TYPE",
    "RAW_DATASET_TYPE",
    "RawHeaderInfo",
    "camera_run",
    "ingest_raws",
    "ingest_refcat",
    "mask_saturated_pixels",
    "read_raw_header",
    "register_instrument",
]

_LOG = logging.getLogger(__name__)

#: Dataset type of ingested detector images (the characterization task's input).
RAW_DATASET_TYPE = "postISRCCD"


#: Dataset type of the registered camera description (LSST's name), one per instrument.
CAMERA_DATASET_TYPE = "camera"


def camera_run(instrument: str) -> str:
    """RUN collection of an instrument's camera dataset (``<instrument>/calib``)."""
    return f"{instrument}/calib"


def register_instrument(butler: Butler, camera: Any) -> None:
    """Register an instrument and its detectors (idempotent; conflicts are errors).

    The camera description is also stored as the ``camera`` dataset (dimension instrument) in
    ``<instrument>/calib``: tasks read the detector geometry (orientation, focal-plane
    position) from it instead of trusting raw header keywords.

    Parameters
    ----------
    butler : `butler.Butler`
        Writeable butler.
    camera : `imaging.sim.camera.Camera`
        Camera description (e.g. from ``Camera.from_yaml``).

    Raises
    ------
    ExposureFormatError
        If a different camera description is already stored for the instrument.
    """
    _register_records(butler, camera)
    dtype = DatasetType.make(CAMERA_DATASET_TYPE, ["instrument"], "Camera", butler.universe)
    butler.registry.register_dataset_type(dtype)
    run = camera_run(camera.name)
    known = {name for name, _ in butler.registry.query_collections(run)}
    existing = (
        butler.registry.query_datasets(
            CAMERA_DATASET_TYPE, collections=[run], data_id={"instrument": camera.name}
        )
        if run in known
        else []
    )
    if existing:
        stored = butler.get(existing[0])
        if stored.to_dict() != camera.to_dict():
            raise ExposureFormatError(
                f"instrument {camera.name!r}: a different camera description is already "
                f"stored in {run}"
            )
        return
    butler.put(camera, dtype, {"instrument": camera.name}, run=run)


def _register_records(butler: Butler, camera: Any) -> None:
    registry = butler.registry
    with registry.transaction():
        registry.sync_dimension_record(
            "instrument",
            {
                "name": camera.name,
                "class_name": "imaging.sim.camera.Camera",
                "detector_max": max(d.id for d in camera.detectors) + 1,
                "visit_max": 2**31 - 1,
            },
        )
        for det in camera.detectors:
            registry.sync_dimension_record(
                "detector",
                {
                    "instrument": camera.name,
                    "id": det.id,
                    "full_name": det.name,
                    "bbox_x0": det.bbox.x0,
                    "bbox_y0": det.bbox.y0,
                    "bbox_width": det.bbox.width,
                    "bbox_height": det.bbox.height,
                    "orientation": float(det.orientation),
                    "focal_plane_x": float(det.focal_plane_position[0]),
                    "focal_plane_y": float(det.focal_plane_position[1]),
                    "pixel_size": float(det.pixel_size),
                    "pixel_scale": float(camera.pixel_scale),
                    "gain": float(det.gain),
                    "read_noise": float(det.read_noise),
                    "saturation": float(det.saturation),
                },
            )


@dataclasses.dataclass(frozen=True, slots=True)
class RawHeaderInfo:
    """What ingest needs from one raw file's headers."""

    path: str
    instrument: str
    detector: int
    visit: int
    band: str
    physical_filter: str
    exposure_time: float
    mjd: float
    boresight_ra: float
    boresight_dec: float
    rotation_angle: float
    corners: tuple[tuple[float, float], ...]
    #: ``SATURATE`` (ADU), or `None` when the header has none.
    saturation: float | None = None
    #: True for a plain single-HDU image (no IMAGE/MASK/VARIANCE HDUs).
    single_hdu: bool = False
    #: True if the file carries no SAT plane (single-HDU, or a MASK HDU without ``MP_SAT``).
    lacks_sat_plane: bool = False

    @property
    def needs_sat_plane(self) -> bool:
        """Whether ingest must write the SAT plane from ``SATURATE`` (see `ingest_raws`)."""
        return self.lacks_sat_plane and self.saturation is not None


def _card(header: fits.Header, keys: Sequence[str], kind: type, path: str) -> Any:
    for key in keys:
        if key in header:
            try:
                return kind(header[key])
            except (TypeError, ValueError):
                raise ExposureFormatError(
                    f"{path}: header keyword {key} = {header[key]!r} is not a valid {kind.__name__}"
                ) from None
    raise ExposureFormatError(f"{path}: missing header keyword {keys[0]}")


def read_raw_header(path: str | os.PathLike[str]) -> RawHeaderInfo:
    """Read and check the headers of one raw file (no pixels are read).

    Raises
    ------
    ExposureFormatError
        If a required keyword is missing or malformed; the message names the file and keyword.
    """
    path = str(path)
    try:
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
            primary = hdul[0].header
            names = [h.name for h in hdul]
            image_hdu = hdul["IMAGE"] if "IMAGE" in names else hdul[0]
            image_header = image_hdu.header
            single_hdu = "IMAGE" not in names
            lacks_sat_plane = "MASK" not in names or "MP_SAT" not in hdul["MASK"].header
            shape = (int(image_header.get("NAXIS2", 0)), int(image_header.get("NAXIS1", 0)))
    except OSError as err:
        raise ExposureFormatError(f"{path}: not a readable FITS file ({err})") from err
    if shape[0] <= 0 or shape[1] <= 0:
        raise ExposureFormatError(f"{path}: no image data (NAXIS1/NAXIS2)")
    merged = fits.Header(primary)
    merged.extend(image_header, unique=True)
    band = _card(merged, ["BAND", "FILTER"], str, path)
    saturation = _card(merged, ["SATURATE"], float, path) if "SATURATE" in merged else None
    if saturation is not None and not math.isfinite(saturation):
        saturation = None  # "no saturation level", as the reader treats a missing keyword
    # the reader needs both to build the detector (and a plain raw's variance): check them now,
    # not when a task first reads the raw
    gain = _card(merged, ["GAIN"], float, path)
    if not gain > 0:
        raise ExposureFormatError(f"{path}: header keyword GAIN = {gain} must be positive (e-/ADU)")
    _card(merged, ["RDNOISE"], float, path)
    try:
        wcs = WCS(image_header)
    except Exception as err:
        raise ExposureFormatError(f"{path}: invalid WCS in the image header ({err})") from err
    if not wcs.has_celestial:
        raise ExposureFormatError(f"{path}: missing header keyword CTYPE1 (no celestial WCS)")
    height, width = shape
    xs = np.array([-0.5, width - 0.5, width - 0.5, -0.5])
    ys = np.array([-0.5, -0.5, height - 0.5, height - 0.5])
    ra, dec = wcs.all_pix2world(xs, ys, 0)
    return RawHeaderInfo(
        path=path,
        instrument=_card(merged, ["INSTRUME"], str, path),
        detector=_card(merged, ["DETECTOR", "CCDNUM"], int, path),
        visit=_card(merged, ["VISIT", "EXPID"], int, path),
        band=band,
        physical_filter=str(merged.get("FILTER", band)),
        exposure_time=_card(merged, ["EXPTIME"], float, path),
        mjd=_card(merged, ["MJD-OBS", "MJD"], float, path),
        boresight_ra=_card(merged, ["BORE-RA", "RA"], float, path),
        boresight_dec=_card(merged, ["BORE-DEC", "DEC"], float, path),
        rotation_angle=float(merged.get("ROTANG", 0.0)),
        corners=tuple((float(r), float(d)) for r, d in zip(ra, dec, strict=True)),
        saturation=saturation,
        single_hdu=single_hdu,
        lacks_sat_plane=lacks_sat_plane,
    )


def mask_saturated_pixels(exposure: Any, level: float) -> int:
    """Set the SAT plane on every pixel of ``exposure`` at or above ``level``; return the count.

    The plane is added to the mask if it has none. Pixels already SAT stay SAT.
    """
    saturated = np.asarray(exposure.image) >= np.float32(level)
    if "SAT" not in exposure.mask.planes:
        exposure.mask.add_plane("SAT")
    exposure.mask.set("SAT", saturated)
    return int(np.count_nonzero(saturated))


def _stage_with_sat_plane(info: RawHeaderInfo, folder: str) -> str:
    """Write ``info.path`` in the Exposure layout with SAT from ``SATURATE``; return the copy."""
    exposure = read_exposure_fits(info.path)
    n = mask_saturated_pixels(exposure, float(info.saturation))  # type: ignore[arg-type]
    staged = os.path.join(folder, f"{len(os.listdir(folder))}_{Path(info.path).name}")
    write_exposure_fits(exposure, staged)
    _LOG.info("%s: %d pixel(s) at or above SATURATE=%g set SAT", info.path, n, info.saturation)
    return staged


_VISIT_FIELDS = (
    "band",
    "physical_filter",
    "exposure_time",
    "mjd",
    "boresight_ra",
    "boresight_dec",
    "rotation_angle",
)


def _visit_hull(infos: Sequence[RawHeaderInfo]) -> Region:
    """Convex hull of every detector corner of a visit, as a sky polygon."""
    from scipy.spatial import ConvexHull

    ra0, dec0 = np.radians(infos[0].boresight_ra), np.radians(infos[0].boresight_dec)
    points = np.radians(np.array([c for info in infos for c in info.corners]))
    ra, dec = points[:, 0], points[:, 1]
    cos_c = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    x = np.cos(dec) * np.sin(ra - ra0) / cos_c
    y = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / cos_c
    hull = ConvexHull(np.column_stack([x, y]))
    vertices = np.degrees(points[hull.vertices])
    return Region.polygon(vertices)


def ingest_raws(
    butler: Butler,
    paths: Iterable[str | os.PathLike[str]],
    *,
    run: str | None = None,
    transfer: str | None = "copy",
    check_stop: Callable[[], None] | None = None,
) -> list[DatasetRef]:
    """Ingest raw detector images as ``postISRCCD`` datasets, all or nothing.

    Parameters
    ----------
    butler : `butler.Butler`
        Writeable butler.
    paths : iterable of path-like
        FITS files in the Exposure layout (or plain single-HDU images with the keywords).
    run : `str`, optional
        RUN collection; default ``<instrument>/raw/all``.
    transfer : `str` or `None`
        ``copy``, ``move``, ``symlink``, ``hardlink``, ``direct`` or `None`.
    check_stop : callable, optional
        Called between headers, between visits and between files
        (`~butler.interrupts.StopRequest.check`); what it raises undoes the batch (its
        transaction is rolled back, the files it transferred are removed).

    Returns
    -------
    refs : `list` [`DatasetRef`]
        The datasets ingested now. A raw already stored with the same bytes is skipped (not
        transferred, its file left where it is) and not returned.

    Raises
    ------
    ExposureFormatError
        A header is missing or inconsistent (names the file and keyword), or a raw needs its
        SAT plane written (see below) with a transfer that keeps the original file; nothing is
        ingested.
    butler.DuplicateDatasetError
        A raw's dataset is already stored with other bytes; nothing is ingested and the
        repository's files and records are left as they were.

    Notes
    -----
    A raw without a SAT plane (plain single-HDU image, or a MASK HDU without ``MP_SAT``) whose
    header has ``SATURATE`` is stored in the Exposure layout with SAT set where the image is at
    or above ``SATURATE``. That rewrites the file, so it needs ``transfer`` ``copy`` or
    ``move``; with ``move`` the original is removed once the batch is registered.
    """
    check = check_stop or _carry_on
    infos = []
    for path in paths:
        check()
        infos.append(read_raw_header(path))
    if not infos:
        return []
    for info in infos:
        if info.needs_sat_plane and transfer not in ("copy", "move"):
            kind = "single-HDU raw" if info.single_hdu else "raw whose MASK has no SAT plane"
            raise ExposureFormatError(
                f"{info.path}: {kind} with SATURATE needs its SAT plane written on ingest, "
                f"which transfer={transfer!r} cannot do; use transfer copy or move"
            )
    registry = butler.registry
    universe = butler.universe
    seen: dict[tuple[str, int, int], str] = {}
    for info in infos:
        key = (info.instrument, info.visit, info.detector)
        if key in seen:
            raise ExposureFormatError(
                f"{info.path}: same instrument/visit/detector {key} as {seen[key]} in this batch"
            )
        seen[key] = info.path
    instruments = {i.instrument for i in infos}
    for name in instruments:
        if not registry.query_dimension_records("instrument", data_id={"instrument": name}):
            raise ExposureFormatError(
                f"{next(i.path for i in infos if i.instrument == name)}: INSTRUME {name!r} is not "
                "registered; run 'butler register-instrument' first"
            )
    known_detectors = {
        (r["instrument"], r["id"]) for r in registry.query_dimension_records("detector")
    }
    for info in infos:
        if (info.instrument, info.detector) not in known_detectors:
            raise ExposureFormatError(
                f"{info.path}: DETECTOR {info.detector} is not a detector of instrument "
                f"{info.instrument!r}"
            )
    visits: dict[tuple[str, int], list[RawHeaderInfo]] = {}
    for info in infos:
        visits.setdefault((info.instrument, info.visit), []).append(info)
    for (_, visit), members in visits.items():
        first = members[0]
        for other in members[1:]:
            for field in _VISIT_FIELDS:
                a, b = getattr(first, field), getattr(other, field)
                if a != b and not (isinstance(a, float) and abs(a - b) < 1e-9):
                    raise ExposureFormatError(
                        f"{other.path}: visit {visit} {field} = {b!r} disagrees with {a!r} "
                        f"in {first.path}"
                    )
    run = run or f"{infos[0].instrument}/raw/all"
    dtype = DatasetType.make(
        RAW_DATASET_TYPE, ["instrument", "visit", "detector"], "Exposure", universe
    )
    with tempfile.TemporaryDirectory(prefix="ingest_raws_") as staging:
        items = [
            (
                DatasetRef.make(
                    dtype,
                    {"instrument": i.instrument, "visit": i.visit, "detector": i.detector},
                    run,
                ),
                _stage_with_sat_plane(i, staging) if i.needs_sat_plane else i.path,
            )
            for i in infos
        ]
        refs = _register_raws(butler, dtype, visits, items, transfer, check)
    if transfer == "move":  # the rewritten files were moved; their originals go now
        ingested = {ref.id for ref in refs}
        for info, (ref, _) in zip(infos, items, strict=True):
            if info.needs_sat_plane and ref.id in ingested and os.path.exists(info.path):
                os.remove(info.path)
    if len(refs) < len(items):
        _LOG.info("%d raw file(s) were already ingested into %s", len(items) - len(refs), run)
    _LOG.info("ingested %d raw file(s) into %s", len(refs), run)
    return refs


def _register_raws(
    butler: Butler,
    dtype: DatasetType,
    visits: dict[tuple[str, int], list[RawHeaderInfo]],
    items: list[tuple[DatasetRef, str]],
    transfer: str | None,
    check_stop: Callable[[], None],
) -> list[DatasetRef]:
    """Sync the visit records and regions and ingest ``items``, in one transaction.

    ``check_stop`` is called between visits and between files: what it raises rolls the
    transaction back (between two statements, never inside one).
    """
    registry = butler.registry
    with registry.transaction():
        registry.register_dataset_type(dtype)
        for (instrument, visit), members in visits.items():
            check_stop()
            first = members[0]
            registry.sync_dimension_record("band", {"name": first.band})
            registry.sync_dimension_record(
                "physical_filter",
                {"instrument": instrument, "name": first.physical_filter, "band": first.band},
            )
            registry.sync_dimension_record(
                "visit",
                {
                    "instrument": instrument,
                    "id": visit,
                    "physical_filter": first.physical_filter,
                    "exposure_time": first.exposure_time,
                    "mjd": first.mjd,
                    "boresight_ra": first.boresight_ra,
                    "boresight_dec": first.boresight_dec,
                    "rotation_angle": first.rotation_angle,
                    "band": first.band,
                },
            )
            for info in members:
                key = {"instrument": instrument, "visit": visit, "detector": info.detector}
                registry.sync_dimension_record("visit_detector_region", key)
                registry.set_region("visit_detector_region", key, Region.polygon(info.corners))
            existing = registry.get_region("visit", {"instrument": instrument, "visit": visit})
            if existing is None or len(members) > 1:
                registry.set_region(
                    "visit", {"instrument": instrument, "visit": visit}, _visit_hull(members)
                )
        return butler.ingest(items, transfer=transfer, check_stop=check_stop)


def _carry_on() -> None:
    """Go on (the ``check_stop`` of a caller that gave none)."""


def ingest_refcat(
    butler: Butler,
    name: str,
    path: str | os.PathLike[str],
    *,
    run: str = "refcats",
    epoch: float = DEFAULT_REFCAT_EPOCH,
) -> list[DatasetRef]:
    """Shard a reference catalog by HEALPix pixel and store one dataset per shard.

    Parameters
    ----------
    butler : `butler.Butler`
        Writeable butler.
    name : `str`
        Dataset type name of the shards (e.g. ``gaia_dr2_20200414``).
    path : path-like
        Table (FITS, CSV, ECSV...) with at least ``id``, ``ra``, ``dec`` and a magnitude or
        flux column; the other `~imaging.refcat.REFCAT_SCHEMA` columns are filled with the
        defaults of `~imaging.refcat_input.complete_reference_catalog`.
    run : `str`
        RUN collection of the shards.
    epoch : `float`
        Julian epoch of the positions, used when the table has no ``epoch`` column.

    Returns
    -------
    refs : `list` [`DatasetRef`]
        One per non-empty shard stored now; a shard already stored with the same rows is
        skipped (and one with other rows is a `butler.DuplicateDatasetError`).
    """
    import astropy.units as u
    from astropy_healpix import HEALPix

    table = read_user_reference_catalog(path, epoch=epoch)
    universe = butler.universe
    skypix = universe.skypix
    hp = HEALPix(nside=skypix.nside, order="nested")
    pixels = hp.lonlat_to_healpix(np.asarray(table["ra"]) * u.deg, np.asarray(table["dec"]) * u.deg)
    dtype = DatasetType.make(name, [skypix.name], "SimpleCatalog", universe)
    refs = []
    with butler.registry.transaction():
        butler.registry.register_dataset_type(dtype)
        for pixel in np.unique(pixels):
            shard = Table(table[pixels == pixel], copy=True)
            data_id = DataCoordinate.standardize({skypix.name: int(pixel)}, dtype.dimensions)
            ref = DatasetRef.make(dtype, data_id, run)
            if butler.registry.get_stored_info([ref]):
                if not _same_table(butler.get(ref), shard):
                    raise DuplicateDatasetError(
                        f"{path}: run {run!r} already has {name} shard {data_id} with other "
                        "rows; nothing was ingested (remove the run first, or use another run)"
                    )
                continue  # the same shard is already there
            refs.append(butler.put(shard, ref))
    _LOG.info("ingested %d stars of %s into %d shards", len(table), Path(path).name, len(refs))
    return refs


def _same_table(a: Table, b: Table) -> bool:
    """Whether two tables have the same columns and values."""
    return a.colnames == b.colnames and all(
        np.array_equal(np.asarray(a[c]), np.asarray(b[c])) for c in a.colnames
    )
