"""Knowing when data is wrong: sizes always, checksums on request, lost zarr chunks.

Each test damages a real repository's files the way a disk, a user or a bad copy does, and
reads back through the Butler (and the limited butler a worker uses).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import fsspec
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from butler import ArtifactIntegrityError, Butler, DatasetRef, DatasetType, FormatterError
from butler.cli import main
from butler.datastore.formatters import FitsArrayFormatter, ZarrArrayFormatter
from butler.datastore.integrity import StreamDigest, digest
from butler.storage_class import StorageClass

IMAGE = np.random.default_rng(3).normal(1000.0, 30.0, (512, 512)).astype(np.float32)
STORAGE_CLASS = StorageClass(
    "NumpyArray", "numpy.ndarray", ZarrArrayFormatter.dotted_name(), ("bbox",)
)


def _repo(tmp_path: Path, *, checksums: bool) -> Butler:
    root = tmp_path / "repo"
    args = ["create", str(root)] + (["--checksums"] if checksums else [])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((root / "butler.yaml").read_text())
    config["datastore"]["formatters"] = {
        "fits_img": "butler.datastore.formatters.FitsArrayFormatter"
    }
    (root / "butler.yaml").write_text(yaml.safe_dump(config))
    butler = Butler(root, run="run")
    butler.registry.insert_dimension_records("instrument", [{"name": "Cam"}])
    for name in ("fits_img", "zarr_img"):
        butler.registry.register_dataset_type(
            DatasetType.make(name, ["instrument"], "NumpyArray", butler.universe)
        )
    return butler


def _put(butler: Butler, name: str):
    ref = butler.put(IMAGE, name, instrument="Cam")
    return ref, Path(butler.get_uri(ref))


def _flip(path: Path, offset: int, n: int = 4096) -> None:
    """Invert ``n`` bytes of a file in place (its size is unchanged)."""
    with open(path, "r+b") as stream:
        stream.seek(offset)
        data = bytearray(stream.read(n))
        stream.seek(offset)
        stream.write(bytes(b ^ 0xFF for b in data))


def _chunks(zarr_dir: Path) -> list[Path]:
    return sorted(p for p in zarr_dir.rglob("*") if p.is_file() and p.name != "zarr.json")


@pytest.mark.parametrize("name", ["fits_img", "zarr_img"])
@pytest.mark.parametrize("damage", ["truncate", "extend"])
def test_changed_size_is_an_error_naming_dataset_and_file(tmp_path, name, damage):
    butler = _repo(tmp_path, checksums=False)
    ref, path = _put(butler, name)
    target = path if path.is_file() else _chunks(path)[0]
    size = target.stat().st_size
    with open(target, "r+b") as stream:
        stream.truncate(size - 4096 if damage == "truncate" else size + 10)
    with pytest.raises(ArtifactIntegrityError, match=name) as info:
        butler.get(ref)
    assert str(path) in str(info.value) and "bytes" in str(info.value)
    limited = butler.limited()  # a worker reading the same record
    stored = butler.registry.get_stored_info([ref])[ref.id]
    with pytest.raises(ArtifactIntegrityError, match=name):
        limited.get(ref, info=stored)


def test_deleted_zarr_chunk_is_an_error_not_zeros(tmp_path):
    butler = _repo(tmp_path, checksums=False)
    ref, path = _put(butler, "zarr_img")
    lost = _chunks(path)[-1]
    lost.unlink()
    with pytest.raises(ArtifactIntegrityError, match="zarr_img"):
        butler.get(ref)
    # Even where no size was recorded, the array says it was written in full.
    stored = butler.registry.get_stored_info([ref])[ref.id]
    unsized = type(stored)(stored.dataset_id, stored.path, stored.formatter, stored.storage_class)
    with pytest.raises(FormatterError, match=f"{lost.name}.*missing"):
        butler.datastore.get(unsized)
    with pytest.raises(FormatterError, match="missing"):  # a cut-out touching the lost chunk
        butler.datastore.get(unsized, parameters={"bbox": (0, 500, 10, 10)})


@pytest.mark.parametrize("name", ["fits_img", "zarr_img"])
def test_checksums_catch_flipped_bytes(tmp_path, name):
    butler = _repo(tmp_path, checksums=True)
    ref, path = _put(butler, name)
    stored = butler.registry.get_stored_info([ref])[ref.id]
    assert stored.checksum and stored.checksum.startswith("xxh3_128:")
    assert stored.file_size == sum(
        p.stat().st_size
        for p in ([path] if path.is_file() else _chunks(path) + [path / "zarr.json"])
    )
    np.testing.assert_array_equal(butler.get(ref), IMAGE)
    target = path if path.is_file() else _chunks(path)[0]
    _flip(target, offset=target.stat().st_size // 2)
    with pytest.raises(ArtifactIntegrityError, match="checksum") as info:
        butler.get(ref)
    assert name in str(info.value) and str(path) in str(info.value)
    with pytest.raises(ArtifactIntegrityError, match="checksum"):
        butler.limited().get(ref, info=stored)


def test_without_checksums_flipped_bytes_pass_unseen(tmp_path):
    """Why the option exists: the size alone cannot see a flip."""
    butler = _repo(tmp_path, checksums=False)
    ref, path = _put(butler, "fits_img")
    assert butler.registry.get_stored_info([ref])[ref.id].checksum is None
    _flip(path, offset=path.stat().st_size // 2)
    assert not np.array_equal(butler.get(ref), IMAGE)


def test_worker_outputs_carry_checksums_back_to_the_client(tmp_path):
    """A limited butler's put records the checksum, and it survives the trip to the client."""
    from pipeline.execution.worker import QuantumOutcome

    butler = _repo(tmp_path, checksums=True)
    limited = butler.limited()
    dtype = butler.registry.get_dataset_type("zarr_img")
    ref = DatasetRef.make(dtype, {"instrument": "Cam"}, "worker_run")
    info = limited.put(IMAGE, ref)
    assert info.checksum and info.file_size > IMAGE.nbytes
    outcome = pickle.loads(pickle.dumps(QuantumOutcome(1, "succeeded", (info,))))
    assert outcome.written == (info,)


