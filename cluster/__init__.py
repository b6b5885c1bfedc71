"""How to get a dask cluster: local processes, an external scheduler, SLURM or Kubernetes.

`get_client` takes a scheduler address (``tcp://host:8786``), a scheduler file (JSON written by
``dask scheduler --scheduler-file``), or a cluster YAML spec (see ``local.yaml``,
``slurm.yaml``, ``kubernetes.yaml``)::

    kind: local | slurm | kubernetes
    workers: 4              # scaled after creation (jobqueue, kubernetes)
    options: {...}          # keyword arguments of the cluster class

dask-jobqueue and dask-kubernetes are imported only when their kind is asked for, with a clear
error if missing. The returned client owns the cluster it started (closing the client's
cluster is the caller's job via ``client.cluster.close()`` or `close_client`). No state.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

__all__ = ["SPEC_DIR", "close_client", "get_client", "load_spec"]

#: Folder of the shipped cluster specs.
SPEC_DIR = Path(__file__).parent

_KINDS = {
    "local": ("distributed", "LocalCluster", None),
    "slurm": ("dask_jobqueue", "SLURMCluster", "dask-jobqueue"),
    "kubernetes": ("dask_kubernetes.operator", "KubeCluster", "dask-kubernetes"),
}


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
    cluster = getattr(module, class_name)(**(spec.get("options") or {}))
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
