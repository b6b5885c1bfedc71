"""Start-up benchmark: what a user waits for when a command does little, end to end.

Run with ``python -m bench startup``. Every case is a fresh process, timed from start to exit
(``subprocess.run``), the median of `ROUNDS` interleaved rounds after one untimed warm-up
round (which also writes the bytecode caches): ``pipetask --help``, ``butler --help``,
``butler query-collections`` on a small repository, and ``pipetask run`` of an 84-quantum
graph (3 trivial tasks, 4 visits x 10 detectors, 32x32 float32 arrays: `bench._startup_tasks`)
with ``-j 1`` (in the pipetask process), ``-j 2`` (a pool of 2 local worker processes) and
``--executor dask -j 2`` (a local dask cluster), graph build included, each into a new
output run. Next to the wall time: the CPU time (user + system) of
the process and everything it started (on Linux also the processes that outlive it, such as
the server the dask workers fork from), which a loaded machine inflates much less.

Peers, in the same rounds:

- LSST's commands when ``lsst.ctrl.mpexec`` is importable by the interpreter
  ``BENCH_LSST_PYTHON`` (default: this one); the rows say "not installed" otherwise. They run
  on an LSST repository of the same data with the same three tasks written against
  ``lsst.pipe.base`` (`bench._lsst_startup`, run by that interpreter). LSST's console
  scripts are also named ``pipetask`` and ``butler``: install it in its own environment
  (``python -m venv lsst && lsst/bin/pip install lsst-ctrl-mpexec``), not in ours.
- ``BENCH_STARTUP_BASE=DIR``: the same commands run from another source tree (e.g. an older
  commit, ``git archive COMMIT | tar -x -C DIR``) with this interpreter, for before/after.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._table import print_table

ROUNDS = 3
N_VISITS = 4
N_DETECTORS = 10
SHAPE = (32, 32)

#: Target wall time (s) per case (issue 17).
TARGETS = {
    "pipetask --help": 0.3,
    "butler --help": 0.3,
    "butler query-collections": None,
    "pipetask run -j 1 (84 quanta)": 1.0,
    "pipetask run -j 2 (84 quanta)": 1.5,
    "pipetask run --executor dask -j 2 (84 quanta)": None,
}

_HERE = Path(__file__).resolve().parent

#: A command for one round (its number picks a new output run), or why it is not measured.
Command = Callable[[int], list[str]] | str


def make_repo(root: Path) -> Path:
    """Create the repository: 4 visits x 10 detectors of 32x32 ``raw`` arrays in run ``raw``."""
    import numpy as np

    from butler import Butler, DatasetType

    from ._repo import add_dimension_records

    Butler.create(root)
    butler = Butler(root, run="raw")
    add_dimension_records(butler, instrument="Sim", n_visits=N_VISITS)
    dtype = DatasetType.make(
        "raw", ["instrument", "visit", "detector"], "NumpyArray", butler.universe
    )
    butler.registry.register_dataset_type(dtype)
    for visit in range(N_VISITS):
        for detector in range(N_DETECTORS):
            data = np.full(SHAPE, visit * 100 + detector, dtype=np.float32)
            butler.put(data, "raw", instrument="Sim", visit=visit, detector=detector)
    return root


def _adopt_orphans() -> bool:
    """Make this process the reaper of its descendants' orphans (Linux); return if it is.

    ``pipetask run -j 2`` forks its dask workers from a server process (see
    `cluster.worker_server`) that outlives ``pipetask`` by a moment: adopted and waited for
    here, its CPU time (and its workers') counts in the run's.
    """
    try:
        import ctypes

        set_child_subreaper = 36  # PR_SET_CHILD_SUBREAPER
        return ctypes.CDLL(None, use_errno=True).prctl(set_child_subreaper, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _reap_orphans(timeout: float = 30.0) -> None:
    """Wait for every adopted descendant to end (at most ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.01)


def _timed(command: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, float]:
    """Wall and CPU time (s) of ``command`` as a fresh process; raises if it fails.

    The wall time ends when the process exits. The CPU time is the user + system time of
    the process and of every process it started (the dask workers and the server they fork
    from included, which `_adopt_orphans` makes this process wait for), from
    ``getrusage(RUSAGE_CHILDREN)``. ``cwd``: where it runs (never a source tree: ``python -c``
    imports from its working directory first, which would shadow ``BENCH_STARTUP_BASE``).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, cwd=cwd)
    wall = time.perf_counter() - start
    _reap_orphans()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({out.returncode}): {out.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _lsst_python() -> str | None:
    """Return the interpreter that imports ``lsst.ctrl.mpexec``, or `None`."""
    python = os.environ.get("BENCH_LSST_PYTHON", sys.executable)
    probe = subprocess.run(
        [python, "-c", "import lsst.ctrl.mpexec, lsst.daf.butler"], capture_output=True
    )
    return python if probe.returncode == 0 else None


def _entry(python: str, module: str) -> list[str]:
    """Return a command line running ``module.main()`` as its console script would."""
    return [python, "-c", f"import sys; from {module} import main; sys.exit(main())"]


def _ours(
    pipetask: list[str], butler: list[str], repo: Path, pipeline: Path, side: str
) -> dict[str, Any]:
    def run(jobs: str, *extra: str) -> Command:
        def command(round_: int) -> list[str]:
            output = f"u/bench/{side}/j{jobs}{''.join(extra)}/r{round_ + 1}"  # r0: the warm-up
            return [
                *pipetask, "--log-level", "WARNING", "run", "-b", str(repo), "-p", str(pipeline),
                "-i", "raw", "-o", output, "--output-run", f"{output}/run", "-j", jobs,
                "--no-progress", *extra,
            ]  # fmt: skip

        return command

    return {
        "pipetask --help": lambda _: [*pipetask, "--help"],
        "butler --help": lambda _: [*butler, "--help"],
        "butler query-collections": lambda _: [*butler, "query-collections", str(repo)],
        "pipetask run -j 1 (84 quanta)": run("1"),
        "pipetask run -j 2 (84 quanta)": run("2"),
        "pipetask run --executor dask -j 2 (84 quanta)": run("2", "--executor", "dask"),
    }


def _lsst(lsst_python: str | None, tmp: Path) -> dict[str, Command]:
    """LSST's commands on an LSST repository of the same data (`bench._lsst_startup`)."""
    if lsst_python is None:
        return dict.fromkeys(TARGETS, "not installed")
    shutil.copy(_HERE / "_lsst_startup.py", tmp / "lsst_startup.py")
    repo, pipeline = tmp / "lsst_repo", tmp / "lsst_pipeline.yaml"
    subprocess.run(
        [lsst_python, str(tmp / "lsst_startup.py"), str(repo), str(pipeline)],
        check=True,
        capture_output=True,
    )
    pipetask = _entry(lsst_python, "lsst.ctrl.mpexec.cli.pipetask")
    butler = _entry(lsst_python, "lsst.daf.butler.cli.butler")

    def run(jobs: str) -> Command:
        def command(round_: int) -> list[str]:
            return [
                *pipetask, "--log-level", "WARNING", "run", "-b", str(repo), "-p", str(pipeline),
                "-i", "raw", "-o", f"u/bench/lsst/j{jobs}/r{round_ + 1}",
                "--register-dataset-types", "-j", jobs,
            ]  # fmt: skip

        return command

    return {
        "pipetask --help": lambda _: [*pipetask, "--help"],
        "butler --help": lambda _: [*butler, "--help"],
        "butler query-collections": lambda _: [*butler, "query-collections", str(repo)],
        "pipetask run -j 1 (84 quanta)": run("1"),
        "pipetask run -j 2 (84 quanta)": run("2"),
        "pipetask run --executor dask -j 2 (84 quanta)": "no such executor",
    }


def _env(source: Path | None, tasks_dir: Path) -> dict[str, str]:
    """Return the environment of a timed process: the tasks (and ``source``) on the path.

    Bytecode is written, as for a user (this session may set ``PYTHONDONTWRITEBYTECODE``).
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    path = [str(tasks_dir), *([str(source)] if source else []), os.environ.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
    return env


def measure(rounds: int = ROUNDS) -> tuple[list[str], list[list[Any]]]:
    """Time every case ``rounds`` times, interleaved; return the columns and rows."""
    base = os.environ.get("BENCH_STARTUP_BASE")
    _adopt_orphans()
    lsst_python = _lsst_python()
    binary = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "repo")
        shutil.copy(_HERE / "_startup_tasks.py", Path(tmp) / "startup_tasks.py")
        from ._startup_tasks import ARRAY_PIPELINE_YAML

        pipeline = Path(tmp) / "pipeline.yaml"
        pipeline.write_text(ARRAY_PIPELINE_YAML)
        sides: dict[str, tuple[dict[str, Command], dict[str, str]]] = {
            "ours": (
                _ours(
                    [str(binary / "pipetask")], [str(binary / "butler")], repo, pipeline, "ours"
                ),
                _env(None, Path(tmp)),
            ),
            "LSST": (_lsst(lsst_python, Path(tmp)), _env(None, Path(tmp))),
        }
        if base:
            commands = _ours(
                _entry(sys.executable, "pipeline.cli"),
                _entry(sys.executable, "butler.cli"),
                repo,
                pipeline,
                "before",
            )
            sides["base"] = (commands, _env(Path(base), Path(tmp)))
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for round_ in range(-1, rounds):  # round -1: warm-up, not counted
            for case in TARGETS:
                for side, (commands, env) in sides.items():
                    command = commands[case]
                    if isinstance(command, str):
                        continue
                    result = _timed(command(round_), env, Path(tmp))
                    if round_ >= 0:
                        times.setdefault((side, case), []).append(result)
    columns = ["case", "ours s", "ours min-max", "ours CPU s"]
    if base:
        columns += ["before s", "before CPU s", "ours / before"]
    columns += ["LSST s", "ours / LSST", "target"]
    rows = []
    for case, target in TARGETS.items():
        walls = [w for w, _ in times[("ours", case)]]
        ours = statistics.median(walls)
        row: list[Any] = [
            case,
            ours,
            f"{min(walls):.2f}-{max(walls):.2f}",
            statistics.median(c for _, c in times[("ours", case)]),
        ]
        if base:
            before = statistics.median(w for w, _ in times[("base", case)])
            row += [before, statistics.median(c for _, c in times[("base", case)]), ours / before]
        lsst = sides["LSST"][0][case]
        if isinstance(lsst, str):
            row += [lsst, ""]
        else:
            peer = statistics.median(w for w, _ in times[("LSST", case)])
            row += [peer, ours / peer]
        row.append("" if target is None else f"<= {target} s")
        rows.append(row)
    return columns, rows


def main() -> None:
    """Run the start-up benchmark and print its table."""
    columns, rows = measure()
    base = os.environ.get("BENCH_STARTUP_BASE")
    print_table(
        f"Start-up: commands end to end as fresh processes (median of {ROUNDS} interleaved "
        "rounds after a warm-up)",
        columns,
        rows,
        notes=(
            "pipetask run: 84 quanta (3 trivial tasks, 4 visits x 10 detectors, 32x32 arrays), "
            "graph build and execution, each round into a new output run; -j 1 runs the quanta "
            "in the pipetask process, -j 2 on a pool of 2 local worker processes, "
            "--executor dask -j 2 on a local dask cluster of 2 workers. "
            "CPU s: user + system time of the process and all it started. "
            + (f"before: the source tree {base}, same interpreter, same rounds. " if base else "")
            + f"Machine: {os.cpu_count()} CPUs (virtual), load average "
            f"{os.getloadavg()[0]:.1f} at the end: on a shared machine, compare ratios and CPU "
            "times measured in the same run."
        ),
    )


if __name__ == "__main__":
    main()
