"""Who made a quantum's outputs: the provenance recorded in its ``<label>_metadata``.

Design
------
The worker writes, in the ``quantum`` section of the metadata dataset (the quantum's success
marker), `provenance`: the quantum's ID (the metadata dataset's ID, a UUID5 of run, dataset
type and data ID), its task label, output run and the SHA-256 of its task config (the YAML
the graph carries). Resume adopts an unregistered metadata file as a finished quantum only
if `mismatch` finds nothing: outputs written by a removed run of the same name, by another
config or by anything else are never taken for this run's.

No state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from ..graph.quantum_graph import Quantum

__all__ = ["config_digest", "mismatch", "provenance"]

_FIELDS = ("quantum_id", "task_label", "run", "config_digest")


def config_digest(config_yaml: str) -> str:
    """Return the SHA-256 (hex) of a task's config YAML."""
    return hashlib.sha256(config_yaml.encode()).hexdigest()


def provenance(quantum: Quantum, digest: str) -> dict[str, str]:
    """Return what the metadata records about who made ``quantum``'s outputs."""
    return {
        "quantum_id": str(quantum.metadata_ref.id),
        "task_label": quantum.task_label,
        "run": quantum.metadata_ref.run,
        "config_digest": digest,
    }


def mismatch(recorded: Mapping[str, Any] | None, quantum: Quantum, digest: str) -> str:
    """Return why metadata's ``quantum`` section was not made by ``quantum`` ("" if it was).

    Parameters
    ----------
    recorded : mapping, optional
        The ``quantum`` section of the metadata file.
    quantum : `Quantum`
        The quantum of the graph being run.
    digest : `str`
        `config_digest` of its task's config in that graph.
    """
    if not recorded:
        return "no provenance in its metadata"
    wanted = provenance(quantum, digest)
    for field in _FIELDS:
        if recorded.get(field) != wanted[field]:
            what = "config" if field == "config_digest" else field.replace("_", " ")
            return f"another {what} ({recorded.get(field)!r}, not {wanted[field]!r})"
    return ""
