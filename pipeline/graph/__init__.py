"""Quantum graphs: the quanta of a pipeline over data IDs, how they are built and stored.

What lives here
---------------
- `quantum_graph`: `QuantumGraph`, `Quantum` and the per-task blocks that hold them;
- `builder`: `build_quantum_graph`, from a pipeline graph and a registry query;
- `encoding`: the columnar ``.qgraph`` file encoding;
- `clustering`: grouping quanta into the clusters a worker runs in one call;
- `gc_pause`: the cyclic garbage collector paused while big graphs are built or loaded.

May import: `pipeline.definition`, the task API, `pipeline.config`, `pipeline._errors` and
`butler`. Never `execution` or `cli`.
"""
