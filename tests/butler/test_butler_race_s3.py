"""Two processes putting the same dataset into a datastore on S3 at the same moment: one wins,
the registry never points at a deleted object, and the loser leaves nothing behind."""

from __future__ import annotations

import multiprocessing

import pytest
from test_butler import _populate
from test_butler_race import _put

from butler import Butler


@pytest.mark.timeout(120)
def test_concurrent_puts_of_one_dataset_on_s3(tmp_path, s3_server, s3_bucket):
    root = tmp_path / "repo"
    Butler.create(
        root,
        datastore_root=f"s3://{s3_bucket}/files",
        storage_options={"endpoint_url": s3_server.endpoint_url},
    )
    _populate(Butler(root, run="run1"))
    context = multiprocessing.get_context("fork")
    for visit in (10, 11):
        start, out = context.Event(), context.Queue()
        processes = [
            context.Process(target=_put, args=(str(root), visit, v, start, out)) for v in (1, 2)
        ]
        for process in processes:
            process.start()
        start.set()
        outcomes = dict(out.get(timeout=60) for _ in processes)
        for process in processes:
            process.join(30)
        winners = [v for v, outcome in outcomes.items() if outcome == "ok"]
        assert len(winners) == 1, outcomes
        (loser,) = set(outcomes) - set(winners)
        assert outcomes[loser] in ("ArtifactExistsError", "DuplicateDatasetError")
        butler = Butler(root)
        stored = butler.get("summary", instrument="Cam", visit=visit, collections="run1")
        assert stored == {"n": winners[0]}
    # registry and object store agree: no object the registry does not know
    butler = Butler(root)
    refs = butler.registry.query_datasets("summary", collections=["run1"])
    known = {info.path for info in butler.registry.get_stored_info(refs).values()}
    assert len(known) == 2
    assert butler.datastore.find_orphans(known) == []
