"""How to get a dask cluster: local processes, an external scheduler, SLURM or Kubernetes.

`get_client` takes a scheduler address (``tcp://host:8786``), a scheduler file (JSON written by
``dask scheduler --scheduler-file``), or a cluster YAML spec (see ``local.yaml``,
``slurm.yaml``, ``kubernetes.yaml``)::

    kind: local | slurm | kubernetes
    workers: 4              # scaled after creation (jobqueue, kubernetes)
    options: {...}          # keyword arguments of the cluster class
    dask_config: {...}      # dask settings while the cluster starts (local: see below)

Local clusters (the embedded ``-j N`` cluster, ``kind: local``, ``simulate -j``) start with
`LOCAL_CLUSTER_DASK_CONFIG` unless the spec's ``dask_config`` says otherwise:

- workers without dask's statistical profiler, and with glibc's own heap trimming instead
  of dask's 64 KiB ``MALLOC_TRIM_THRESHOLD_``. Measured on 6 quanta of cache-resident FFTs
  (numpy calls that each allocate and free 64 KiB), one worker: 4.8 s with dask's
  defaults, 3.7 s without the trim threshold, 3.6 s with neither; in a bare process 2.8 s;
- fewer housekeeping wake-ups (event-loop tick every 1 s instead of 20 ms, system monitor
  every 1 s, the nanny's memory check every 250 ms instead of 100 ms). An idle 2-worker
  cluster (profiler already off) used 1.1 s of CPU per 10 s with dask's intervals (client
  0.58 s, workers 0.53 s), 0.28 s with these: CPU that quanta get back on a machine
  whose cores are all workers.

dask-jobqueue and dask-kubernetes are imported only when their kind is asked for, with a clear
error if missing. The returned client owns the cluster it started (closing the client's
cluster is the caller's job via ``client.cluster.close()`` or `close_client`). No state.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "LOCAL_CLUSTER_DASK_CONFIG",
    "SPEC_DIR",
    "close_client",
    "get_client",
    "load_spec",
    "local_cluster",
]

#: Folder of the shipped cluster specs.
SPEC_DIR = Path(__file__).parent

_KINDS = {
    "local": ("distributed", "LocalCluster", None),
    "slurm": ("dask_jobqueue", "SLURMCluster", "dask-jobqueue"),
    "kubernetes": ("dask_kubernetes.operator", "KubeCluster", "dask-kubernetes"),
}


#: dask settings for local clusters (see the module notes for the measurements). The
#: sampling profiler wakes every 10 ms and takes the GIL from numpy code that releases it;
#: a 64 KiB trim threshold hands freed heap back to the kernel after nearly every temporary
#: array, so the next one page-faults it in again; the intervals are housekeeping wake-ups.
LOCAL_CLUSTER_DASK_CONFIG: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "1s",
    "distributed.worker.memory.monitor-interval": "250ms",
}


def local_cluster(dask_config: dict[str, Any] | None = None, **options: Any) -> Any:
    """Start a `distributed.LocalCluster` with `LOCAL_CLUSTER_DASK_CONFIG`.

    Parameters
    ----------
    dask_config : `dict`, optional
        dask settings that override `LOCAL_CLUSTER_DASK_CONFIG` (e.g.
        ``{"distributed.worker.profile.enabled": True}`` for the dashboard's profile).
    **options
        Keyword arguments of `~distributed.LocalCluster`.
    """
    import dask
    from distributed import LocalCluster

    # Worker processes take a copy of the configuration when they are spawned, so the
    # settings only need to hold while the cluster starts.
    with dask.config.set({**LOCAL_CLUSTER_DASK_CONFIG, **(dask_config or {})}):
        return LocalCluster(**options)


def load_spec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a cluster YAML spec (a name like ``local`` means the shipped ``local.yaml``)."""
    candidate = Path(path)
    if not candidate.exists() and (SPEC_DIR / f"{path}.yaml").exists():
        candidate = SPEC_DIR / f"{path}.yaml"
    with open(candidate) as stream:
        spec = yaml.safe_load(stream) or {}
    if spec.get("kind") not in _KINDS:
        raise ValueError(
            f"{candidate}: 'kind' must be one of {sorted(_KINDS)}, got {spec.get('kind')!r}"
        )
    return spec


def get_client(spec_or_address: str | os.PathLike[str]) -> Any:
    """Return a `distributed.Client` for an address, a scheduler file or a cluster spec.

    Raises
    ------
    ImportError
        If the spec needs dask-jobqueue or dask-kubernetes and it is not installed.
    ValueError
        If the spec is malformed.
    """
    import importlib

    from distributed import Client

    text = os.fspath(spec_or_address)
    if "://" in text:
        return Client(text)
    if text.endswith(".json"):
        return Client(scheduler_file=text)
    spec = load_spec(text)
    module_name, class_name, dist = _KINDS[spec["kind"]]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(
            f"cluster kind {spec['kind']!r} needs {dist or module_name}: pip install {dist}"
        ) from err
    options = spec.get("options") or {}
    if spec["kind"] == "local":
        cluster = local_cluster(spec.get("dask_config"), **options)
    else:
        import dask

        with dask.config.set(spec.get("dask_config") or {}):
            cluster = getattr(module, class_name)(**options)
    if spec.get("workers") and spec["kind"] != "local":
        cluster.scale(int(spec["workers"]))
    client = Client(cluster)
    client._skyquanta_cluster = cluster  # closed by close_client
    return client


def close_client(client: Any) -> None:
    """Close a client from `get_client` and the cluster it started, if any."""
    cluster = getattr(client, "_skyquanta_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()
