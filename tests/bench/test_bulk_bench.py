"""Smoke test of the bulk benchmark at a tiny size: a real simulation (made once, then reused
from the cache), the real default pipeline on a 2-worker dask cluster, the accounting read back
from the quanta's metadata, and the output run removed afterwards."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("galsim")

from bench.bulk_bench import (  # noqa: E402
    BulkBenchError,
    BulkSize,
    cached_simulation,
    framework_share,
    measure,
)
from butler import Butler  # noqa: E402

pytestmark = pytest.mark.slow

TINY = BulkSize(detectors=2, visits=1, size=512, jobs=2)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("bench-cache")


def test_simulation_is_made_once_then_reused(cache):
    repo, wall = cached_simulation(TINY, cache)
    assert wall is not None and wall > 0
    assert repo.name == TINY.key and not (repo / "sim_truth").exists()
    again, wall_again = cached_simulation(TINY, cache)
    assert again == repo and wall_again is None
    assert not list(cache.glob("*.partial-*"))


def test_a_run_is_accounted_from_the_quanta_metadata_and_removed(cache):
    result = measure(TINY, cache)
    tasks = result["per_task"]
    assert tasks["characterizeImage"]["quanta"] == TINY.detectors * TINY.visits
    assert all(row["cpu"] > 0 for row in tasks.values())
    cpu = result["quanta_cpu"]
    assert cpu == pytest.approx(sum(row["cpu"] for row in tasks.values()))
    assert 0 < result["window"] <= result["wall"]
    assert result["share_command"] == pytest.approx(framework_share(result["wall"], 2, cpu))
    assert result["share_window"] <= result["share_command"] < 1
    assert result["command_cpu"] >= cpu  # the quanta ran inside the command's process tree
    assert 0 <= result["framework_cpu_share"] < 1
    assert result["outside_quanta_share"] < 1
    assert result["detectors_per_minute_per_core"] == pytest.approx(
        2 / (result["wall"] / 60) / 2
    )
    machine = dict(result["machine"])  # every core's time during the run, by kind
    threads = machine.pop("kernel_threads")
    assert all(v >= 0 for v in threads.values()) and sum(threads.values()) < sum(machine.values())
    assert sum(machine.values()) == pytest.approx(result["wall"] * os.cpu_count(), rel=0.1)
    busy = sum(v for k, v in machine.items() if k not in ("idle", "iowait"))
    assert busy >= result["command_cpu"] - 0.5  # the command's CPU is part of the machine's
    disk = result["disk"]  # measured before the run was removed
    assert disk["raw (postISRCCD)"] > 0 and disk["output icExp"] > 0
    assert all(v >= 0 for v in disk.values())
    names = [name for name, _ in Butler(result["repo"]).registry.query_collections()]
    assert not [name for name in names if name.startswith("bench/bulk")]


def test_a_bad_size_names_the_variable(monkeypatch):
    monkeypatch.setenv("BENCH_BULK_DETECTORS", "many")
    with pytest.raises(BulkBenchError, match="BENCH_BULK_DETECTORS='many'"):
        BulkSize.from_environment()
    monkeypatch.setenv("BENCH_BULK_DETECTORS", "0")
    with pytest.raises(BulkBenchError, match=">= 1"):
        BulkSize.from_environment()


def test_an_incomplete_simulation_is_not_adopted(tmp_path):
    (tmp_path / TINY.key).mkdir()
    with pytest.raises(BulkBenchError, match="not a complete benchmark simulation"):
        cached_simulation(TINY, tmp_path)
