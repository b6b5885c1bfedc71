"""A cluster that runs again after its outcome reached the client (dask recomputes a finished
task when the worker holding its result dies before the client released it): the second run
changes no file, so the registry still describes every artifact, and reports the same records.
Found by the soak test (tests/cluster/test_soak.py): a registered metadata file rewritten by the
second run was one byte shorter than recorded."""

from __future__ import annotations

from pathlib import Path

from _exec_repo import make_graph, make_repo

from butler import Butler
from pipeline.execution.executors.sync import SyncExecutor
from pipeline.execution.run import execute_graph


class RunsTwiceExecutor(SyncExecutor):
    """Runs each submission, hands its outcome to the client, then runs it once more (as
    dask does with a lost result that is still wanted); records what the second run saw."""

    def __init__(self):
        super().__init__()
        self.changed: list[str] = []
        self.second_outcomes: list = []

    def submit(self, fn, *args, resources=None):
        executor = self

        class Twice:
            def result(self):
                first = fn(*args)
                files = {info.path for outcome in first for info in outcome.written}
                root = Path(args[0].datastore_root)
                before = {p: (root / p).read_bytes() for p in files}
                second = fn(*args)
                executor.changed += [p for p, data in before.items()
                                     if (root / p).read_bytes() != data]
                executor.second_outcomes.append((first, second))
                return first

        return Twice()


def test_a_cluster_run_again_changes_nothing(tmp_path):
    repo = make_repo(tmp_path / "repo", n_visits=1, n_detectors=3)
    butler = Butler(repo)
    qgraph = make_graph(repo, run="out/twice")
    executor = RunsTwiceExecutor()
    summary = execute_graph(butler, qgraph, executor=executor, progress=False)
    assert summary.exit_code == 0, summary.error
    assert executor.changed == []
    for first, second in executor.second_outcomes:
        assert [o.written for o in second] == [o.written for o in first]
        assert [(o.status, o.pid, o.attempt) for o in second] == [
            (o.status, o.pid, o.attempt) for o in first
        ]
    for dtype in butler.registry.query_dataset_types():
        for ref in butler.registry.query_datasets(dtype, collections=["out/twice"]):
            butler.get(ref)  # sizes as registered (ArtifactSizeError otherwise)
