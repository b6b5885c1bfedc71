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

import pytest
from _exec_repo import make_repo, pipeline_yaml
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
