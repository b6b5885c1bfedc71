"""Start-up of the command lines: ``--help`` imports none of the heavy machinery (registry,
SQLAlchemy, numpy, dask, astropy), and the lazily imported public names still import."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Modules a command's ``--help`` must not import (each costs tens to hundreds of ms).
HEAVY = ("sqlalchemy", "numpy", "dask", "distributed", "astropy", "butler.registry", "fsspec")

#: Runs one console-script entry point with the given arguments, then prints the heavy
#: modules it imported.
PROBE = """
import importlib, sys
module, args = sys.argv[1], sys.argv[2:]
sys.argv = [module, *args]
try:
    importlib.import_module(module).main()
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
heavy = {heavy!r}
print("HEAVY:", *(name for name in heavy if name in sys.modules))
"""


def _heavy_imports(module: str, *args: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), module, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Usage:" in out.stdout, out.stdout  # the help itself is intact
    return out.stdout.rpartition("HEAVY:")[2].split()


@pytest.mark.parametrize(
    "command",
    [
        ("pipeline.cli", "--help"),
        ("pipeline.cli", "run", "--help"),
        ("butler.cli", "--help"),  # lists the plug-in commands (imaging) too
        ("butler.cli", "query-collections", "--help"),
    ],
    ids=lambda c: " ".join(c),
)
def test_help_imports_no_heavy_module(command):
    assert _heavy_imports(*command) == []


def test_public_names_still_import():
    import butler
    import pipeline

    for package in (butler, pipeline):
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"
        assert set(package.__all__) <= set(dir(package))
    from butler import Butler, CollectionType
    from pipeline import Config, QuantumGraph

    assert Butler.__module__ == "butler.butler" and CollectionType.RUN
    assert Config.__module__.startswith("pipeline.config") and QuantumGraph.load
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        pipeline.NoSuchThing  # noqa: B018
