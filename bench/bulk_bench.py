"""Bulk benchmark: the whole default pipeline over a simulated focal plane, on ``-j 2``.

Run with ``python -m bench bulk``. Steps:

1. **Simulation, made once.** `simulate_focal_plane` simulates what ``butler simulate`` with
   the demo's options would (every star with the extended core + halo profile, extra bright
   stars for the stamps): ``DETECTORS × VISITS`` exposures of ``SIZE²`` px into a repository
   in the cache folder, under a name made of the sizes, 16 detectors at a time, each batch's
   raw files moved into the datastore and the simulator's truth images (unused here) removed.
   It is made in a ``*.partial-<pid>`` folder and renamed when complete, so a later run reuses
   only a finished simulation. The repository stores the run's exposures and stamps as zarr
   (`OUTPUT_FORMATTERS`, lossless compression); the raws are FITS (MASK RICE-compressed).
2. **The run.** ``pipetask run -p pipelines.yaml`` (characterizeImage → processBrightStars →
   measureExtendedPsf → subtractBrightStars) on ``JOBS`` single-thread local workers (the
   process pool, or a local dask cluster; BLAS/OpenMP pools limited to one thread), into a
   new output run. The wall time is the whole command as a user waits for it (start-up,
   graph build, execution, registration).
3. **Accounting.** Every quantum's own CPU time is read from its ``<label>_metadata``
   (``quantum.cpu_time``: the worker's process CPU from before the task is built to after its
   outputs are written). Framework share = (wall × workers − Σ quantum CPU) / (wall ×
   workers), for the whole command and for the execution window alone (first quantum start to
   last quantum end). Detectors per minute per core = detector-visits / wall minutes / workers.
   A quantum's CPU is its worker process's CPU during the quantum (``time.process_time``):
   the task's own threads (the gather stacks in two) and zarr's I/O thread, which are the
   quantum's, and the worker's own threads, which are not. The process pool (``-j 2``, the
   default) runs none; a local dask cluster (``BENCH_BULK_EXECUTOR=dask``) runs its event loop
   and heartbeats: 0.43% of a core during an idle 20 s task on a ``-j 2``
   local cluster (measured 2026-12-07, profiler off), so there the share is understated by
   ~0.4 points.
   Two companions less sensitive to a shared machine: the framework's share of the CPU the
   whole command tree used (``RUSAGE_CHILDREN`` around the command: pipetask, the dask
   scheduler and workers) and the workers' wall time spent outside any quantum (from the
   quanta's own wall times; a gather that leaves a worker idle counts there). Inside the
   quanta, what is not their CPU is split (Linux, `pipeline.execution.process_usage`) into
   waiting for a core (the quantum's thread in a run queue: the client, the kernel's
   writeback, anything else running) and blocked (reading from the disk, a held-back write,
   a lock), with the bytes the quanta read from and wrote to storage.
4. The output run and its chain are removed afterwards (``BENCH_BULK_KEEP=1`` keeps it).

Disk at the full size (189 × 2 × 2048², measured 2026-12-07): raws 33.7 MB per
detector-visit (12.7 GB, simulated in 32 min at load 7-12; the simulation also needs one
batch of ~2 GB while it runs); outputs 64.4 MB per detector-visit (24.4 GB per run; the
table gives them by dataset type). All FITS, as before, took ~208 MB per detector-visit
(78 GB) and the simulation twice the raws while it ran. Set the size with the environment:

``BENCH_BULK_DETECTORS`` (189), ``BENCH_BULK_VISITS`` (2), ``BENCH_BULK_SIZE`` (2048),
``BENCH_BULK_JOBS`` (2), ``BENCH_BULK_CACHE`` (``~/.cache/skyquanta-bench``),
``BENCH_BULK_KEEP`` (0), ``BENCH_BULK_EXECUTOR`` (``auto``: ``pipetask run --executor``;
``auto`` runs ``-j 2`` on the process pool, ``dask`` on a local dask cluster). The machine's
load (``os.getloadavg``) is printed with the result: on a shared machine the framework share is
not meaningful (waiting for a core counts as framework time).
"""

from __future__ import annotations

import datetime
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._table import print_table

__all__ = ["BulkSize", "account", "cached_simulation", "main", "run_pipeline"]

