"""Smoke test of the butler benchmark's cases, at small sizes."""

from __future__ import annotations

from bench.butler_bench import image_case, registry_case


def test_registry_case_counts_and_rates():
    row = registry_case(2)
    label, n, t_insert, c_insert, rate, rate_with_ids, t_query, n_found = row
    assert n == 2 * 189 * 5
    assert t_insert > 0 and c_insert >= 0 and t_query > 0
    assert rate == n / t_insert and rate_with_ids < rate
    assert n_found == 0  # the where-clause asks for visits 2..8; this registry has 0 and 1


def test_image_case_round_trips_both_formats():
    rows = image_case(size=256, rounds=2)  # raises if a put+get did not give the image back
    assert [r[0] for r in rows] == [
        "numpy.save + numpy.load (with zarr)",
        "butler put + get (zarr)",
        "numpy.save + numpy.load (with FITS)",
        "butler put + get (FITS)",
    ]
    for numpy_row, butler_row in (rows[0:2], rows[2:4]):
        assert numpy_row[3] == 1.0
        assert butler_row[3] == butler_row[1] / numpy_row[1] > 0
