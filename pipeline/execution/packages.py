"""The versions of the installed Python distributions, recorded once per run.

`package_versions` reads them from the names of the ``*.dist-info`` and ``*.egg-info``
directories on `sys.path` (``numpy-2.4.6.dist-info``), the first of each name winning as
for imports: the same name and version `importlib.metadata` reports (tested), without
parsing every distribution's ``METADATA`` file. That parsing took 50-220 ms per run here,
most of the client-side cost of a small run. No state.
"""

from __future__ import annotations

import os
import re
import sys

__all__ = ["normalize_name", "package_versions"]

_SUFFIXES = (".dist-info", ".egg-info")
# egg-info directory names may carry the Python version: "foo-1.0-py3.11.egg-info"
_PY_TAG = re.compile(r"-py\d+(\.\d+)*$")


def normalize_name(name: str) -> str:
    """Return a distribution name normalized as in PEP 503 (``Foo_Bar.baz`` -> ``foo-bar-baz``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def package_versions() -> dict[str, str]:
    """Return ``{normalized distribution name: version}``, plus ``python``, sorted by name."""
    versions: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:  # a zip file, a missing directory
            continue
        for name in names:
            if not name.endswith(_SUFFIXES):
                continue
            stem = name.rsplit(".", 1)[0]
            project, sep, version = stem.partition("-")
            if not sep or not version:
                continue
            if name.endswith(".egg-info"):
                version = _PY_TAG.sub("", version)
            versions.setdefault(normalize_name(project), version)
    versions["python"] = sys.version.split()[0]
    return dict(sorted(versions.items()))