#: The default pipeline (the repository's pipelines.yaml).
PIPELINE = Path(__file__).resolve().parent.parent / "pipelines.yaml"
INSTRUMENT = "SimCam"
INPUTS = f"{INSTRUMENT}/raw/all,{INSTRUMENT}/calib,refcats"
#: Options of ``butler simulate`` the simulation matches (the demo's: extended halos, bright
#: stars for the stamps); `simulate_focal_plane` passes them to the simulator.
SIMULATE_OPTIONS = ("--extended-halos", "--bright-star-density", "300")
STAR_DENSITY = 20000.0  # butler simulate's default
BRIGHT_STAR_DENSITY = 300.0
SEED = 1  # butler simulate's default
#: Detectors simulated (and their raws ingested) per batch.
BATCH_DETECTORS = 16
#: How the run's outputs are stored: set in the repository's configuration (``datastore:
#: formatters``, by storage class), as any repository may. Exposures and stamps go to zarr
#: (lossless compression, `imaging.zarr_io`): 2048² exposure 26.7 MB against 50.4 MB of FITS,
#: the model image that was removed (mostly zeros) 4.3 MB. Raws stay FITS (ingested files).
OUTPUT_FORMATTERS = {
    "ExposureF": "imaging.formatters.ExposureZarrFormatter",
    "BrightStarStamps": "imaging.formatters.BrightStarStampsZarrFormatter",
}
_ONE_THREAD = dict.fromkeys(
    ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"), "1"
)
_COMPLETE = "BENCH_SIMULATION_COMPLETE"
#: Seconds between the load-average samples taken while the pipeline runs.
LOAD_INTERVAL = 10.0


class BulkBenchError(RuntimeError):
    """A step of the bulk benchmark failed (the message names the command and its output)."""


@dataclass(frozen=True)
class BulkSize:
    """How much to simulate and run."""

    detectors: int = 189
    visits: int = 2
    size: int = 2048
    jobs: int = 2

    @property
    def key(self) -> str:
        """Name of the cached simulation of this size."""
        return f"bulk-d{self.detectors}-v{self.visits}-s{self.size}"

    @classmethod
    def from_environment(cls) -> BulkSize:
        """Read ``BENCH_BULK_DETECTORS``/``VISITS``/``SIZE``/``JOBS`` (defaults: full size)."""
        values = {}
        for name in ("detectors", "visits", "size", "jobs"):
            text = os.environ.get(f"BENCH_BULK_{name.upper()}")
            if text is not None:
                try:
                    values[name] = int(text)
                except ValueError:
                    raise BulkBenchError(
                        f"BENCH_BULK_{name.upper()}={text!r} is not an integer"
                    ) from None
                if values[name] < 1:
                    raise BulkBenchError(f"BENCH_BULK_{name.upper()}={text} must be >= 1")
        return cls(**values)


def _tool(name: str) -> str:
    """Return the ``butler``/``pipetask`` script of this Python's environment."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise BulkBenchError(f"cannot find the {name!r} command next to {sys.executable}")
    return found


def _children_cpu() -> float:
    """CPU time (user + system) of this process's waited-for descendants so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


#: Fields of /proc/stat's ``cpu`` line, in order (jiffies summed over the cores).
_PROC_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def machine_cpu() -> dict[str, float] | None:
    """Seconds of every core so far by kind (/proc/stat's ``cpu`` line), `None` off Linux."""
    try:
        with open("/proc/stat") as stat:
            first = stat.readline().split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return {k: int(v) / tick for k, v in zip(_PROC_STAT_FIELDS, first[1:], strict=False)}


def kernel_threads_cpu() -> dict[str, float]:
    """CPU seconds so far of the kernel's threads (children of ``kthreadd``), by name.

    Names lose their instance suffix (``kworker/1:2`` counts as ``kworker``). Empty off Linux.
    """
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    totals: dict[str, float] = {}
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return totals
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                text = stat.read()
        except OSError:  # gone meanwhile
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        if fields[1] != "2":  # parent is not kthreadd
            continue
        key = name.split("/")[0].rstrip("0123456789:-.") or name
        totals[key] = totals.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return totals


