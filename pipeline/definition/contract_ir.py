"""The ``contracts`` section: boolean expressions over task configs, checked once configs are final.

Each entry is a string or ``{contract: ..., msg: ...}``; as in LSST, a lone string stands for a
list of one. The expression language itself lives in
`pipeline.definition.contracts`. No state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._errors import PipelineDefinitionError
from .yaml_reader import _item_line, _key_line, _LineList, _sequence, _where

__all__ = ["ContractIR", "read_contracts"]


@dataclass(frozen=True, slots=True)
class ContractIR:
    """A contract: a boolean expression over task configs, and a message for when it fails."""

    contract: str
    msg: str | None = None
    where: str = field(default="<unknown>", compare=False)

    def to_primitive(self) -> str | dict[str, Any]:
        """Return the entry as it is written in YAML."""
        if self.msg is None:
            return self.contract
        return {"contract": self.contract, "msg": self.msg}


def read_contracts(doc: dict, source: str) -> tuple[ContractIR, ...]:
    """Read the ``contracts`` list of a pipeline document.

    Raises
    ------
    PipelineDefinitionError
        If an entry is neither a string nor a ``contract``/``msg`` mapping (file and line named).
    """
    if isinstance(doc.get("contracts"), str):
        entries = _LineList([doc["contracts"]])
        entries.item_lines = [_key_line(doc, "contracts") or 0]
    else:
        entries = _sequence(doc, "contracts", source)
    result = []
    for i, entry in enumerate(entries):
        where = _where(source, _item_line(entries, i))
        if isinstance(entry, str):
            result.append(ContractIR(contract=entry, where=where))
        elif isinstance(entry, dict) and "contract" in entry and set(entry) <= {"contract", "msg"}:
            msg = entry.get("msg")
            result.append(
                ContractIR(
                    contract=str(entry["contract"]),
                    msg=None if msg is None else str(msg),
                    where=where,
                )
            )
        else:
            raise PipelineDefinitionError(
                f"{where}: a contract must be a string or a mapping with 'contract' and "
                "optional 'msg'"
            )
    return tuple(result)
