"""Conformance tests every formatter passes.

Subclass `FormatterTests`, name the subclass ``Test...``, and set
`FormatterTests.formatter_class` and `FormatterTests.storage_class`; implement
`FormatterTests.make_objects` (the objects to round-trip) and, if the
default ``==`` is not right, `FormatterTests.assert_same`. Formatters that
support ``bbox`` also get `FormatterTests.test_bbox` (override
`FormatterTests.make_image` for a non-array type).

Every test runs on the local filesystem, the fsspec memory filesystem and an S3
server (the ``s3_bucket`` fixture of the test suite, a real moto server; that case
skips where the suite has no such fixture or the server cannot run).
The atomicity contract checked here is the formatter's half of it: a write
touches nothing but the path it is given (so the datastore's rename of that
one path publishes everything) and does not need the path to exist first.
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import fsspec
import numpy as np
import pytest

from .._errors import FormatterError
from ..datastore.formatter import Formatter
from ..storage_class import StorageClass

__all__ = ["FormatterTests"]


class FormatterTests:
    """Tests of the formatter contract."""

    formatter_class: ClassVar[type[Formatter]]
    storage_class: ClassVar[StorageClass]

    def make_objects(self) -> list[Any]:
        """Return objects that must round-trip exactly."""
        raise NotImplementedError

    def assert_same(self, read: Any, written: Any) -> None:
        """Assert that ``read`` equals ``written`` (type, and values)."""
        assert type(read) is type(written)
        assert read == written

    def make_image(self) -> np.ndarray:
        """Return a 2-D array for the ``bbox`` test."""
        return np.arange(37 * 53, dtype=np.float32).reshape(37, 53)

    @pytest.fixture(params=["local", "memory", "s3"])
    def location(self, request, tmp_path: Path) -> Iterator[tuple[fsspec.AbstractFileSystem, str]]:
        """Yield a fresh directory on the local or the memory filesystem, or on S3."""
        if request.param == "local":
            fs = fsspec.filesystem("file")
            yield fs, str(tmp_path / "dir")
            return
        if request.param == "s3":
            try:
                bucket = request.getfixturevalue("s3_bucket")
            except pytest.FixtureLookupError:
                pytest.skip("no s3_bucket fixture in this test suite")
            server = request.getfixturevalue("s3_server")
            yield server.filesystem(), f"{bucket}/fmt"
            return
        fs = fsspec.filesystem("memory")
        root = f"/fmt-{uuid.uuid4().hex}"
        yield fs, root
        if fs.exists(root):
            fs.rm(root, recursive=True)

    def formatter(self) -> Formatter:
        """Return a new formatter for `storage_class`."""
        return self.formatter_class(self.storage_class)

    def _path(self, location: tuple[fsspec.AbstractFileSystem, str], name: str = "obj") -> str:
        fs, root = location
        fs.makedirs(root, exist_ok=True)
        return posixpath.join(root, name + self.formatter_class.extension)

    def test_class_attributes(self):
        """Extension, default formatter and parameters are consistent."""
        assert self.formatter_class.extension.startswith(".")
        assert self.storage_class.formatter == self.formatter_class.dotted_name()
        assert set(self.storage_class.parameters) <= set(self.formatter_class.supported_parameters)

    def test_round_trip(self, location):
        """Every object of `make_objects` reads back the same."""
        fs, root = location
        for i, obj in enumerate(self.make_objects()):
            path = self._path(location, f"obj{i}")
            self.formatter().write(obj, fs, path)
            assert fs.isdir(path) == self.formatter_class.is_directory
            self.assert_same(self.formatter().read(fs, path), obj)

    def test_writes_only_its_path(self, location):
        """A write creates its path and nothing beside it."""
        fs, root = location
        path = self._path(location)
        self.formatter().write(self.make_objects()[0], fs, path)
        assert [p.rstrip("/") for p in fs.ls(root, detail=False)] == [path]

    def test_missing_file(self, location):
        """Reading a missing path raises an `OSError`."""
        fs, _ = location
        with pytest.raises(OSError):
            self.formatter().read(fs, self._path(location, "missing"))

    def test_unsupported_parameter(self, location):
        """An unknown read parameter is a FormatterError naming it."""
        fs, _ = location
        path = self._path(location)
        self.formatter().write(self.make_objects()[0], fs, path)
        with pytest.raises(FormatterError, match="no_such_parameter"):
            self.formatter().read(fs, path, parameters={"no_such_parameter": 1})

    def test_bbox(self, location):
        """``bbox`` as (x0, y0, width, height) or slices reads the right cut-out."""
        if "bbox" not in self.formatter_class.supported_parameters:
            pytest.skip("formatter has no bbox parameter")
        fs, _ = location
        image = self.make_image()
        path = self._path(location)
        formatter = self.formatter()
        formatter.write(image, fs, path)
        cut = formatter.read(fs, path, parameters={"bbox": (3, 5, 20, 11)})
        np.testing.assert_array_equal(cut, image[5:16, 3:23])
        assert cut.dtype == image.dtype
        by_slices = formatter.read(fs, path, parameters={"bbox": (slice(2, 4), slice(0, 53))})
        np.testing.assert_array_equal(by_slices, image[2:4])
        with pytest.raises(FormatterError, match="outside"):
            formatter.read(fs, path, parameters={"bbox": (50, 0, 10, 1)})
