"""The built-in formatters, through the formatter conformance suite."""

from __future__ import annotations

import dataclasses
from typing import Any

import fsspec
import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table
from zarr.storage import WrapperStore

from butler._errors import FormatterError
from butler.datastore.formatters import (
    FitsArrayFormatter,
    FitsTableFormatter,
    JsonFormatter,
    NpyFormatter,
    YamlFormatter,
    ZarrArrayFormatter,
    bbox_slices,
)
from butler.storage_class import StorageClass
from butler.testing.formatter_tests import FormatterTests


@dataclasses.dataclass
class Point:
    x: float
    y: float

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Point:
        return cls(**data)


POINT = f"{Point.__module__}.Point"
PLAIN = [{"a": 1, "b": [1.5, "two", None], "c": {"nested": True}}, [1, 2, 3], "text", 3.25]


def _sc(name, pytype, formatter, parameters=()):
    return StorageClass(name, pytype, formatter.dotted_name(), tuple(parameters))


class TestYaml(FormatterTests):
    formatter_class = YamlFormatter
    storage_class = _sc("StructuredDataDict", "builtins.dict", YamlFormatter)

    def make_objects(self):
        return PLAIN


class TestJson(TestYaml):
    formatter_class = JsonFormatter
    storage_class = _sc("JsonDict", "builtins.dict", JsonFormatter)


class TestYamlFromDict(FormatterTests):
    formatter_class = YamlFormatter
    storage_class = _sc("Point", POINT, YamlFormatter)

    def make_objects(self):
        return [Point(1.0, -2.5)]


class TestJsonFromDict(TestYamlFromDict):
    formatter_class = JsonFormatter
    storage_class = _sc("Point", POINT, JsonFormatter)


def _arrays():
    rng = np.random.default_rng(5)
    return [
        rng.standard_normal((70, 90)).astype(np.float32),
        rng.standard_normal((3, 20, 30)),
        rng.integers(-30000, 30000, (16, 17)).astype(np.int16),
        rng.integers(0, 65535, (16, 17)).astype(np.uint16),
        rng.integers(-(2**40), 2**40, (5, 6)).astype(np.int64),
        np.arange(11, dtype=np.int32),
    ]


class ArrayTests(FormatterTests):
    def make_objects(self):
        return _arrays()

    def assert_same(self, read, written):
        assert type(read) is np.ndarray
        assert read.dtype == written.dtype and read.dtype.isnative
        assert read.shape == written.shape
        np.testing.assert_array_equal(read, written)


class TestZarr(ArrayTests):
    formatter_class = ZarrArrayFormatter
    storage_class = _sc("NumpyArray", "numpy.ndarray", ZarrArrayFormatter, ["bbox"])

    def make_objects(self):
        return _arrays() + [
            np.array([True, False]),
            np.array(7.5, dtype=np.float32),
            np.zeros((0, 4)),
        ]


class TestFitsArray(ArrayTests):
    formatter_class = FitsArrayFormatter
    storage_class = _sc("FitsImage", "numpy.ndarray", FitsArrayFormatter, ["bbox"])

    def make_objects(self):
        return _arrays() + [np.arange(12, dtype=np.uint8).reshape(3, 4)]


class TestNpy(ArrayTests):
    formatter_class = NpyFormatter
    storage_class = _sc("NpyArray", "numpy.ndarray", NpyFormatter, ["bbox"])

    def make_objects(self):
        return _arrays() + [np.array([True, False]), np.zeros((0, 4))]


class TestFitsTable(FormatterTests):
    formatter_class = FitsTableFormatter
    storage_class = _sc("AstropyTable", "astropy.table.Table", FitsTableFormatter)

    def make_objects(self):
        table = Table(
            {
                "id": np.array([1, 2, 3], dtype=np.int64),
                "flux": np.array([1.5, 2.5, -3.0], dtype=np.float32),
                "name": np.array(["a", "bb", "ccc"]),
                "flag": np.array([True, False, True]),
            }
        )
        table["flux"].unit = u.nJy
        table["flux"].description = "PSF flux"
        table.meta["BAND"] = "r"
        table.meta["EXPTIME"] = 30.0
        return [table, Table({"x": np.zeros(0)})]

    def assert_same(self, read, written):
        assert type(read) is Table
        assert read.colnames == written.colnames
        for name in written.colnames:
            assert read[name].dtype == written[name].dtype
            assert read[name].unit == written[name].unit
            assert read[name].description == written[name].description
            np.testing.assert_array_equal(read[name], written[name])
        for key, value in written.meta.items():
            assert read.meta[key] == value


# -- partial reads ------------------------------------------------------------------


class RecordingStore(WrapperStore):
    """A zarr store wrapper that records every key read (a real store, not a mock)."""

    def __init__(self, store, log):
        super().__init__(store)
        self.log = log

    def _with_store(self, store):
        return type(self)(store, self.log)

    async def get(self, key, prototype, byte_range=None):
        self.log.append(key)
        return await super().get(key, prototype, byte_range)


