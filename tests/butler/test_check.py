"""``butler check``: the registry against the files of a real repository with injected damage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from butler import Butler, DatasetType
from butler.cli import main


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    assert _invoke("create", str(root), "--checksums").exit_code == 0
    butler = Butler(root, run="u/me/run1")
    butler.registry.insert_dimension_records("instrument", [{"name": "Cam"}])
    butler.registry.insert_dimension_records(
        "detector", [{"instrument": "Cam", "id": d, "full_name": f"S{d}"} for d in range(5)]
    )
    butler.registry.register_dataset_type(
        DatasetType.make("img", ["detector"], "NumpyArray", butler.universe)
    )
    butler.registry.register_dataset_type(
        DatasetType.make("summary", ["detector"], "StructuredDataDict", butler.universe)
    )
    image = np.arange(300 * 200, dtype=np.float32).reshape(300, 200)
    for d in range(5):
        butler.put(image + d, "img", instrument="Cam", detector=d)
        butler.put({"detector": d, "note": "x" * 50}, "summary", instrument="Cam", detector=d)
    (root / "notes").mkdir()
    (root / "notes" / "keep.txt").write_text("not the butler's")  # outside its run folders
    return root


def _uri(root: Path, name: str, detector: int) -> Path:
    butler = Butler(root)
    ref = butler.find_dataset(name, instrument="Cam", detector=detector, collections="u/me/run1")
    return Path(butler.get_uri(ref))


def test_clean_repository_passes(repo):
    result = _invoke("check", str(repo))
    assert result.exit_code == 0, result.output
    assert "Checked 10 artifact(s) (10 checksum(s) verified)" in result.output
    assert "no problems" in result.output


def test_damage_is_found_read_only_then_fixed_without_touching_registered_files(repo):
    missing = _uri(repo, "summary", 0)
    missing.unlink()
    truncated = _uri(repo, "summary", 1)
    truncated.write_bytes(truncated.read_bytes()[:-5])
    flipped = _uri(repo, "summary", 2)
    data = bytearray(flipped.read_bytes())
    data[10] ^= 0xFF
    flipped.write_bytes(bytes(data))
    lost_chunk = sorted(p for p in _uri(repo, "img", 3).iterdir() if p.name != "zarr.json")[0]
    lost_chunk.unlink()
    run_dir = missing.parent
    orphan = run_dir / "stray.yaml"
    orphan.write_text("a: 1\n")
    temporary = run_dir / f".summary_x.yaml.tmp-{'0' * 32}"
    temporary.write_text("half")
    before = _tree(repo)

    result = _invoke("check", str(repo), "--format", "json")
    assert result.exit_code == 1, result.output
    found = {(p["problem"], Path(p["path"]).name) for p in json.loads(result.stdout)}
    assert found == {
        ("missing", missing.name),
        ("size", truncated.name),
        ("checksum", flipped.name),
        ("size", _uri(repo, "img", 3).name),
        ("orphan", orphan.name),
        ("temporary", temporary.name),
    }
    problems = {p["problem"]: p for p in json.loads(result.stdout)}
    assert (
        "summary" in problems["checksum"]["dataset"] and "u/me/run1" in problems["size"]["dataset"]
    )
    assert _tree(repo) == before  # read-only by default

    result = _invoke("check", str(repo), "--fix")
    assert result.exit_code == 1, result.output  # damaged datasets need a person
    assert "removed 2" in result.output and "Traceback" not in result.output
    assert not orphan.exists() and not temporary.exists()
    after = _tree(repo)
    assert after == {k: v for k, v in before.items() if k not in {
        str(orphan.relative_to(repo)), str(temporary.relative_to(repo))}}  # fmt: skip
    assert (repo / "notes" / "keep.txt").exists()


def test_fix_of_only_leftovers_leaves_a_clean_repository(repo):
    run_dir = _uri(repo, "img", 0).parent
    (run_dir / "stray.bin").write_bytes(b"\0" * 10)
    (run_dir / f".img_y.zarr.tmp-{'a' * 32}").mkdir()
    result = _invoke("check", str(repo))
    assert result.exit_code == 1 and "2 can be removed with --fix" in result.output
    assert _invoke("check", str(repo), "--fix").exit_code == 0
    assert _invoke("check", str(repo)).exit_code == 0


def test_missing_repository_is_one_line(tmp_path):
    result = _invoke("check", str(tmp_path / "nothing"))
    assert result.exit_code == 1 and "no butler repository" in result.output
    assert "Traceback" not in result.output
