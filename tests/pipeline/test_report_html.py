"""pipetask report --html: the page parsed (always) and rendered by headless Chromium (when
installed)."""

from __future__ import annotations

import base64
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _exec_repo import make_repo, pipeline_yaml
from click.testing import CliRunner

from pipeline.cli import main as pipetask_main

_PNG = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """Collects table cells, <pre> texts, image sources, links and headings."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.pres: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.headings: list[str] = []
        self._tag: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "a":
            self.links.append(attrs.get("href", ""))
        self._tag = tag

    def handle_endtag(self, tag):
        self._tag = None

    def handle_data(self, data):
        if self._tag in ("td", "th"):
            self.cells.append(data.strip())
        elif self._tag == "pre":
            self.pres.append(data)
        elif self._tag in ("h1", "h2", "h3"):
            self.headings.append(data.strip())


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """A run with 1 failed and 1 blocked quantum, a picture in its folder, and its page."""
    tmp = tmp_path_factory.mktemp("html")
    repo = make_repo(tmp / "repo", n_visits=1, n_detectors=3)
    fail = tmp / "fail.txt"
    fail.write_text("0,1\n")
    pipe = tmp / "pipe.yaml"
    pipe.write_text(pipeline_yaml(a_config={"failFile": str(fail)}, tasks=("a", "b")))
    runner = CliRunner()
    result = runner.invoke(pipetask_main, ["run", "-b", str(repo), "-p", str(pipe), "-i",
                                           "raw/all", "--output-run", "u/html", "--executor",
                                           "sync", "--no-progress"])
    assert result.exit_code == 1, result.output
    picture = repo / "u/html/debug/Sim_0_1_psf.png"
    picture.parent.mkdir(parents=True)
    picture.write_bytes(_PNG + b"not really drawn")
    page = tmp / "out" / "report.html"
    result = runner.invoke(pipetask_main, ["report", str(repo), "u/html", "--html", str(page)])
    assert result.exit_code == 0, result.output
    return page, picture


def test_page_parses_with_counts_failures_plots_and_links(reported):
    page, picture = reported
    parsed = _Page()
    parsed.feed(page.read_text())
    assert "pipetask report: u/html" in parsed.headings
    cells = parsed.cells
    a_row = cells[cells.index("a"): cells.index("a") + 7]
    assert a_row == ["a", "3", "2", "0", "1", "0", "0"]  # expected, succeeded, no_work, failed
    b_row = cells[cells.index("b"): cells.index("b") + 7]
    assert b_row[:2] == ["b", "3"] and b_row[2] == "2"
    assert any("injected failure for 0,1" in text for text in parsed.pres)
    assert any("Traceback" in text and "exec_tasks.py" in text for text in parsed.pres)
    assert "a: 1 failed with" in parsed.headings
    plots = [src for src in parsed.images if src.startswith("data:image/png;base64,")]
    assert len(plots) == 3  # wall, CPU, memory
    assert all(base64.b64decode(src.split(",", 1)[1]).startswith(_PNG) for src in plots)
    assert [(page.parent / link).resolve() for link in parsed.links] == [picture.resolve()]
    text = page.read_text()
    assert 'src="http' not in text and 'href="http' not in text  # self-contained


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "headless_shell"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed")
def test_page_renders_in_headless_chromium(reported, tmp_path):
    page, _ = reported
    args = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*args, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'id="counts"' in dom.stdout and "injected failure for 0,1" in dom.stdout
    shot = tmp_path / "page.png"
    done = subprocess.run([*args, f"--screenshot={shot}", "--window-size=1200,1600",
                           page.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.stat().st_size > 20_000, done.stderr[-2000:]
    Path(page.parent / "rendered.png").write_bytes(shot.read_bytes())  # to look at