class RecordingZarrFormatter(ZarrArrayFormatter):
    chunk_shape = (64, 64)
    log: list[str] = []

    def _store(self, fs, path, *, read_only):
        return RecordingStore(super()._store(fs, path, read_only=read_only), self.log)


@pytest.mark.parametrize("protocol", ["file", "memory"])
def test_zarr_bbox_reads_only_needed_chunks(tmp_path, protocol):
    fs = fsspec.filesystem(protocol)
    path = str(tmp_path / "img.zarr") if protocol == "file" else f"/t-{tmp_path.name}/img.zarr"
    image = np.arange(256 * 320, dtype=np.float32).reshape(256, 320)  # 4 x 5 chunks of 64
    formatter = RecordingZarrFormatter(TestZarr.storage_class)
    formatter.log = []
    formatter.write(image, fs, path)
    formatter.log.clear()
    cut = formatter.read(fs, path, parameters={"bbox": (70, 10, 60, 40)})  # x 70-130, y 10-50
    np.testing.assert_array_equal(cut, image[10:50, 70:130])
    chunks = sorted(k for k in formatter.log if k.startswith("c."))
    assert chunks == ["c.0.1", "c.0.2"]
    formatter.log.clear()
    formatter.read(fs, path)
    assert len([k for k in formatter.log if k.startswith("c.")]) == 20
    if protocol == "memory":
        fs.rm(path.rsplit("/", 1)[0], recursive=True)


def test_zarr_chunk_shape_of_big_image(tmp_path):
    import zarr

    fs = fsspec.filesystem("file")
    path = str(tmp_path / "big.zarr")
    image = np.random.default_rng(3).standard_normal((1100, 2100)).astype(np.float32)
    ZarrArrayFormatter(TestZarr.storage_class).write(image, fs, path)
    array = zarr.open_array(path, mode="r")
    assert array.chunks == (499, 2100)  # ~4 MiB bands of whole rows, last one padded
    assert array.compressors == ()
    np.testing.assert_array_equal(array[...], image)  # the raw fast path wrote valid zarr


def test_zarr_chunk_policy():
    formatter = ZarrArrayFormatter(TestZarr.storage_class)
    assert formatter._chunks((4096, 4096), 4) == (256, 4096)
    assert formatter._chunks((3, 100, 50), 8) == (1, 100, 50)
    assert formatter._chunks((10, 2_000_000), 4) == (10, 1024)  # rows too long: tiles
    assert formatter._chunks((5_000_000,), 4) == (1 << 20,)
    assert formatter._chunks((), 4) == ()


def test_zarr_reads_arrays_written_by_zarr_with_missing_chunks(tmp_path):
    import zarr

    image = np.zeros((300, 200), dtype=np.int32)
    image[250:, 150:] = 7  # only one chunk is not all fill value, so zarr skips the others
    path = str(tmp_path / "z.zarr")
    zarray = zarr.create_array(
        path, shape=image.shape, dtype=image.dtype, chunks=(64, 64), compressors=None, fill_value=0
    )
    zarray[...] = image
    assert len(list((tmp_path / "z.zarr" / "c").rglob("*"))) < 10  # "/" keys, dirs too
    back = ZarrArrayFormatter(TestZarr.storage_class).read(fsspec.filesystem("file"), path)
    np.testing.assert_array_equal(back, image)


def test_fits_section_bbox_on_big_endian_file(tmp_path):
    fs = fsspec.filesystem("file")
    path = str(tmp_path / "a.fits")
    image = np.arange(100 * 80, dtype=">f8").reshape(100, 80)
    FitsArrayFormatter(TestFitsArray.storage_class).write(image, fs, path)
    cut = FitsArrayFormatter(TestFitsArray.storage_class).read(
        fs, path, parameters={"bbox": (10, 20, 5, 3)}
    )
    assert cut.dtype == np.float64 and cut.dtype.isnative
    np.testing.assert_array_equal(cut, image[20:23, 10:15])


def test_bbox_slices_validation():
    assert bbox_slices((1, 2, 3, 4), (10, 10)) == (slice(2, 6), slice(1, 4))
    assert bbox_slices((1, 2, 3, 4), (2, 10, 10))[0] == slice(None)
    assert bbox_slices(slice(1, 3), (5, 5)) == (slice(1, 3), slice(None))
    for bad in [(0, 0, 11, 1), (-1, 0, 1, 1), "abc", (1, 2, 3), (slice(0, 3, 2),)]:
        with pytest.raises(FormatterError):
            bbox_slices(bad, (10, 10))
    with pytest.raises(FormatterError, match="2-D"):
        bbox_slices((0, 0, 1, 1), (10,))


def test_unserializable_objects_are_formatter_errors(tmp_path):
    fs = fsspec.filesystem("file")
    with pytest.raises(FormatterError, match="JSON"):
        JsonFormatter(TestJson.storage_class).write({"a": object()}, fs, str(tmp_path / "x.json"))
    with pytest.raises(FormatterError, match="YAML"):
        YamlFormatter(TestYaml.storage_class).write({"a": object()}, fs, str(tmp_path / "x.yaml"))
