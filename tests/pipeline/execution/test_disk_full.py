"""Stored means stored on a full disk: a real ``pipetask run`` on a small tmpfs that fills up.

The repository lives on its own tmpfs (mounting needs root, as CI runs; elsewhere the test
skips and says why). A filler file leaves too little room for the run to start: it must say so
in one line with exit 2 (it printed a driver traceback), and once the filler is removed the same
command must run to the end (the registry's write-ahead log did not keep the space).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _exec_repo import make_repo, pipeline_yaml, registered
from _faults import run_pipetask
from test_registration_faults import _all_registered

from butler import Butler

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs mounted at ``tmp_path / "disk"`` (unmounted at the end)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(path, leave_bytes):
    """Create a filler file so that about ``leave_bytes`` stay free on path's filesystem."""
    free = shutil.disk_usage(path).free
    filler = path / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(free - leave_bytes, 0))
    return filler


def test_full_disk_is_one_line_and_the_run_starts_once_space_is_freed(small_disk):
    repo = make_repo(small_disk / "repo", n_visits=2, n_detectors=8)
    pipe = small_disk.parent / "pipe.yaml"
    pipe.write_text(pipeline_yaml())
    filler = _fill(small_disk, 16 * 1024)  # the first registry write fails
    args = ["-b", str(repo), "-p", str(pipe), "-i", "raw/all", "-o", "u/full", "--no-progress"]
    first = run_pipetask("run", *args, "--executor", "sync", timeout=240)
    assert first.returncode == 2, first.stdout + first.stderr
    assert "disk is full" in first.stderr, first.stderr
    assert "Traceback" not in first.stderr, first.stderr
    filler.unlink()
    # the registry's write-ahead log did not keep the space: the same command now runs
    again = run_pipetask("run", *args, "--executor", "sync", timeout=240)
    assert again.returncode == 0, again.stdout + again.stderr
    butler = Butler(repo)
    run = butler.registry.get_collection_chain("u/full")[0]
    _all_registered(butler, run, 2, 8)


@pytest.mark.parametrize(
    "executor",
    [["--executor", "sync"], ["--executor", "dask", "-j", "2"], ["-j", "2"]],  # -j 2: the pool
)
def test_disk_filling_up_mid_run_fails_cleanly_and_resume_finishes(small_disk, executor):
    """The disk fills part-way through a run (each ``ea_out`` is ~1 MiB, 6 MiB are free).

    The run must exit non-zero with one line that says the disk is full and how to resume,
    register nothing whose file is incomplete, and, once space is freed, ``--resume`` must
    finish with every quantum registered and every file the size its record says. In process
    a quantum's write fails first; with dask workers it is often the registry's (the quanta
    that finished stay unregistered, their files are adopted by the resume).
    """
    n_visits, n_detectors = 2, 8
    repo = make_repo(small_disk / "repo", n_visits=n_visits, n_detectors=n_detectors)
    pipe = small_disk.parent / "pipe.yaml"
    pipe.write_text(pipeline_yaml(a_config={"padBytes": 1 << 20}))
    filler = _fill(small_disk, 6 << 20)
    args = ["-b", str(repo), "-p", str(pipe), "-i", "raw/all", "-o", "u/mid", "--no-progress"]
    first = run_pipetask("run", *args, *executor, timeout=240)
    output = first.stdout + first.stderr
    assert first.returncode != 0, output
    assert "Traceback" not in first.stderr, first.stderr
    full_lines = [line for line in first.stderr.splitlines() if "disk is full" in line]
    assert len(full_lines) == 1, first.stderr
    assert "--resume" in full_lines[0] and "free some space" in full_lines[0], full_lines
    # stopped, not failed: no failure lines, nothing counted failed or blocked
    assert not [line for line in first.stderr.splitlines() if line.startswith("failed ")]
    butler = Butler(repo)
    run = butler.registry.get_collection_chain("u/mid")[0]
    written = list((Path(repo) / run / "ea_out").glob("*.yaml"))  # registered or not
    assert 0 < len(written) < n_visits * n_detectors, written  # it filled part-way
    assert len(registered(butler, run).get("ea_out", ())) <= len(written)
    _sizes_match(butler, run)
    filler.unlink()
    again = run_pipetask("run", *args, "--resume", *executor, timeout=240)
    assert again.returncode == 0, again.stdout + again.stderr
    butler = Butler(repo)
    _all_registered(butler, run, n_visits, n_detectors)
    _sizes_match(butler, run)
    check = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "butler"), "check", str(repo)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def _sizes_match(butler, run):
    """Every registered dataset of ``run`` has its file, of the size its record says."""
    refs = [
        ref
        for dtype in butler.registry.query_dataset_types()
        for ref in butler.registry.query_datasets(dtype, collections=[run])
    ]
    infos = butler.registry.get_stored_info(refs)
    for ref in refs:
        info = infos[ref.id]
        path = butler.datastore.uri(info)
        assert os.path.exists(path), (ref, path)
        assert info.file_size == os.path.getsize(path), (ref, path)
