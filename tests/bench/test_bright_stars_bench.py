"""Smoke test of the bright-star stamps benchmark on a small simulated detector."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("galsim")

from bench.bright_stars_bench import (  # noqa: E402
    METHODS,
    accuracy,
    make_field,
    table_rows,
    time_methods,
)


@pytest.fixture(scope="module")
def result():
    """Time the methods on the stamps of a 512x512 detector (16 stamps at this bright-star
    density; 30000 per deg² gave 50 for no other check) and check their accuracy."""
    exposure, loader = make_field(512, bright_density=8000.0)
    out = time_methods(exposure, loader, rounds=1)
    out["accuracy"] = accuracy(exposure, n_stars=4)
    return out


def test_every_method_is_timed_on_the_same_stamps(result):
    assert result["n_stamps"] >= 3
    assert set(result["seconds"]) == set(METHODS)
    assert all(0 < s < math.inf for s in result["seconds"].values())
    assert all(v >= 0 for v in result["parts"].values())
    assert len(table_rows(result)) == len(METHODS) + 1


def test_accuracy_columns_are_truth_checked(result):
    ours = result["accuracy"][METHODS[0]]
    assert ours["max_error"] < 5e-3  # of the peak, against the analytic profile
    assert ours["flux_dev_max"] < 1e-3
    assert ours["centroid_max"] < 0.01
    for method in METHODS[1:]:  # the peers are measured the same way, not trusted
        assert result["accuracy"][method]["centroid_max"] < 0.05
