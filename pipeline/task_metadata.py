"""`TaskMetadata`: the nested, JSON/YAML-serializable metadata a task records while it runs.

Each level holds three kinds of entry: scalars (``str``, ``int``, ``float``, ``bool``), arrays
(lists of scalars, grown by `TaskMetadata.add`) and nested `TaskMetadata`. Names may be dotted:
``md["a.b.c"] = 1`` creates the nested levels ``a`` and ``b``. The full metadata of a task tree
uses task names with ``:`` instead of ``.`` as top-level keys (``"top:sub:subsub"``), so
``full["top:sub.itemName"]`` reads ``itemName`` of subtask ``sub``.

The only state is the ``_items`` dict of one instance.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

__all__ = ["TaskMetadata"]

_SCALARS = (str, int, float, bool)


def _to_scalar(name: str, value: Any) -> Any:
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return _to_scalar(name, value.item())
    raise TypeError(
        f"TaskMetadata item {name!r}: {value!r} ({type(value).__name__}) is not a str, int, "
        "float, bool, list of those, or mapping"
    )


class TaskMetadata(MutableMapping[str, Any]):
    """Nested metadata with dotted names.

    Parameters
    ----------
    items : mapping, optional
        Initial content, as from `to_dict`.
    """

    def __init__(self, items: Mapping[str, Any] | None = None):
        self._items: dict[str, Any] = {}
        if items:
            for key, value in items.items():
                self[key] = value

    # -- construction and conversion ----------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskMetadata:
        """Build from a nested dict (lists become arrays, dicts become nested metadata)."""
        return cls(data)

    fromDict = from_dict

    def to_dict(self) -> dict[str, Any]:
        """Return nested plain dicts and lists, ready for `json` or `yaml`."""
        out: dict[str, Any] = {}
        for key, value in self._items.items():
            if isinstance(value, TaskMetadata):
                out[key] = value.to_dict()
            elif isinstance(value, list):
                out[key] = list(value)
            else:
                out[key] = value
        return out

    toDict = to_dict

    @staticmethod
    def _convert(name: str, value: Any) -> Any:
        if isinstance(value, TaskMetadata):
            return value
        if isinstance(value, Mapping):
            return TaskMetadata(value)
        if isinstance(value, (list, tuple)) or (
            hasattr(value, "tolist") and getattr(value, "ndim", 0) == 1
        ):
            items = value.tolist() if hasattr(value, "tolist") else value
            return [_to_scalar(name, v) for v in items]
        return _to_scalar(name, value)

    # -- dotted navigation --------------------------------------------------------------------

    def _parent(self, name: str, create: bool) -> tuple[TaskMetadata, str]:
        if not isinstance(name, str) or not name:
            raise KeyError(f"TaskMetadata key must be a non-empty str, not {name!r}")
        *heads, last = name.split(".")
        node = self
        for i, head in enumerate(heads):
            child = node._items.get(head)
            if not isinstance(child, TaskMetadata):
                if not create or child is not None:
                    if child is not None:
                        raise KeyError(
                            f"TaskMetadata {'.'.join(heads[: i + 1])!r} is not nested metadata"
                        )
                    raise KeyError(f"TaskMetadata has no item {name!r}")
                child = TaskMetadata()
                node._items[head] = child
            node = child
        return node, last

    def __getitem__(self, name: str) -> Any:
        node, last = self._parent(name, create=False)
        try:
            return node._items[last]
        except KeyError:
            raise KeyError(f"TaskMetadata has no item {name!r}") from None

    def __setitem__(self, name: str, value: Any) -> None:
        node, last = self._parent(name, create=True)
        node._items[last] = self._convert(name, value)

    def __delitem__(self, name: str) -> None:
        node, last = self._parent(name, create=False)
        try:
            del node._items[last]
        except KeyError:
            raise KeyError(f"TaskMetadata has no item {name!r}") from None

    def __contains__(self, name: object) -> bool:
        try:
            self[name]  # type: ignore[index]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    # -- LSST-style accessors -----------------------------------------------------------------

    def add(self, name: str, value: Any) -> None:
        """Append ``value`` to the array ``name`` (a scalar already there becomes an array).

        Parameters
        ----------
        name : `str`
            Possibly dotted item name.
        value : scalar
            Value to append.
        """
        node, last = self._parent(name, create=True)
        scalar = _to_scalar(name, value)
        current = node._items.get(last)
        if current is None:
            node._items[last] = [scalar]
        elif isinstance(current, list):
            current.append(scalar)
        elif isinstance(current, TaskMetadata):
            raise KeyError(f"TaskMetadata {name!r} is nested metadata, not an array")
        else:
            node._items[last] = [current, scalar]

    def getScalar(self, name: str) -> Any:
        """Return the value of ``name``; for an array, its last element."""
        value = self[name]
        if isinstance(value, TaskMetadata):
            raise KeyError(f"TaskMetadata {name!r} is nested metadata, not a scalar")
        if isinstance(value, list):
            if not value:
                raise KeyError(f"TaskMetadata array {name!r} is empty")
            return value[-1]
        return value

    def getArray(self, name: str) -> list[Any]:
        """Return ``name`` as a list (a scalar becomes a one-element list)."""
        value = self[name]
        if isinstance(value, TaskMetadata):
            raise KeyError(f"TaskMetadata {name!r} is nested metadata, not an array")
        return list(value) if isinstance(value, list) else [value]

    get_scalar = getScalar
    get_array = getArray

    def names(self) -> set[str]:
        """Return the dotted names of every scalar and array, at every level."""
        out: set[str] = set()
        for key, value in self._items.items():
            if isinstance(value, TaskMetadata):
                out.update(f"{key}.{sub}" for sub in value.names())
            else:
                out.add(key)
        return out

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TaskMetadata):
            return self.to_dict() == other.to_dict()
        if isinstance(other, Mapping):
            return self.to_dict() == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TaskMetadata({self.to_dict()!r})"
