"""pipeline/packages.py: versions from dist-info names agree with importlib.metadata."""

from __future__ import annotations

import importlib.metadata
import sys

from pipeline.execution.packages import normalize_name, package_versions


def test_versions_match_importlib_metadata():
    expected: dict[str, str] = {}
    for dist in importlib.metadata.distributions():  # first on sys.path wins, as for imports
        expected.setdefault(normalize_name(dist.metadata["Name"]), dist.version)
    versions = package_versions()
    assert versions.pop("python") == sys.version.split()[0]
    assert versions == expected
    assert {"numpy", "dask", "skyquanta"} <= set(versions)


def test_egg_info_and_shadowing(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "Foo_Bar-2.0.dist-info").mkdir(parents=True)
    (second / "foo.bar-1.0.dist-info").mkdir(parents=True)  # shadowed by the first entry
    (second / "old_pkg-0.3-py3.11.egg-info").mkdir()
    (second / "not-a-dist").mkdir()
    (second / "broken.dist-info").mkdir()  # no version in the name: ignored
    monkeypatch.setattr(sys, "path", [str(first), str(tmp_path / "missing"), str(second)])
    versions = package_versions()
    assert versions["foo-bar"] == "2.0"
    assert versions["old-pkg"] == "0.3"
    assert set(versions) == {"foo-bar", "old-pkg", "python"}


def test_normalize_name():
    assert normalize_name("Foo__Bar.baz-Qux") == "foo-bar-baz-qux"
