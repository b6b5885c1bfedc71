"""BrightStarStamps storage: FITS and zarr round trips, sub-box and single-stamp reads."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from _stamps_factory import make_stamps
from astropy.io import fits

from butler import Butler, DatasetType, StorageClass
from butler.testing.formatter_tests import FormatterTests
from imaging.formatters import BrightStarStampsFitsFormatter, BrightStarStampsZarrFormatter
from imaging.geometry import Box
from imaging.stamps import BrightStarStamps
from imaging.stamps_io import (
    FitsStampsReader,
    StampsFormatError,
    ZarrStampsReader,
    read_stamps_fits,
    read_stamps_zarr,
    write_stamps_fits,
    write_stamps_zarr,
)
from imaging.storage_classes import STORAGE_CLASSES

STAMPS_CLASS = next(sc for sc in STORAGE_CLASSES if sc.name == "BrightStarStamps")
ZARR_CLASS = StorageClass(
    "BrightStarStampsZarr",
    "imaging.stamps.BrightStarStamps",
    "imaging.formatters.BrightStarStampsZarrFormatter",
    ("bbox", "indices", "planes"),
)


def _objects():
    return [
        make_stamps(),
        make_stamps(seed=3, n=1, normalized=False, variance=True, archive=False),
        make_stamps(seed=4, n=4, size=31, variance=True),
        BrightStarStamps([], innerRadius=40, outerRadius=50, nb90Rots=1),
    ]


class _StampsFormatterTests(FormatterTests):
    def make_objects(self):
        return _objects()

    def assert_same(self, read, written):
        assert type(read) is type(written)
        assert read.equals(written)
        for a, b in zip(read, written, strict=True):
            assert a.stamp_im.mask.planes == b.stamp_im.mask.planes

    def test_bbox(self, location):
        fs, _ = location
        stamps = make_stamps(seed=7, n=3, size=275, variance=True)
        path = self._path(location)
        self.formatter().write(stamps, fs, path)
        box = Box(100, 200, 100, 75)
        cut = self.formatter().read(fs, path, parameters={"bbox": (100, 200, 100, 75)})
        assert len(cut) == 3
        for a, b in zip(cut, stamps, strict=True):
            assert a.stamp_im.xy0 == (100, 200)
            sl = box.slices()
            np.testing.assert_array_equal(a.stamp_im.image, b.stamp_im.image[sl])
            np.testing.assert_array_equal(a.stamp_im.mask.array, b.stamp_im.mask.array[sl])
            np.testing.assert_array_equal(a.stamp_im.variance, b.stamp_im.variance[sl])
            assert a.archive_element == b.archive_element
            assert (a.gaiaId, a.gaiaGMag, a.position) == (b.gaiaId, b.gaiaGMag, b.position)
        one = self.formatter().read(fs, path, parameters={"indices": [2], "bbox": box})
        assert one.getGaiaIds() == [stamps[2].gaiaId]
        np.testing.assert_array_equal(one[0].stamp_im.image, stamps[2].stamp_im.image[sl])
        two = self.formatter().read(fs, path, parameters={"indices": [2, 0]})
        assert two.getGaiaIds() == [stamps[2].gaiaId, stamps[0].gaiaId]
        assert two[1].stamp_im.mask == stamps[0].stamp_im.mask
        from butler._errors import FormatterError  # noqa: F401 - the datastore wraps these

        with pytest.raises(StampsFormatError, match="outside"):
            self.formatter().read(fs, path, parameters={"bbox": (200, 0, 100, 10)})
        with pytest.raises(StampsFormatError, match="index 3"):
            self.formatter().read(fs, path, parameters={"indices": [3]})


class TestBrightStarStampsFitsFormatter(_StampsFormatterTests):
    formatter_class = BrightStarStampsFitsFormatter
    storage_class = STAMPS_CLASS


class TestBrightStarStampsZarrFormatter(_StampsFormatterTests):
    formatter_class = BrightStarStampsZarrFormatter
    storage_class = ZARR_CLASS


def test_fits_layout_is_lsst_like(tmp_path):
    stamps = make_stamps()
    path = tmp_path / "s.fits"
    write_stamps_fits(stamps, path)
    with fits.open(path) as hdul:
        primary = hdul[0].header
        assert primary["N_STAMPS"] == 3 and primary["STAMPCLS"] and primary["VERSION"] == 1
        assert [c.value for c in primary.cards if c.keyword == "GAIA_IDS"] == stamps.getGaiaIds()
        mags = [c.value for c in primary.cards if c.keyword == "G_MAGS"]
        assert mags == stamps.getMagnitudes()
        fluxes = [c.value for c in primary.cards if c.keyword == "ANNULAR_FLUXES"]
        assert fluxes[0] == stamps[0].annularFlux and fluxes[2] == stamps[2].annularFlux
        assert (primary["INNER_RADIUS"], primary["OUTER_RADIUS"], primary["NB_90_ROTS"]) == (
            5,
            10,
            2,
        )
        assert [h.name for h in hdul[2:]] == ["IMAGE", "MASK"] * 3
        assert [h.header["EXTVER"] for h in hdul[2:]] == [1, 1, 2, 2, 3, 3]
        assert hdul[3].header["MP_NO_DATA"] == stamps[0].stamp_im.mask.bit("NO_DATA")
    assert read_stamps_fits(path).equals(stamps)


def test_fits_errors(tmp_path):
    path = tmp_path / "plain.fits"
    fits.PrimaryHDU().writeto(path)
    with pytest.raises(StampsFormatError, match="STAMPCLS"):
        read_stamps_fits(path)
    good = tmp_path / "good.fits"
    write_stamps_fits(make_stamps(), good)
    with fits.open(good) as hdul:
        hdul[0].header["N_STAMPS"] = 4
        hdul.writeto(tmp_path / "bad.fits")
    with pytest.raises(StampsFormatError, match="N_STAMPS"):
        read_stamps_fits(tmp_path / "bad.fits")
    with pytest.raises(FileNotFoundError):
        read_stamps_fits(tmp_path / "missing.fits")


class _CountingFile(io.RawIOBase):
    def __init__(self, path):
        self._f = open(path, "rb")  # noqa: SIM115
        self.bytes_read = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=0):
        return self._f.seek(offset, whence)

    def tell(self):
        return self._f.tell()

    def readinto(self, buffer):
        n = self._f.readinto(buffer)
        self.bytes_read += n or 0
        return n

    def close(self):
        self._f.close()
        super().close()


def test_fits_partial_reads_read_only_what_they_need(tmp_path):
    stamps = make_stamps(seed=9, n=6, size=275)
    path = tmp_path / "s.fits"
    write_stamps_fits(stamps, path)
    size = os.path.getsize(path)
    with _CountingFile(path) as stream:
        sub = read_stamps_fits(stream, bbox=Box(0, 0, 100, 100))
        partial = stream.bytes_read
    np.testing.assert_array_equal(sub[5].stamp_im.image, stamps[5].stamp_im.image[:100, :100])
    # The box's 100 rows of each 275x275 HDU (one contiguous read each, not a seek per row)
    # plus the headers: 100/275 = 36% of the pixels, well under half of the file.
    assert partial < 0.45 * size, (partial, size)


class _CountingStore:
    """A zarr LocalStore that counts the bytes it returns."""

    @staticmethod
    def make(path, read_only):
        import zarr.storage

        class Store(zarr.storage.LocalStore):
            bytes_read = 0

            async def get(self, key, prototype, byte_range=None):
                value = await super().get(key, prototype, byte_range)
                if value is not None:
                    type(self).bytes_read += len(value)
                return value

            async def get_partial_values(self, prototype, key_ranges):
                values = await super().get_partial_values(prototype, key_ranges)
                type(self).bytes_read += sum(len(v) for v in values if v is not None)
                return values

        return Store(str(path), read_only=read_only)


def test_zarr_partial_reads_read_only_their_chunks(tmp_path):
    stamps = make_stamps(seed=9, n=6, size=275)
    for s in stamps:  # incompressible pixels, so that bytes read measure chunks read
        s.stamp_im.mask.array[:] = np.random.default_rng(1).integers(0, 2**31, (275, 275))
    write_stamps_zarr(stamps, _CountingStore.make(tmp_path / "z", read_only=False))
    full_store = _CountingStore.make(tmp_path / "z", read_only=True)
    type(full_store).bytes_read = 0
    assert read_stamps_zarr(full_store).equals(stamps)
    full = type(full_store).bytes_read
    box_store = _CountingStore.make(tmp_path / "z", read_only=True)
    type(box_store).bytes_read = 0
    sub = read_stamps_zarr(box_store, bbox=Box(100, 100, 100, 100))
    boxed = type(box_store).bytes_read
    np.testing.assert_array_equal(sub[3].stamp_im.image, stamps[3].stamp_im.image[100:200, 100:200])
    # One 100x100 chunk of 9 per stamp and plane (plus the small tables and shard indexes).
    assert boxed < full / 6, (boxed, full)
    one_store = _CountingStore.make(tmp_path / "z", read_only=True)
    type(one_store).bytes_read = 0
    one = read_stamps_zarr(one_store, indices=[4])
    assert one.getGaiaIds() == [stamps[4].gaiaId]
    assert type(one_store).bytes_read < full / 4


def test_stamps_through_a_real_butler(tmp_path):
    Butler.create(tmp_path / "repo")
    butler = Butler(tmp_path / "repo", run="r")
    butler.registry.insert_dimension_records("instrument", [{"name": "Cam"}])
    butler.registry.insert_dimension_records("detector", [{"instrument": "Cam", "id": 1}])
    butler.storage_classes.register(ZARR_CLASS)
    stamps = make_stamps(size=275)
    for name, sc in (("brightStarStamps", "BrightStarStamps"), ("stampsZarr", ZARR_CLASS.name)):
        dtype = DatasetType.make(name, ["instrument", "detector"], sc, butler.universe)
        butler.registry.register_dataset_type(dtype)
        butler.put(stamps, dtype, {"instrument": "Cam", "detector": 1})
        back = butler.get(name, {"instrument": "Cam", "detector": 1}, collections="r")
        assert back.equals(stamps)
        cut = butler.get(
            name,
            {"instrument": "Cam", "detector": 1},
            collections="r",
            parameters={"bbox": Box(0, 100, 100, 100)},
        )
        np.testing.assert_array_equal(
            cut[0].stamp_im.image, stamps[0].stamp_im.image[100:200, 0:100]
        )


def test_a_reader_opens_the_stamps_once_for_many_parts(tmp_path, monkeypatch):
    from imaging import stamps_io

    Butler.create(tmp_path / "repo")
    butler = Butler(tmp_path / "repo", run="r")
    butler.registry.insert_dimension_records("instrument", [{"name": "Cam"}])
    butler.registry.insert_dimension_records("detector", [{"instrument": "Cam", "id": 1}])
    butler.storage_classes.register(ZARR_CLASS)
    stamps = make_stamps(seed=7, n=4, size=275, variance=True)
    opened = []
    # a local zarr group is opened without zarr (`imaging._shard_reader`), from its attributes
    for module, name in ((stamps_io.fits, "open"), (stamps_io, "read_group_attributes")):
        real = getattr(module, name)
        monkeypatch.setattr(
            module, name, lambda *a, _real=real, _n=name, **k: opened.append(_n) or _real(*a, **k)
        )
    boxes = [Box(0, 0, 100, 100), Box(100, 200, 100, 75), Box(90, 90, 30, 20)]
    for name, sc, call in (
        ("brightStarStamps", "BrightStarStamps", "open"),
        ("stampsZarr", ZARR_CLASS.name, "read_group_attributes"),
    ):
        dtype = DatasetType.make(name, ["instrument", "detector"], sc, butler.universe)
        butler.registry.register_dataset_type(dtype)
        ref = butler.put(stamps, dtype, {"instrument": "Cam", "detector": 1})
        info = butler.registry.get_stored_info([ref])[ref.id]
        opened.clear()
        with butler.datastore.open_reader(info, ref=ref) as reader:
            parts = [reader.read({"bbox": box, "indices": [3, 1]}) for box in boxes]
        assert opened == [call]  # the table and metadata parsed once for the three parts
        for box, part in zip(boxes, parts, strict=True):
            alone = butler.get(ref, parameters={"bbox": box, "indices": [3, 1]})
            assert part.equals(alone)
            np.testing.assert_array_equal(
                part[0].stamp_im.variance, stamps[3].stamp_im.variance[box.slices()]
            )
        assert len(opened) == 1 + len(boxes)  # a get opens the file every time


@pytest.mark.parametrize("kind", ["fits", "zarr"])
def test_a_read_of_some_planes_reads_only_those(tmp_path, kind):
    """``planes``: a stack needs image and mask only; the variance is neither read nor kept."""
    stamps = make_stamps(seed=5, n=4, size=275, variance=True)
    path = tmp_path / f"s.{kind}"
    if kind == "fits":
        write_stamps_fits(stamps, path)
        reader = FitsStampsReader(path)
    else:
        write_stamps_zarr(stamps, str(path))
        reader = ZarrStampsReader(str(path))
    with reader:
        box = Box(100, 0, 100, 100)
        part = reader.read(bbox=box, indices=[1, 3], planes=("image", "mask"))
        assert not part.use_variance
        assert part.use_mask
        np.testing.assert_array_equal(
            part[1].stamp_im.image, stamps[3].stamp_im.image[0:100, 100:200]
        )
        np.testing.assert_array_equal(
            part[1].stamp_im.mask.array, stamps[3].stamp_im.mask.array[0:100, 100:200]
        )
        only_image = reader.read(indices=[0], planes=["image"])
        assert not only_image.use_mask and not only_image.use_variance
        assert reader.read(indices=[0]).use_variance  # all stored planes by default
        for wrong in (("mask",), ("image", "weight")):
            with pytest.raises(StampsFormatError, match="planes"):
                reader.read(planes=wrong)


def test_a_read_of_some_planes_through_the_butler(tmp_path):
    Butler.create(tmp_path / "repo")
    butler = Butler(tmp_path / "repo", run="r")
    butler.registry.insert_dimension_records("instrument", [{"name": "Cam"}])
    butler.registry.insert_dimension_records("detector", [{"instrument": "Cam", "id": 1}])
    butler.storage_classes.register(ZARR_CLASS)
    stamps = make_stamps(seed=6, n=2, size=275, variance=True)
    data_id = {"instrument": "Cam", "detector": 1}
    for name, sc in (("brightStarStamps", "BrightStarStamps"), ("stampsZarr", ZARR_CLASS.name)):
        dtype = DatasetType.make(name, ["instrument", "detector"], sc, butler.universe)
        butler.registry.register_dataset_type(dtype)
        butler.put(stamps, dtype, data_id)
        part = butler.get(
            name,
            data_id,
            collections="r",
            parameters={"bbox": Box(0, 0, 100, 100), "planes": ["image", "mask"]},
        )
        assert not part.use_variance
        np.testing.assert_array_equal(part[1].stamp_im.image, stamps[1].stamp_im.image[:100, :100])


def test_zarr_group_metadata_is_written_once():
    import zarr.storage

    writes: dict[str, int] = {}

    class Store(zarr.storage.MemoryStore):
        async def set(self, key, value, byte_range=None):
            writes[key] = writes.get(key, 0) + 1
            await super().set(key, value)

    stamps = make_stamps(seed=3, n=2, size=31)
    store = Store()
    write_stamps_zarr(stamps, store, atomic=True)  # as the datastore's formatter does
    assert writes["zarr.json"] == 1
    assert read_stamps_zarr(store).equals(stamps)
    writes.clear()
    store = Store()
    write_stamps_zarr(stamps, store)  # in place: the attributes last
    assert writes["zarr.json"] == 2
    assert read_stamps_zarr(store).equals(stamps)


def test_zarr_planes_written_directly_read_back_exactly_through_zarr(tmp_path, monkeypatch):
    import zarr
    import zarr.storage

    from imaging import stamps_io

    written = []
    real = stamps_io.write_plane_shard

    def spy(root, name, data, layout):
        written.append(name)
        real(root, name, data, layout)

    monkeypatch.setattr(stamps_io, "write_plane_shard", spy)
    stamps = make_stamps(seed=5, n=4, size=231, variance=True)  # 231: partial edge chunks
    rng = np.random.default_rng(2)
    stamps[0].stamp_im.image[:3, :3] = -0.0  # kept as written (zarr drops fill-valued chunks)
    stamps[2].stamp_im.image[5, 7] = np.nan
    stamps[3].stamp_im.mask.array[:] = rng.integers(0, 2**31, (231, 231))
    write_stamps_zarr(stamps, zarr.storage.LocalStore(str(tmp_path / "direct")), atomic=True)
    assert sorted(written) == ["image", "mask", "variance"]
    write_stamps_zarr(stamps, zarr.storage.MemoryStore(), atomic=True)  # through zarr
    assert sorted(written) == ["image", "mask", "variance"]  # not a local directory
    group = zarr.open_group(str(tmp_path / "direct"), mode="r")
    for name, plane in (
        ("image", [s.stamp_im.image for s in stamps]),
        ("mask", [s.stamp_im.mask.array for s in stamps]),
        ("variance", [s.stamp_im.variance for s in stamps]),
    ):
        expected = np.stack(plane)
        got = group[name][...]
        assert got.dtype == expected.dtype.newbyteorder("<")
        np.testing.assert_array_equal(got, expected)
        assert np.array_equal(np.signbit(got), np.signbit(expected))
    assert read_stamps_zarr(str(tmp_path / "direct")).equals(stamps)
    sub = read_stamps_zarr(str(tmp_path / "direct"), bbox=Box(150, 80, 81, 100))
    np.testing.assert_array_equal(
        sub[3].stamp_im.mask.array, stamps[3].stamp_im.mask.array[80:180, 150:231]
    )