def test_ingest_records_size_and_checksum(tmp_path):
    butler = _repo(tmp_path, checksums=True)
    source = tmp_path / "outside.npy"
    np.save(source, IMAGE)
    dtype = butler.registry.get_dataset_type("zarr_img")
    ref = DatasetRef.make(dtype, {"instrument": "Cam"}, "ingested")
    butler.ingest(
        [(ref, str(source))], transfer="copy", formatter="butler.datastore.formatters.NpyFormatter"
    )
    stored = butler.registry.get_stored_info([ref])[ref.id]
    assert stored.file_size == os.path.getsize(source) and stored.checksum
    _flip(Path(butler.get_uri(ref)), offset=1024)
    with pytest.raises(ArtifactIntegrityError, match="checksum"):
        butler.get(ref)


# -- checksums hashed as the bytes are written and read ------------------------------------


@pytest.mark.parametrize("name", ["fits_img", "zarr_img"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.filterwarnings("ignore:non-ASCII characters")
def test_streamed_checksums_catch_flips_anywhere(tmp_path, name, where):
    """The put hashes as it writes and the get as it reads: a flip in any byte is seen.

    FITS: the header, the data and the block padding after it (which the reader skips);
    zarr: the first chunk, the metadata document, and the edge of the last chunk.
    """
    butler = _repo(tmp_path, checksums=True)
    ref, path = _put(butler, name)
    stored = butler.registry.get_stored_info([ref])[ref.id]
    # What put recorded is the digest of the bytes on disk, read back independently.
    assert stored.checksum == digest(fsspec.filesystem("file"), str(path))
    if path.is_file():
        size = path.stat().st_size
        target, offset = path, {"first": 10, "middle": size // 2, "last": size - 50}[where]
    else:
        files = _chunks(path) + [path / "zarr.json"]
        target = {"first": files[0], "middle": files[-1], "last": files[-2]}[where]
        offset = {"first": 0, "middle": 40, "last": target.stat().st_size - 8}[where]
    _flip(target, offset, n=4)
    with pytest.raises(ArtifactIntegrityError, match="checksum"):
        butler.get(ref)


class _ManyChunks(ZarrArrayFormatter):
    chunk_bytes = 4 * 53 * 3  # three rows of 53 float32 per chunk: 13 chunks, the last partial


@pytest.mark.parametrize("formatter_class", [_ManyChunks, FitsArrayFormatter])
def test_stream_digest_is_the_digest_of_the_files(tmp_path, formatter_class):
    """Fed while writing and while reading, it equals `digest` of the files (chunk keys
    c.10.0 sort before c.2.0: the order must be the digest's, not the write order)."""
    fs = fsspec.filesystem("file")
    path = str(tmp_path / f"img{formatter_class.extension}")
    image = np.random.default_rng(5).normal(size=(37, 53)).astype(np.float32)
    formatter = formatter_class(STORAGE_CLASS)
    written = StreamDigest()
    formatter.write(image, fs, path, digest=written)
    on_disk = digest(fs, path)
    assert written.finish(fs, path) == on_disk
    read = StreamDigest()
    np.testing.assert_array_equal(formatter.read(fs, path, digest=read), image)
    assert read.finish(fs, path) == on_disk


def test_stream_digest_gives_none_when_a_file_was_not_fed(tmp_path):
    """A file the writer did not feed (here one added afterwards) is never left out silently."""
    fs = fsspec.filesystem("file")
    path = tmp_path / "img.zarr"
    formatter = _ManyChunks(STORAGE_CLASS)
    written = StreamDigest()
    formatter.write(np.zeros((37, 53), np.float32), fs, str(path), digest=written)
    (path / "extra").write_bytes(b"x")
    assert written.finish(fs, str(path)) is None
    unfed = StreamDigest()
    unfed.update(b"abc")
    single = tmp_path / "f.bin"
    single.write_bytes(b"abcd")  # one byte more than was fed
    assert unfed.finish(fs, str(single)) is None


def test_checksums_of_a_formatter_path_that_does_not_stream(tmp_path):
    """uint16 FITS goes through astropy (BZERO): the datastore reads the file back instead."""
    butler = _repo(tmp_path, checksums=True)
    image = np.arange(512 * 512, dtype=np.uint16).reshape(512, 512)
    ref = butler.put(image, "fits_img", instrument="Cam")
    path = Path(butler.get_uri(ref))
    stored = butler.registry.get_stored_info([ref])[ref.id]
    assert stored.checksum == digest(fsspec.filesystem("file"), str(path))
    np.testing.assert_array_equal(butler.get(ref), image)
    _flip(path, offset=path.stat().st_size // 2, n=4)
    with pytest.raises(ArtifactIntegrityError, match="checksum"):
        butler.get(ref)
