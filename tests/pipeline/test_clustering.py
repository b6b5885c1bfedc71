"""Clusters of quanta (`pipeline.graph.clustering`): which chains run in one worker call."""

from __future__ import annotations

from pipeline.graph.clustering import make_clusters


class _Graph:
    """The four things `make_clusters` reads of a quantum graph, from edges and data IDs."""

    def __init__(self, edges: list[tuple[int, int]], data_ids: dict[int, str]) -> None:
        self._data_ids = data_ids
        self._pred = {n: [] for n in data_ids}
        self._succ = {n: [] for n in data_ids}
        for a, b in edges:
            self._succ[a].append(b)
            self._pred[b].append(a)

    def predecessors(self, node: int) -> list[int]:
        return self._pred[node]

    def successors(self, node: int) -> list[int]:
        return self._succ[node]

    def data_id(self, node: int) -> str:
        return self._data_ids[node]

    def task_label_of(self, node: int) -> str:
        return str(node)


def test_a_linear_chain_on_one_data_id_is_one_cluster():
    graph = _Graph([(0, 1), (1, 2)], {0: "d1", 1: "d1", 2: "d1"})
    assert make_clusters(graph, [0, 1, 2]) == [(0, 1, 2)]


def test_a_chain_continues_past_a_node_read_by_a_later_quantum_too():
    """characterize -> processBrightStars on one detector, with subtractBrightStars reading
    both characterize's output and the band's gather: characterize has two successors, but
    processBrightStars is its only one that depends on nothing else, so the two run in one
    worker call (the exposure just written is read from memory, not evicted by the others)."""
    # per detector d: C(d) -> P(d); G <- P(all); S(d) <- C(d), P(d), G
    edges, data_ids = [], {}
    for d in range(3):
        c, p, s = 10 * d, 10 * d + 1, 100 + d
        data_ids |= {c: f"d{d}", p: f"d{d}", s: f"d{d}"}
        edges += [(c, p), (p, 99), (c, s), (p, s), (99, s)]
    data_ids[99] = "band"
    clusters = make_clusters(_Graph(edges, data_ids), sorted(data_ids))
    assert (0, 1) in clusters and (10, 11) in clusters and (20, 21) in clusters
    assert (99,) in clusters and all((100 + d,) in clusters for d in range(3))


def test_two_independent_successors_are_not_serialized():
    """A node whose successors each depend on it alone: they stay parallel clusters."""
    graph = _Graph([(0, 1), (0, 2)], {0: "d1", 1: "d1", 2: "d1"})
    assert make_clusters(graph, [0, 1, 2]) == [(0,), (1,), (2,)]


def test_a_successor_with_another_data_id_starts_its_own_cluster():
    graph = _Graph([(0, 1)], {0: "d1", 1: "visit"})
    assert make_clusters(graph, [0, 1]) == [(0,), (1,)]
