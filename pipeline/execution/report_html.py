"""``pipetask report --html FILE``: one self-contained page per run.

The page holds, in order: the counts per task (the `~.report.Report` table), per-quantum
wall time, CPU time and peak memory from each quantum's ``<label>_metadata`` (``quantum``
section) as histograms (PNG images embedded as ``data:`` URIs, so the file can be mailed),
the failures grouped by message with their data IDs and tracebacks (from the quanta's
``<label>_log``), and links to the pictures found under the run's folder of a local datastore
(debug pictures, stamp mosaics). Nothing is fetched when the page is opened.

State: none at module level.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["QuantumTimes", "collect_quantum_times", "find_pictures", "write_html_report"]

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.failed td { background: #fde2e2; }
pre { background: #f5f5f5; padding: 0.7em; overflow-x: auto; font-size: 85%; }
.plots img { max-width: 32%; margin-right: 1%; }
"""


class QuantumTimes:
    """Per task label: the wall time (s), CPU time (s) and peak memory (MiB) of each quantum."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}
        self.memory: dict[str, list[float]] = {}

    def add(self, label: str, quantum: Any) -> None:
        """Record the ``quantum`` section of one metadata dataset."""
        for target, key, scale in (
            (self.wall, "wall_time", 1.0),
            (self.cpu, "cpu_time", 1.0),
            (self.memory, "max_rss_bytes", 1.0 / 2**20),
        ):
            value = quantum.get(key) if hasattr(quantum, "get") else None
            if value is not None:
                target.setdefault(label, []).append(float(value) * scale)


def collect_quantum_times(butler: Any, collection: str, labels: Iterable[str]) -> QuantumTimes:
    """Read every ``<label>_metadata`` of ``collection`` for the per-quantum numbers."""
    times = QuantumTimes()
    registry = butler.registry
    for label in labels:
        try:
            dataset_type = registry.get_dataset_type(f"{label}_metadata")
        except LookupError:
            continue
        for ref in registry.query_datasets(dataset_type, collections=[collection]):
            metadata = butler.get(ref)
            quantum = metadata.get("quantum", {}) if hasattr(metadata, "get") else {}
            times.add(label, quantum)
    return times


def _tracebacks(butler: Any, collection: str, label: str, data_ids: Sequence[dict]) -> list[str]:
    """Return the last error record's traceback of each failed quantum's log (in order)."""
    registry = butler.registry
    try:
        dataset_type = registry.get_dataset_type(f"{label}_log")
    except LookupError:
        return ["" for _ in data_ids]
    out = []
    for data_id in data_ids:
        ref = registry.find_dataset(dataset_type, data_id, collections=[collection])
        text = ""
        if ref is not None:
            for record in reversed(list(butler.get(ref))):
                if record.get("levelno", 0) >= 40:
                    text = (record.get("exc_text") or record.get("message") or "").strip()
                    break
        out.append(text)
    return out


def find_pictures(butler: Any, collection: str) -> list[Path]:
    """PNG files under the folders of ``collection``'s runs in a local datastore, sorted."""
    root = getattr(butler.datastore, "uri_root", "")
    if not root or "://" in root:
        return []
    registry = butler.registry
    try:
        runs = registry.resolve_collections([collection])
    except LookupError:
        runs = [collection]
    found: list[Path] = []
    for run in runs:
        folder = Path(root) / run
        if folder.is_dir():
            found.extend(folder.rglob("*.png"))
    return sorted(found)


