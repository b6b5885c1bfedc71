"""Knowing when data is wrong: sizes always, checksums on request, lost zarr chunks.

Each test damages a real repository's files the way a disk, a user or a bad copy does, and
reads back through the Butler (and the limited butler a worker uses).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from butler import ArtifactIntegrityError, Butler, DatasetRef, DatasetType, FormatterError
from butler.cli import main

IMAGE = np.random.default_rng(3).normal(1000.0, 30.0, (512, 512)).astype(np.float32)


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
