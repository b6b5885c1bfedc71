"""Smoke test of the characterisation benchmark's comparison on a small simulated detector."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("sep")
pytest.importorskip("astroscrappy")
pytest.importorskip("photutils")

from bench.characterize_bench import STEP_ROWS, compare, simulate, table_rows  # noqa: E402


@pytest.fixture(scope="module")
def result():
    """Compare both assemblies on a 512x512 detector with enough stars for an ePSF.

    The peer's ePSF is built in 2 iterations, not the benchmark's 10: with the ~11 stars
    here each iteration spends ~2.5 s filling the oversampled grid's empty pixels, and the
    checks below are about the comparison's plumbing, not the peer's convergence.
    """
    return compare(simulate(512, 1, star_density=40000.0), epsf_maxiters=2)


def test_times_are_positive(result):
    """Every timed step of both assemblies has a non-negative time; the wholes are positive."""
    for who in ("ours", "peer"):
        times = result[who]["times"]
        assert set(STEP_ROWS) <= set(times)
        assert all(times[step] >= 0.0 for step in STEP_ROWS if step != "other")
        assert times["whole"] > 0.0
    assert result["ours"]["times"]["cosmic rays"] > 0.0
    assert any(n.endswith("psfDeterminerStartCpuTime") for n in result["metadata_names"])


def test_scores_are_sane(result):
    """Recall and completeness are fractions; the PSF and background errors are small."""
    for who in ("ours", "peer"):
        score = result[who]["score"]
        assert score["cr_true"] > 0
        assert 0.0 <= score["cr_recall"] <= 1.0
        assert score["cr_false"] >= 0
        assert 0.0 <= score["completeness"] <= 1.0
        assert score["psf_fwhm_err"] < 0.2
        assert 0.0 <= score["bg_rms"] < 1.0
    assert result["ours"]["score"]["cr_recall"] > 0.5
    assert result["peer"]["n_psf_stars"] >= 3


def test_table_rows(result):
    """The table has a time row per step plus the wholes, then the accuracy rows."""
    columns, rows = table_rows([result])
    assert columns == ["quantity", "ours", "peer", "ours / peer"]
    labels = [row[0] for row in rows]
    assert labels[: len(STEP_ROWS) + 1] == [f"time: {s} (CPU s)" for s in (*STEP_ROWS, "whole")]
    for label in (
        "CR recall",
        "CR false pixels",
        "PSF FWHM |rel. error|, mean of 5",
        "background residual RMS (sky sigma)",
        "completeness, stars peak > 50 sigma",
    ):
        assert label in labels
    whole = rows[labels.index("time: whole (CPU s)")]
    assert math.isfinite(whole[3]) and whole[3] > 0
    # the first call in a new process is timed apart: the table's whole is a later call's
    first = rows[labels.index("time: whole, first call in a new process (CPU s)")]
    assert first[1] == result["ours"]["times"]["whole, first call in a new process"] > 0
