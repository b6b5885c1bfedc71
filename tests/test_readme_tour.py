"""The README's tour runs as written.

The ``sh`` block under "## A short tour" is read from README.md and each of its lines is run,
unchanged, by one bash process in a temporary directory that looks like a fresh checkout after
``make``: ``.venv`` (this interpreter's environment) and ``pipelines.yaml``. ``PATH`` starts
without the environment, so the tour must activate it itself. A failing line stops the tour and
the test names it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("galsim")

ROOT = Path(__file__).resolve().parent.parent
_FAILED = "TOUR LINE FAILED"


def tour_lines(readme: Path = ROOT / "README.md") -> list[str]:
    """Return the command lines of the tour's first ``sh`` block (blank and comment lines out)."""
    text = readme.read_text()
    section = text[text.index("## A short tour") :]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "README.md: no ```sh block under '## A short tour'"
    return [
        line
        for line in match.group(1).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _script(lines: list[str]) -> str:
    checked = []
    for number, line in enumerate(lines, start=1):
        quoted = line.replace("'", "'\\''")
        checked.append(f"echo '>>> {quoted}'")
        checked.append(line)
        checked.append(
            f"rc=$?; if [ $rc -ne 0 ]; then echo '{_FAILED} {number} (rc='$rc'): {quoted}' >&2; "
            "exit 97; fi"
        )
    return "\n".join(checked) + "\n"


def test_tour_lines_parse():
    lines = tour_lines()
    assert lines[0].startswith("source .venv/bin/activate")
    assert any(line.startswith("butler ingest-refcat") for line in lines)


@pytest.mark.slow
def test_readme_tour_runs_as_written(tmp_path):
    lines = tour_lines()
    (tmp_path / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    shutil.copy(ROOT / "pipelines.yaml", tmp_path / "pipelines.yaml")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"  # a clean shell: no butler before activation
    env["COLUMNS"] = "200"
    result = subprocess.run(
        ["bash", "--noprofile", "--norc"],
        input=_script(lines),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert _FAILED not in output
    # what the tour promises, read from its own output
    assert "Ingested 4 raw exposure(s) into SimCam/raw/all" in output
    assert "Ingested reference catalog gaia_dr2_20200414" in output
    assert output.lower().count("nothing to do") == 1  # the resume, said once
    assert (tmp_path / "g.qgraph").exists()
    assert re.search(r"characterizeImage\s*│\s*4\s*│\s*4\s*│", output), output[-3000:]
