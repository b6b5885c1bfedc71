"""Two processes putting the same dataset at the same moment: one wins, nothing is lost."""

from __future__ import annotations

import multiprocessing
import sys

import pytest
from test_butler import _populate

from butler import Butler


def _put(root, visit, value, start, out):
    butler = Butler(root, run="run1")
    start.wait(10)
    try:
        butler.put({"n": value}, "summary", instrument="Cam", visit=visit)
        out.put((value, "ok"))
    except Exception as err:  # reported to the parent, which checks the kind
        out.put((value, type(err).__name__))


@pytest.mark.skipif(sys.platform != "linux", reason="uses fork")
@pytest.mark.timeout(60)
def test_concurrent_puts_of_one_dataset(tmp_path):
    Butler.create(tmp_path / "repo")
    _populate(Butler(tmp_path / "repo", run="run1"))
    Butler(tmp_path / "repo").registry.register_run("run1")
    context = multiprocessing.get_context("fork")
    for visit in (10, 11):
        start, out = context.Event(), context.Queue()
        processes = [
            context.Process(target=_put, args=(tmp_path / "repo", visit, v, start, out))
            for v in (1, 2)
        ]
        for process in processes:
            process.start()
        start.set()
        for process in processes:
            process.join(30)
        outcomes = dict(out.get(timeout=5) for _ in processes)
        winners = [v for v, outcome in outcomes.items() if outcome == "ok"]
        assert len(winners) == 1, outcomes
        (loser,) = set(outcomes) - set(winners)
        assert outcomes[loser] in ("ArtifactExistsError", "DuplicateDatasetError")
        # the registered dataset's file is there and holds the winner's value
        stored = Butler(tmp_path / "repo").get(
            "summary", instrument="Cam", visit=visit, collections="run1"
        )
        assert stored == {"n": winners[0]}