def _histogram_png(values: dict[str, list[float]], what: str, unit: str) -> str:
    """Return a histogram per task label as a base64 PNG (``""`` if there is nothing)."""
    if not any(values.values()):
        return ""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.4), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.14, 0.16, 0.82, 0.72))
    for label, numbers in values.items():
        if numbers:
            median = sorted(numbers)[len(numbers) // 2]
            ax.hist(numbers, bins=min(30, max(5, len(numbers) // 3)), alpha=0.6,
                    label=f"{label} (n={len(numbers)}, median {median:.3g})")
    ax.set_xlabel(f"{what} per quantum ({unit})")
    ax.set_ylabel("quanta")
    ax.set_title(what)
    ax.legend(fontsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _counts_table(report: Any) -> str:
    columns = ["expected", "succeeded", "no_work", "failed", "blocked", "not_run"]
    rows = ["<tr><th>task</th>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"]
    for label, counts in report.tasks.items():
        css = ' class="failed"' if counts.get("failed") or counts.get("blocked") else ""
        cells = "".join(f"<td>{int(counts.get(c, 0))}</td>" for c in columns)
        rows.append(f"<tr{css}><td>{html.escape(label)}</td>{cells}</tr>")
    return '<table id="counts">' + "".join(rows) + "</table>"


def _failures(butler: Any, collection: str, report: Any) -> str:
    parts = []
    for label, errors in report.errors.items():
        for number, error in enumerate(errors):
            ids = error["data_ids"]
            tracebacks = _tracebacks(butler, collection, label, ids)
            items = "".join(
                f"<li><code>{html.escape(str(d))}</code>"
                + (f"<details><summary>traceback</summary><pre>{html.escape(t)}</pre></details>"
                   if t else "")
                + "</li>"
                for d, t in zip(ids, tracebacks, strict=True)
            )
            parts.append(
                f'<div class="failure" id="failure-{html.escape(label)}-{number}">'
                f"<h3>{html.escape(label)}: {len(ids)} failed with</h3>"
                f"<pre class=\"message\">{html.escape(error['error'])}</pre><ul>{items}</ul></div>"
            )
    return "".join(parts) or "<p>No failures.</p>"


def _pictures(pictures: Sequence[Path], page: Path) -> str:
    if not pictures:
        return "<p>No pictures in the run's folder (run with <code>--debug</code>).</p>"
    items = []
    for picture in pictures:
        try:
            href = os.path.relpath(picture, page.parent.resolve())
        except ValueError:  # another drive
            href = picture.as_uri()
        items.append(f'<li><a href="{html.escape(href)}">{html.escape(picture.name)}</a></li>')
    return '<ul id="pictures">' + "".join(items) + "</ul>"


def write_html_report(
    butler: Any, collection: str, report: Any, path: str | os.PathLike[str]
) -> Path:
    """Write the page (see the module docstring) for ``report`` of ``collection``; return it.

    Parameters
    ----------
    butler : `~butler.butler.Butler`
        The repository (read only).
    collection : `str`
        The output collection or run reported on.
    report : `~pipeline.execution.report.Report`
        Its counts and grouped errors.
    path : path-like
        The HTML file (written atomically).
    """
    page = Path(path)
    times = collect_quantum_times(butler, collection, report.tasks)
    plots = [
        (_histogram_png(times.wall, "wall time", "s"), "wall time"),
        (_histogram_png(times.cpu, "CPU time", "s"), "CPU time"),
        (_histogram_png(times.memory, "peak memory", "MiB"), "peak memory"),
    ]
    images = "".join(
        f'<img alt="{alt} per quantum" src="data:image/png;base64,{data}">'
        for data, alt in plots
        if data
    ) or "<p>No quantum metadata yet.</p>"
    title = f"pipetask report: {collection}"
    body = (
        f"<h1>{html.escape(title)}</h1>"
        f"<h2>Quanta per task</h2>{_counts_table(report)}"
        f'<h2>Time and memory per quantum</h2><div class="plots">{images}</div>'
        f'<h2>Failures, grouped by message</h2><div id="failures">'
        f"{_failures(butler, collection, report)}</div>"
        f"<h2>Pictures</h2>{_pictures(find_pictures(butler, collection), page)}"
    )
    text = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )
    page.parent.mkdir(parents=True, exist_ok=True)
    tmp = page.with_name(f".{page.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, page)
    return page