def _run(
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    loads: list[float] | None = None,
    machine: dict[str, float] | None = None,
) -> tuple[float, float]:
    """Run ``command``; return its wall time and the CPU time of its whole process tree.

    ``loads``, if given, receives the 1-minute load average every `LOAD_INTERVAL` seconds
    while the command runs; ``machine`` what every core did meanwhile (`machine_cpu`'s
    difference). Raises `BulkBenchError` with the command's output tail if it fails.
    """
    with tempfile.TemporaryFile("w+") as output:
        before, kernel_before = machine_cpu(), kernel_threads_cpu()
        start, cpu0 = time.perf_counter(), _children_cpu()
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd
        )
        while True:
            try:
                process.wait(timeout=LOAD_INTERVAL)
                break
            except subprocess.TimeoutExpired:
                if loads is not None:
                    loads.append(os.getloadavg()[0])
        wall = time.perf_counter() - start
        cpu = _children_cpu() - cpu0  # dask's worker processes are reaped inside the tree
        after, kernel_after = machine_cpu(), kernel_threads_cpu()
        if machine is not None and before is not None and after is not None:
            machine.update({k: after[k] - before[k] for k in after})
            machine["kernel_threads"] = {
                k: v - kernel_before.get(k, 0.0) for k, v in kernel_after.items()
            }
        if process.returncode != 0:
            output.seek(0)
            tail = output.read().strip().splitlines()[-15:]
            raise BulkBenchError(
                f"{' '.join(command[:3])} ... exited {process.returncode}:\n" + "\n".join(tail)
            )
    return wall, cpu


def cached_simulation(size: BulkSize, cache: Path) -> tuple[Path, float | None]:
    """Return the simulated repository of ``size`` in ``cache`` (made if missing).

    Returns the repository and the wall time of the simulation (`None` if it was cached). A
    cached repository gets `OUTPUT_FORMATTERS` in its configuration if it lacks them (they
    only decide how new datasets are written; stored ones keep the formatter they were
    written with).
    """
    repo = cache / size.key
    if (repo / _COMPLETE).exists():
        _use_output_formatters(repo)
        return repo, None
    if repo.exists():
        raise BulkBenchError(
            f"{repo} exists but is not a complete benchmark simulation (no {_COMPLETE}); "
            "remove it or choose another BENCH_BULK_CACHE"
        )
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f"{size.key}.partial-{os.getpid()}"
    wall, _ = _run(
        [
            sys.executable, "-m", "bench.bulk_bench", "simulate", str(partial),
            str(size.detectors), str(size.visits), str(size.size), str(size.jobs),
        ],  # fmt: skip
        env={**os.environ, **_ONE_THREAD},
        cwd=Path(__file__).resolve().parent.parent,  # where ``bench`` is importable
    )
    (partial / _COMPLETE).write_text(
        f"{size}\nsimulated in {wall:.1f} s on {datetime.datetime.now(datetime.UTC)}\n"
    )
    partial.rename(repo)  # repositories store paths relative to their root
    return repo, wall


def _use_output_formatters(repo: Path) -> None:
    """Put `OUTPUT_FORMATTERS` into ``repo``'s configuration (no change if already there)."""
    from butler.repo_config import RepoConfig

    config = RepoConfig.read(repo)
    if any(config.formatters.get(k) != v for k, v in OUTPUT_FORMATTERS.items()):
        config.formatters.update(OUTPUT_FORMATTERS)
        config.write()


