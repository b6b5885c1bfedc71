"""Group quanta into clusters, the unit an executor submits to a worker.

Design
------
A cluster is a tuple of node IDs run in order by one worker call; clustering trades
scheduling overhead (one dask task per cluster, not per quantum) against parallelism.
Three modes, chosen by a string:

- ``"off"``: one quantum per cluster;
- ``"chains"`` (default): chains on the same data ID. A node joins the cluster of its
  predecessor when it has exactly one predecessor, both have the same data ID, and it is
  that predecessor's only successor of that kind (e.g. ``isr -> characterize -> calibrate``
  on one detector; ``characterize -> processBrightStars`` although ``subtractBrightStars``
  also reads characterize's exposure: it waits for the gather of every detector anyway). A
  node whose only predecessor is in the cluster cannot close a cycle through another, and
  two successors that depend on it alone stay two clusters (they may run in parallel);
- ``"per_task:N"``: up to N consecutive quanta of the same task (independent of each other).

Node IDs are topological, so the nodes of a cluster are sorted and no clustering can create
a cycle between clusters. No state; only the graph's ``predecessors``, ``successors`` and
``data_id`` are used.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["CLUSTERING_MODES", "make_clusters"]

#: Accepted clustering mode names (``per_task`` takes ``:N``).
CLUSTERING_MODES = ("off", "chains", "per_task")


def make_clusters(qgraph: Any, nodes: Iterable[int], mode: str = "chains") -> list[tuple[int, ...]]:
    """Group ``nodes`` of ``qgraph`` into clusters.

    Parameters
    ----------
    qgraph : `~pipeline.graph.quantum_graph.QuantumGraph`
        The graph (only ``predecessors``, ``successors``, ``data_id``, ``task_label_of`` used).
    nodes : iterable of `int`
        The nodes to run (already-complete ones left out).
    mode : `str`
        ``"off"``, ``"chains"`` or ``"per_task:N"``.

    Returns
    -------
    clusters : `list` [`tuple` [`int`, ...]]
        Each cluster's nodes in run order; clusters in topological order of their first node.

    Raises
    ------
    ValueError
        If ``mode`` is not one of the modes.
    """
    todo = sorted(set(nodes))
    if mode == "off":
        return [(n,) for n in todo]
    if mode == "chains":
        return _chains(qgraph, todo)
    if mode.startswith("per_task:"):
        try:
            size = int(mode.split(":", 1)[1])
        except ValueError:
            size = 0
        if size < 1:
            raise ValueError(f"clustering {mode!r}: N in 'per_task:N' must be a positive integer")
        return _per_task(qgraph, todo, size)
    raise ValueError(f"unknown clustering mode {mode!r}; use 'off', 'chains' or 'per_task:N'")


def _chains(qgraph: Any, todo: Sequence[int]) -> list[tuple[int, ...]]:
    wanted = set(todo)
    cluster_of: dict[int, list[int]] = {}
    clusters: list[list[int]] = []
    for node in todo:
        preds = [p for p in qgraph.predecessors(node)]
        if len(preds) == 1 and preds[0] in wanted:
            pred = preds[0]
            chain = cluster_of[pred]
            if chain[-1] == pred and _continuations(qgraph, pred, wanted) == [node]:
                chain.append(node)
                cluster_of[node] = chain
                continue
        chain = [node]
        clusters.append(chain)
        cluster_of[node] = chain
    return [tuple(c) for c in clusters]


def _continuations(qgraph: Any, node: int, wanted: set[int]) -> list[int]:
    """Return the successors of ``node`` that depend on it alone and share its data ID."""
    data_id = qgraph.data_id(node)
    return [
        s
        for s in qgraph.successors(node)
        if s in wanted and list(qgraph.predecessors(s)) == [node] and qgraph.data_id(s) == data_id
    ]


def _per_task(qgraph: Any, todo: Sequence[int], size: int) -> list[tuple[int, ...]]:
    clusters: list[list[int]] = []
    current_label = None
    for node in todo:
        label = qgraph.task_label_of(node)
        if label != current_label or len(clusters[-1]) >= size:
            clusters.append([])
            current_label = label
        clusters[-1].append(node)
    return [tuple(c) for c in clusters]
