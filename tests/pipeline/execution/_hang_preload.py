"""A dask worker preload that never returns: the worker it is loaded into never connects.

Used by ``test_cluster_start`` through ``DASK_DISTRIBUTED__WORKER__PRELOAD``.
"""

import time


def dask_setup(worker):  # noqa: ARG001 - dask's preload hook
    """Block the worker's start for good."""
    while True:
        time.sleep(3600)