def simulate_focal_plane(repo: Path, size: BulkSize, *, batch: int = BATCH_DETECTORS) -> None:
    """Simulate ``size`` into a new repository ``repo`` as ``butler simulate`` does, in batches.

    The same camera, visits, sky, halos and seed as ``butler simulate`` with
    `SIMULATE_OPTIONS` (so the same pixels), but ``batch`` detectors (all visits) at a time:
    each batch's raw files are moved into the datastore (not copied) and the simulator's truth
    images of the batch, written here and unused, are removed, so the disk holds the raws
    plus one batch instead of two copies of everything (~2 x 55 MB per 2048² detector-visit).
    The batch is written next to ``repo`` (``<repo>.staging``, removed at the end).
    """
    from distributed import Client

    from butler import Butler
    from cluster import local_cluster
    from imaging.cli import DEFAULT_REFCAT, simulated_visits
    from imaging.ingest import ingest_raws, ingest_refcat, register_instrument
    from imaging.sim import SimOptions, SkyModel, make_camera, write_simulated_observations
    from imaging.sim.camera import Camera

    config = Butler.create(repo)
    config.formatters.update(OUTPUT_FORMATTERS)
    config.write()
    butler = Butler(str(repo))
    camera = make_camera(size.detectors, detector_size=size.size)
    visits = simulated_visits(camera, size.visits)
    sky = SkyModel(star_density=STAR_DENSITY, bright_star_density=BRIGHT_STAR_DENSITY)
    options = SimOptions(halo_threshold=0.0)  # --extended-halos
    staging = repo.with_name(f"{repo.name}.staging")  # outside the datastore: moved from
    ids = [detector.id for detector in camera.detectors]
    with (
        local_cluster(
            n_workers=size.jobs, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        for start in range(0, len(ids), batch):
            raws = write_simulated_observations(
                staging, camera, visits, seed=SEED, sky=sky, options=options,
                detectors=ids[start : start + batch],
                map_fn=lambda fn, jobs: client.gather(client.map(fn, list(jobs), pure=False)),
            )  # fmt: skip
            if start == 0:
                register_instrument(butler, Camera.from_yaml(staging / "camera.yaml"))
            ingest_raws(butler, raws, transfer="move")
            shutil.rmtree(staging / "truth")
    ingest_refcat(butler, DEFAULT_REFCAT, staging / "refcat.fits")
    shutil.rmtree(staging)


def run_pipeline(repo: Path, size: BulkSize, output: str) -> dict[str, Any]:
    """Run the default pipeline on every detector of ``repo``; return the run and its wall."""
    run = f"{output}/run"
    loads: list[float] = []
    machine: dict[str, float] = {}
    wall, cpu = _run(
        [
            _tool("pipetask"), "--log-level", "WARNING", "run", "-b", str(repo),
            "-p", str(PIPELINE), "-i", INPUTS, "-o", output, "--output-run", run,
            "-j", str(size.jobs), "--no-progress",
            "--executor", os.environ.get("BENCH_BULK_EXECUTOR", "auto"),
            # the stamps are zarr here: reading them in 2 threads pays (see the task's field)
            "-c", "measureExtendedPsf:stack_bright_stars.num_threads=2",
        ],  # fmt: skip
        env={**os.environ, **_ONE_THREAD},
        loads=loads,
        machine=machine,
    )
    return {"run": run, "wall": wall, "command_cpu": cpu, "loads": loads, "machine": machine}


#: What `account` sums per task: key -> item of the metadata's ``quantum`` section (see
#: `pipeline.execution.process_usage`; the last three are absent off Linux and count 0).
_USAGE = {
    "cpu": "cpu_time",
    "wall": "wall_time",
    "run_queue": "run_queue_wait",
    "read": "read_bytes",
    "write": "write_bytes",
}


def account(repo: Path, run: str) -> dict[str, Any]:
    """Sum the quanta's own CPU and wall time from their metadata in ``run``, per task."""
    from butler import Butler

    butler = Butler(str(repo))
    per_task: dict[str, dict[str, float]] = {}
    starts, ends = [], []
    for dataset_type in butler.registry.query_dataset_types("*_metadata"):
        refs = butler.query_datasets(dataset_type.name, collections=run)
        if not refs:
            continue
        label = dataset_type.name.removesuffix("_metadata")
        row = per_task.setdefault(label, dict.fromkeys(("quanta", *_USAGE), 0.0))
        for ref in refs:
            quantum = butler.get(ref)["quantum"]
            row["quanta"] += 1
            for key, name in _USAGE.items():
                row[key] += float(quantum.get(name, 0.0))
            starts.append(datetime.datetime.fromisoformat(quantum["start_utc"]))
            ends.append(datetime.datetime.fromisoformat(quantum["end_utc"]))
    if not per_task:
        raise BulkBenchError(f"no quantum metadata in run {run} of {repo}")
    window = (max(ends) - min(starts)).total_seconds()
    return {"per_task": per_task, "window": window}


def disk_bytes(root: Path) -> int:
    """Bytes ``root`` takes on the disk (allocated blocks of every file under it, as ``du``)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return total


def disk_bytes_by_folder(root: Path) -> dict[str, int]:
    """`disk_bytes` of every folder directly under ``root`` (a run: one per dataset type)."""
    return {e.name: disk_bytes(Path(e.path)) for e in os.scandir(root) if e.is_dir()}


def framework_share(wall: float, workers: int, quanta_cpu: float) -> float:
    """(wall × workers − Σ quantum CPU) / (wall × workers)."""
    return (wall * workers - quanta_cpu) / (wall * workers)


def measure(size: BulkSize, cache: Path, *, keep: bool = False) -> dict[str, Any]:
    """Simulate (or reuse), run, account; return every number of the table."""
    repo, simulated = cached_simulation(size, cache)
    load_before = os.getloadavg()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
    output = f"bench/bulk/{stamp}"
    result = run_pipeline(repo, size, output)
    load_after = os.getloadavg()
    try:
        result.update(account(repo, result["run"]))
        result["disk"] = {
            "raw (postISRCCD)": disk_bytes(repo / INSTRUMENT / "raw" / "all"),
            **{f"output {k}": v for k, v in disk_bytes_by_folder(repo / result["run"]).items()},
        }
    finally:
        if not keep:  # what this run wrote: its RUN and the output chain made for it
            from butler import Butler

            butler = Butler(str(repo))
            butler.remove_runs([result["run"]])
            butler.registry.remove_collection(output)
    cpu = sum(row["cpu"] for row in result["per_task"].values())
    quanta_wall = sum(row["wall"] for row in result["per_task"].values())
    run_queue = sum(row["run_queue"] for row in result["per_task"].values())
    exposures = size.detectors * size.visits
    result.update(
        quanta_wall=quanta_wall,
        # load-robust companions: the framework's CPU over all CPU the command used, and the
        # workers' wall time outside any quantum (waiting for a core inside a quantum is not
        # counted there)
        framework_cpu_share=(result["command_cpu"] - cpu) / result["command_cpu"],
        outside_quanta_share=framework_share(result["wall"], size.jobs, quanta_wall),
        # inside quanta, what is not their CPU: waiting for a core, and the rest (blocked)
        run_queue_share=run_queue / (result["wall"] * size.jobs),
        blocked_share=(quanta_wall - cpu - run_queue) / (result["wall"] * size.jobs),
        read_bytes=sum(row["read"] for row in result["per_task"].values()),
        write_bytes=sum(row["write"] for row in result["per_task"].values()),
        size=size,
        repo=str(repo),
        simulated=simulated,
        quanta_cpu=cpu,
        exposures=exposures,
        detectors_per_minute_per_core=exposures / (result["wall"] / 60.0) / size.jobs,
        share_command=framework_share(result["wall"], size.jobs, cpu),
        share_window=framework_share(result["window"], size.jobs, cpu),
        load=(load_before, load_after),
    )
    return result


def _load_summary(loads: list[float]) -> str:
    """Describe the run's 1-minute load averages (sampled every `LOAD_INTERVAL` s)."""
    if not loads:
        return ""
    ordered = sorted(loads)
    return (
        f"1-min load during the run: min {ordered[0]:.1f}, median "
        f"{ordered[len(ordered) // 2]:.1f}, max {ordered[-1]:.1f} ({len(loads)} samples); "
    )


def _machine_rows(r: dict[str, Any], size: BulkSize) -> list[list[Any]]:
    """Where every core's time went during the run (/proc/stat), over wall x cores."""
    m = r.get("machine") or {}
    if not m:
        return []
    cores = os.cpu_count() or 1
    total = r["wall"] * cores
    threads = m.get("kernel_threads", {})
    m = {k: v for k, v in m.items() if k != "kernel_threads"}
    busy = sum(v for k, v in m.items() if k not in ("idle", "iowait"))
    top = sorted(threads.items(), key=lambda kv: -kv[1])[:4]
    kernel = m.get("system", 0.0) + m.get("irq", 0.0) + m.get("softirq", 0.0)

    def pct(v: float) -> str:
        return f"{100 * v / total:.1f}% ({v:.0f} s)"

    return [
        [f"machine, all {cores} cores (/proc/stat), over wall x cores: busy", pct(busy), ""],
        ["  of which the command tree (quanta and framework)", pct(r["command_cpu"]), ""],
        ["  of which anything else (kernel threads: writeback, reclaim; other processes)",
         pct(busy - r["command_cpu"]), ""],
        ["  of which the kernel's own threads: " + ", ".join(f"{k} {v:.0f} s" for k, v in top),
         pct(sum(threads.values())), ""],
        ["  system + irq + softirq (any process's kernel time, kernel threads)", pct(kernel), ""],
        ["  steal (the hypervisor ran something else)", pct(m.get("steal", 0.0)), ""],
        ["machine idle / iowait", f"{pct(m.get('idle', 0.0))} / {pct(m.get('iowait', 0.0))}", ""],
    ]


def main() -> None:
    size = BulkSize.from_environment()
    cache = Path(
        os.environ.get("BENCH_BULK_CACHE", Path.home() / ".cache" / "skyquanta-bench")
    ).expanduser()
    keep = os.environ.get("BENCH_BULK_KEEP", "0") not in ("", "0")
    r = measure(size, cache, keep=keep)
    rows = [
        [label, int(t["quanta"]), t["cpu"], t["wall"], t["cpu"] / t["quanta"]]
        for label, t in r["per_task"].items()
    ]
    rows.append(["all quanta", sum(int(t["quanta"]) for t in r["per_task"].values()),
                 r["quanta_cpu"], sum(t["wall"] for t in r["per_task"].values()), "-"])  # fmt: skip
    print_table(
        f"Default pipeline on {size.detectors} detectors x {size.visits} visits of "
        f"{size.size}^2 px, -j {size.jobs} (quanta from their metadata)",
        ["task", "quanta", "CPU s", "wall s", "CPU s / quantum"],
        rows,
    )
    exposures = r["exposures"]
    disk = r["disk"]
    print_table(
        "Disk per detector-visit (allocated blocks)",
        ["what", "MB / detector-visit", "GB in all"],
        [[k, v / exposures / 1e6, v / 1e9] for k, v in sorted(disk.items(), key=lambda kv: -kv[1])]
        + [["all", sum(disk.values()) / exposures / 1e6, sum(disk.values()) / 1e9]],
        notes="exposures and stamps as zarr (repository formatters), raws as FITS",
    )
    loads = sorted(r["loads"]) or [r["load"][1][0]]
    gather = r["per_task"].get("measureExtendedPsf", {"wall": 0.0, "cpu": 0.0})
    print_table(
        "Bulk throughput and the framework's share of the wall time",
        ["measure", "value", "target"],
        [
            ["ISSUE: detectors / minute / core (detector-visits / wall min / workers)",
             f"{r['detectors_per_minute_per_core']:.2f}", ""],
            ["ISSUE: framework share (wall x workers - sum quantum CPU) / (wall x workers)",
             f"{100 * r['share_command']:.1f}%", "<= 5%"],
            ["ISSUE: 1-min load during the run, median (min-max), on "
             f"{os.cpu_count()} cores (above {size.jobs}: the share is not meaningful)",
             f"{loads[len(loads) // 2]:.1f} ({loads[0]:.1f}-{loads[-1]:.1f})", ""],
            ["pipetask run wall s", r["wall"], ""],
            ["execution window s (first quantum start .. last end)", r["window"], ""],
            ["framework share, execution window", f"{100 * r['share_window']:.1f}%", "<= 5%"],
            ["CPU of the whole command tree s (pipetask, scheduler, workers)",
             r["command_cpu"], ""],
            ["framework CPU share: (command CPU - quanta CPU) / command CPU",
             f"{100 * r['framework_cpu_share']:.1f}%", ""],
            ["workers outside quanta: (wall x workers - sum quantum wall) / (wall x workers)",
             f"{100 * r['outside_quanta_share']:.1f}%", ""],
            ["inside quanta, waiting for a core (run queue of the quantum's thread), over "
             "wall x workers", f"{100 * r['run_queue_share']:.1f}%", ""],
            ["inside quanta, blocked (wall - CPU - run queue: disk, locks), over wall x "
             "workers", f"{100 * r['blocked_share']:.1f}%", ""],
            ["read from / written to storage by the quanta, GB",
             f"{r['read_bytes'] / 1e9:.1f} / {r['write_bytes'] / 1e9:.1f}", ""],
            ["the measureExtendedPsf gather (a barrier, alone on the workers): gather wall x "
             "workers - its CPU, over wall x workers",
             f"{100 * (gather['wall'] * size.jobs - gather['cpu']) / (r['wall'] * size.jobs):.1f}%",
             ""],
            *_machine_rows(r, size),
        ],
        notes=(
            f"load average (1, 5, 15 min) before {tuple(round(v, 1) for v in r['load'][0])}, "
            f"after {tuple(round(v, 1) for v in r['load'][1])} on {os.cpu_count()} cores; "
            + _load_summary(r["loads"])
            + f"pipetask run --executor {os.environ.get('BENCH_BULK_EXECUTOR', 'auto')}; "
            + f"simulation {'reused from' if r['simulated'] is None else 'made in'} {r['repo']}"
            + ("" if r["simulated"] is None else f" ({r['simulated']:.0f} s)")
        ),
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["simulate"]:  # the simulation step, run as a subprocess
        repo_arg, *numbers = sys.argv[2:]
        simulate_focal_plane(Path(repo_arg), BulkSize(*(int(n) for n in numbers)))
    else:
        main()
