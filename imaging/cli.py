"""``butler`` subcommands for astronomy: instrument, raws, refcat, simulation, stamp mosaics.

The commands are register-instrument, ingest-raws, ingest-refcat, simulate and stamp-mosaic.

They reach the ``butler`` command through the ``skyquanta.butler_commands``
entry points, so the butler package itself knows no astronomy.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import click

from butler.cli import butler_errors
from butler.interrupts import StopRequest, catch_signals, stops_between_steps

# The butler, astropy and numpy are imported inside the commands: ``butler --help`` lists these
# plug-in commands, and should not pay for them.

__all__ = [
    "ingest_raws_command",
    "ingest_refcat_command",
    "register_instrument_command",
    "simulate_command",
    "simulated_visits",
    "stamp_mosaic_command",
]

#: Default name of the simulated reference catalog dataset type (LSST's Gaia DR2 refcat name).
DEFAULT_REFCAT = "gaia_dr2_20200414"


@click.command("register-instrument")
@click.argument("repo")
@click.argument("camera_yaml", type=click.Path(exists=True, dir_okay=False))
@butler_errors
@stops_between_steps
def register_instrument_command(repo: str, camera_yaml: str) -> None:
    """Register the instrument and detectors described in CAMERA_YAML."""
    from butler import Butler

    from .ingest import register_instrument
    from .sim.camera import Camera

    camera = Camera.from_yaml(camera_yaml)
    register_instrument(Butler(repo), camera)
    click.echo(f"Registered instrument {camera.name} with {len(camera.detectors)} detectors")


@click.command("ingest-raws")
@click.argument("repo")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--transfer",
    type=click.Choice(["copy", "move", "symlink", "hardlink", "direct"]),
    default="copy",
    show_default=True,
)
@click.option("--output-run", default=None, help="RUN collection (default <instrument>/raw/all).")
@butler_errors
@stops_between_steps
def ingest_raws_command(
    repo: str, files: tuple[str, ...], transfer: str, output_run: str | None, stop: StopRequest
) -> None:
    """Ingest raw detector images (FILES or folders of *.fits) as postISRCCD datasets.

    All or nothing: Ctrl-C or SIGTERM stops it between two files (exit code 130/143) with
    nothing ingested, never in the middle of a registry write.
    """
    from butler import Butler

    from .ingest import ingest_raws

    paths: list[str] = []
    for item in files:
        path = Path(item)
        paths.extend(sorted(str(p) for p in path.glob("*.fits")) if path.is_dir() else [str(path)])
    refs = ingest_raws(
        Butler(repo), paths, run=output_run, transfer=transfer, check_stop=stop.check
    )
    run = refs[0].run if refs else output_run or "<instrument>/raw/all"
    click.echo(f"Ingested {len(refs)} raw exposure(s) into {run}")
    if len(refs) < len(paths):
        left = " (their files were left where they are)" if transfer == "move" else ""
        click.echo(
            f"{len(paths) - len(refs)} raw exposure(s) already ingested with the same "
            f"bytes: skipped{left}"
        )


@click.command("ingest-refcat")
@click.argument("repo")
@click.argument("name")
@click.argument("catalog", type=click.Path(exists=True, dir_okay=False))
@click.option("--output-run", default="refcats", show_default=True)
@click.option(
    "--epoch",
    type=float,
    default=None,
    help="Julian epoch of the positions, for a table without an 'epoch' column "
    "[default: 2016.0, imaging.refcat_input.DEFAULT_REFCAT_EPOCH].",
)
@butler_errors
@stops_between_steps
def ingest_refcat_command(
    repo: str, name: str, catalog: str, output_run: str, epoch: float | None
) -> None:
    """Shard reference catalog CATALOG by sky pixel into dataset type NAME.

    \b
    CATALOG is a table (FITS, CSV, ECSV) with at least these columns (any case):
      id                  int      unique source identifier
      ra, dec             float    deg, ICRS, at the epoch
      a brightness        float    phot_g_mean_mag or mag (mag), or flux (nJy, AB)
    Optional columns, with the value they get when missing:
      phot_g_mean_mag_err mag      from mag_err or flux_err, else NaN (unknown)
      ra_err, dec_err     mas      NaN (unknown)
      pm_ra, pm_dec       mas/yr   0 (no proper motion)
      pm_ra_err, pm_dec_err mas/yr NaN (unknown)
      epoch               yr       --epoch
    Other columns are kept.
    """  # noqa: D301 (click's \b keeps the table's lines)
    from butler import Butler

    from .ingest import ingest_refcat
    from .refcat_input import DEFAULT_REFCAT_EPOCH

    epoch = DEFAULT_REFCAT_EPOCH if epoch is None else epoch
    refs = ingest_refcat(Butler(repo), name, catalog, run=output_run, epoch=epoch)
    click.echo(f"Ingested reference catalog {name} as {len(refs)} shard(s) into {output_run}")


@click.command("simulate")
@click.argument("repo")
@click.option(
    "--detectors",
    "n_detectors",
    type=int,
    default=9,
    show_default=True,
    help="Detectors (3x3 grid).",
)
@click.option(
    "--size",
    "detector_size",
    type=int,
    default=1024,
    show_default=True,
    help="Detector size (pixels).",
)
@click.option(
    "--visits", "n_visits", type=int, default=2, show_default=True, help="Number of visits."
)
@click.option("--band", default="r", show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--ra",
    type=float,
    default=150.0,
    show_default=True,
    help="Boresight RA of the first visit (deg).",
)
@click.option("--dec", type=float, default=2.0, show_default=True, help="Boresight Dec (deg).")
@click.option(
    "-j",
    "--jobs",
    type=int,
    default=2,
    show_default=True,
    help="Detectors simulated in parallel (a local dask cluster of this many processes).",
)
@click.option(
    "--star-density",
    type=float,
    default=20000.0,
    show_default=True,
    help="Stars per square degree (rich by default, so small detectors get PSF stars).",
)
@click.option(
    "--bright-star-density",
    type=float,
    default=0.0,
    show_default=True,
    help="Extra stars of G 13-17.5 per square degree (bright-star stamps on small detectors).",
)
@click.option(
    "--extended-halos",
    is_flag=True,
    help="Give every star the same extended profile (core plus wide halo), not only the "
    "saturating ones.",
)
@click.option(
    "--png",
    "png_path",
    default=None,
    help="Write a picture of the first detector with its truth here.",
)
@click.option(
    "--keep-inputs",
    default=None,
    help="Keep the simulated input files in this folder: camera.yaml, raw/*.fits, refcat.fits "
    "(what register-instrument, ingest-raws and ingest-refcat read) and truth/.",
)
@butler_errors
def simulate_command(
    repo: str,
    n_detectors: int,
    detector_size: int,
    n_visits: int,
    band: str,
    seed: int,
    ra: float,
    dec: float,
    star_density: float,
    jobs: int,
    bright_star_density: float,
    extended_halos: bool,
    png_path: str | None,
    keep_inputs: str | None,
) -> None:
    """Simulate a camera's observations with truth and ingest them into REPO (created if needed)."""
    from butler import Butler

    from .ingest import ingest_raws, ingest_refcat, register_instrument
    from .sim import (
        SkyModel,
        make_camera,
        render_detector_png,
        simulate_detector,
    )
    from .sim.camera import Camera
    from .sim.simulate import SimOptions

    if not (Path(repo) / "butler.yaml").exists():
        Butler.create(repo)
    butler = Butler(repo)
    camera = make_camera(n_detectors, detector_size=detector_size)
    visits = simulated_visits(camera, n_visits, band=band, ra=ra, dec=dec)
    staging = Path(keep_inputs) if keep_inputs else Path(tempfile.mkdtemp(prefix="sim-", dir=repo))
    try:
        sky = SkyModel(star_density=star_density, bright_star_density=bright_star_density)
        options = SimOptions(halo_threshold=0.0) if extended_halos else None
        raws = _simulate_in_parallel(
            staging, camera, visits, seed=seed, sky=sky, jobs=jobs, options=options
        )
        # The simulation only wrote to the staging folder: Ctrl-C stops it anywhere. From
        # here on a stop signal is acted on between steps, never inside a registry write.
        with catch_signals() as stop:
            register_instrument(butler, Camera.from_yaml(staging / "camera.yaml"))
            stop.check()
            refs = ingest_raws(butler, raws, transfer="copy", check_stop=stop.check)
            shards = ingest_refcat(butler, DEFAULT_REFCAT, staging / "refcat.fits")
            stop.check()
        truth_dir = Path(repo) / "sim_truth"
        truth_dir.mkdir(exist_ok=True)
        for item in (staging / "truth").glob("*.fits"):
            shutil.copy2(item, truth_dir / item.name)
        shutil.copy2(staging / "camera.yaml", truth_dir / "camera.yaml")
    finally:
        if not keep_inputs:
            shutil.rmtree(staging, ignore_errors=True)
    if not refs and not shards:
        click.echo(
            f"Simulated {len(raws)} exposures and found them already ingested with the same "
            f"bytes, with reference catalog {DEFAULT_REFCAT}: nothing to add to {repo}"
        )
    else:
        click.echo(
            f"Simulated and ingested {len(refs)} exposures ({n_visits} visits x {n_detectors} "
            f"detectors of {detector_size}^2 px; {len(raws) - len(refs)} already there) into "
            f"{camera.name}/raw/all; reference catalog {DEFAULT_REFCAT} in {len(shards)} new "
            f"shards; truth in {truth_dir}"
        )
    if png_path:
        sim = simulate_detector(
            camera, visits[0], camera.detectors[0].id, seed=seed, sky=sky, options=options
        )
        Path(png_path).parent.mkdir(parents=True, exist_ok=True)
        render_detector_png(sim, png_path)
        click.echo(f"Wrote {png_path}")


