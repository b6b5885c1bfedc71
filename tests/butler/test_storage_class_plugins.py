"""Storage-class plug-ins loaded by several threads at once (a worker with 2+ threads)."""

from __future__ import annotations

import importlib.metadata
import threading
import time

from butler import storage_class
from butler.storage_class import StorageClassRegistry


def test_a_thread_never_sees_the_plugins_half_loaded(monkeypatch):
    """The first lookup loads the entry points; a second thread asking meanwhile waits for
    them (it found 'TaskMetadata' unknown: a quantum of a 2-thread dask worker failed)."""
    real = list(importlib.metadata.entry_points(group=storage_class.ENTRY_POINT_GROUP))
    assert real, "the package's own storage-class entry points are not installed"

    class Slow:  # a real entry point whose loading takes a while (an import on a busy host)
        def __init__(self, entry_point):
            self.entry_point, self.name = entry_point, entry_point.name

        def load(self):
            time.sleep(0.3)
            return self.entry_point.load()

    monkeypatch.setattr(
        storage_class.importlib.metadata, "entry_points", lambda group: [Slow(e) for e in real]
    )
    registry = StorageClassRegistry()
    errors: list[BaseException] = []

    def look_up():
        try:
            registry["TaskMetadata"]
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=look_up) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    assert errors == []
