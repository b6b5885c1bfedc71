"""What a pipeline is, before any data: its YAML, contracts, tasks and their graph.

What lives here
---------------
- `yaml_reader`: YAML loading that remembers the line of every key (for located errors);
- `task_ir`, `subset_ir`, `step_ir`, `contract_ir`, `import_ir`, `parameters_ir`: one YAML
  section each, its dataclass, its reader and its checks;
- `locations`: ``$NAME_DIR`` expansion and relative paths of the files a pipeline names;
- `pipeline_ir`: the whole pipeline file, composed of those sections, with imports resolved;
- `contracts`: the contract expression language (parsed, never eval'd);
- `loader`: task classes and other objects loaded by dotted name;
- `pipeline`: `Pipeline` and `TaskDef`: configured tasks, overrides applied, contracts checked;
- `pipeline_graph`: the bipartite graph of tasks and dataset types.

May import: the task API at the top of `pipeline`, `pipeline.config`, `pipeline._errors` and
`butler`. Never `graph`, `execution` or `cli`.
"""