def simulated_visits(
    camera: Any, n_visits: int, *, band: str = "r", ra: float = 150.0, dec: float = 2.0
) -> list[Any]:
    """Return the pointings ``butler simulate`` observes: visits 100, 101, ... stepped in RA.

    Each visit is 30 s, shifted by 0.3 field radii in RA from the previous one.
    """
    from .sim import Visit

    field = camera.field_radius * camera.plate_scale / 3600.0
    return [
        Visit(
            id=100 + i,
            band=band,
            ra=ra + 0.3 * field * i,
            dec=dec,
            exposure_time=30.0,
            mjd=60000.0 + 0.01 * i,
        )
        for i in range(n_visits)
    ]


def _simulate_in_parallel(
    out: Path, camera, visits, *, seed: int, sky, jobs: int, options=None
) -> list[Path]:
    """Write the simulated observations, one dask task per detector-visit when ``jobs > 1``."""
    from .sim import write_simulated_observations

    if jobs <= 1:
        return write_simulated_observations(
            out, camera, visits, seed=seed, sky=sky, options=options
        )
    import logging

    from distributed import Client

    from cluster import local_cluster

    logging.getLogger("distributed").setLevel(logging.WARNING)
    with (
        local_cluster(
            n_workers=jobs,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        return write_simulated_observations(
            out,
            camera,
            visits,
            seed=seed,
            sky=sky,
            options=options,
            map_fn=lambda fn, items: client.gather(client.map(fn, list(items), pure=False)),
        )


@click.command("stamp-mosaic")
@click.argument("repo")
@click.argument("output_png")
@click.option("--collections", required=True, help="Collections to search (comma-separated).")
@click.option("--visit", type=int, required=True)
@click.option("--detector", type=int, required=True)
@click.option("--instrument", default=None, help="Instrument (default: the only one).")
@click.option("--dataset-type", default="brightStarStamps", show_default=True)
@butler_errors
def stamp_mosaic_command(
    repo: str,
    output_png: str,
    collections: str,
    visit: int,
    detector: int,
    instrument: str | None,
    dataset_type: str,
) -> None:
    """Write a mosaic PNG of one detector's bright-star stamps to OUTPUT_PNG."""
    from butler import Butler

    from .stamp_mosaic import write_stamp_mosaic

    butler = Butler(repo)
    if instrument is None:
        names = [r["name"] for r in butler.registry.query_dimension_records("instrument")]
        if len(names) != 1:
            raise click.UsageError(f"--instrument is needed: the repository has {names}")
        instrument = names[0]
    data_id = {"instrument": instrument, "visit": visit, "detector": detector}
    refs = butler.registry.query_datasets(
        dataset_type, collections=collections.split(","), data_id=data_id
    )
    if not refs:
        raise LookupError(
            f"no {dataset_type} for {data_id} in {collections} (no star brighter than "
            "magLimit on that detector, or not processed)"
        )
    stamps = butler.get(refs[0])
    path = write_stamp_mosaic(
        stamps, output_png, title=f"{instrument} visit {visit} detector {detector}"
    )
    click.echo(f"Wrote {path} ({len(stamps)} stamps)")
