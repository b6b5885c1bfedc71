"""``butler remove-runs`` removes the run's directory, leftovers included, and nothing else."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from butler import Butler, DatasetType, RunLeaseError
from butler.dataset_ref import DatasetRef


@pytest.fixture
def butler(tmp_path):
    Butler.create(tmp_path / "repo")
    butler = Butler(tmp_path / "repo")
    registry = butler.registry
    registry.insert_dimension_records(
        "instrument", [{"name": "Sim", "detector_max": 9, "visit_max": 9}]
    )
    registry.insert_dimension_records(
        "detector", [{"instrument": "Sim", "id": d, "full_name": f"D{d}"} for d in range(3)]
    )
    registry.register_dataset_type(
        DatasetType.make("thing", ["instrument", "detector"], "StructuredDataDict", butler.universe)
    )
    for run in ("u/run", "u/run/nested", "u/other"):
        registry.register_run(run)
        butler.put({"x": 1}, "thing", run=run, instrument="Sim", detector=0)
    return butler


def test_unregistered_files_of_the_run_go_with_it(butler):
    dtype = butler.registry.get_dataset_type("thing")
    ref = DatasetRef.make(dtype, {"instrument": "Sim", "detector": 1}, "u/run")
    info = butler.datastore.put({"x": 2}, ref)  # written, never registered (a killed client)
    leftover = Path(butler.datastore.uri(info))
    temporary = leftover.parent / f".{leftover.name}.tmp-{'a' * 32}"
    temporary.write_text("half")
    kept = [
        Path(butler.get_uri(r))
        for run in ("u/run/nested", "u/other")
        for r in butler.registry.query_datasets("thing", collections=[run])
    ]
    assert butler.remove_runs(["u/run"]) == 1
    assert not leftover.exists() and not temporary.exists()
    assert all(path.exists() for path in kept)  # a nested run's files stay
    assert butler.get("thing", collections=["u/run/nested"], instrument="Sim", detector=0)


HOLD_LEASE = """
import sys, time
from butler import Butler
Butler(sys.argv[1]).registry.acquire_run_lease("u/other", "token")
print("held", flush=True)
time.sleep(60)
"""


def test_a_run_being_executed_is_not_removed(butler):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LEASE, str(butler.datastore.root)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLeaseError, match="being executed"):
            butler.remove_runs(["u/other"])
    finally:
        holder.kill()
        holder.wait()
    assert butler.registry.query_datasets("thing", collections=["u/other"])
