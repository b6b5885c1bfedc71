"""Running a quantum graph: the client side, the worker side and the executors.

What lives here
---------------
Client side (may use the full `butler.Butler` and its registry):

- `run`: `execute_graph`, the driver of a run;
- `setup`: output run and chain, init-outputs, configs and packages, what to resume;
- `registration`: registering what workers wrote, one transaction per quantum;
- `progress`: live progress and the run summary; `report`: `pipetask report`;
- `config_check`: comparing configs with those a run already stored;
- `packages`: the versions of installed packages, recorded per run.

Worker side (limited butler only; never `butler.registry`, checked by import-linter):

- `worker`: `run_quantum_cluster`, the one function shipped to a worker;
- `payload`: the wire form of a cluster of quanta; `worker_cache`: butlers and tasks kept
  by a worker between calls; `quantum_context`: what a task's ``runQuantum`` reads and writes
  through; `log_capture`: a quantum's log records.

`executors/`: the scheduling loop and the executors (sync, dask) that run clusters.

May import: `pipeline.graph`, `pipeline.definition`, the task API, `pipeline.config`,
`pipeline._errors`, `butler` and `cluster`. Never `pipeline.cli`.
"""
