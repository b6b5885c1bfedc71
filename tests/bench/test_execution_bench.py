"""Smoke test of the execution benchmark's scaling part: both workloads, ours and bare."""

from __future__ import annotations

import pytest

from bench import execution_bench


def test_workloads_are_deterministic_and_scaled():
    assert set(execution_bench.WORKLOADS) == {"compute", "fft"}
    for work in execution_bench.WORKLOADS.values():
        assert work(3, 0.01) == work(3, 0.01)
    assert execution_bench._compute_work(3, 0.01) != execution_bench._compute_work(3, 0.02)


@pytest.mark.timeout(240)
def test_scaling_rows_on_real_clusters():
    # 1% of the work so the smoke test takes seconds; the clusters and pools are real.
    rows = execution_bench._scaling_rows(n_quanta=2, rounds=1, scale=0.01)
    names = [r[0] for r in rows]
    assert names == [
        f"{who} ({workload}), {n} worker{'s' if n == 2 else ''}"
        for workload in ("compute", "fft")
        for who in ("ours", "plain processes")
        for n in (1, 2)
    ]
    for one, two in zip(rows[0::2], rows[1::2], strict=True):
        assert one[2] > 0 and two[2] > 0
        assert two[4] == pytest.approx(one[2] / (2 * two[2]))
