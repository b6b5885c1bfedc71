"""`Struct`: a keyword-constructed result object with attribute access.

Tasks return a `Struct` from ``run()``; `PipelineTask.runQuantum` writes each attribute whose
name matches an output connection. The attribute names live in the instance ``__dict__``; the
only state is that dict.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Struct"]


class Struct:
    """A simple result object: ``Struct(exposure=exp, sourceCat=cat).exposure``.

    Parameters
    ----------
    **kwargs
        Attribute names and values.

    Raises
    ------
    ValueError
        If a name is reserved (a `Struct` method such as ``getDict``) or starts with ``__``.
    """

    def __init__(self, **kwargs: Any):
        for name, value in kwargs.items():
            setattr(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        _check_name(name)
        object.__setattr__(self, name, value)

    def getDict(self) -> dict[str, Any]:
        """Return a shallow copy of the attributes as a dict.

        Returns
        -------
        items : `dict` [`str`, `object`]
            Attribute name to value, in insertion order.
        """
        return dict(self.__dict__)

    get_dict = getDict

    def mergeItems(self, struct: Struct, *names: str) -> None:
        """Copy the named attributes of another struct into this one.

        Parameters
        ----------
        struct : `Struct`
            The struct to copy from.
        *names : `str`
            Attribute names to copy; each must be present in ``struct``.

        Raises
        ------
        AttributeError
            If ``struct`` has no attribute of one of the names.
        RuntimeError
            If this struct already has an attribute of one of the names.
        """
        for name in names:
            if name in self.__dict__:
                raise RuntimeError(f"Struct already has an attribute {name!r}; not overwritten")
            if name not in struct.__dict__:
                raise AttributeError(f"Struct to merge from has no attribute {name!r}")
            setattr(self, name, struct.__dict__[name])

    merge_items = mergeItems

    def copy(self) -> Struct:
        """Return a shallow copy (new struct, same attribute values)."""
        return Struct(**self.__dict__)

    def __len__(self) -> int:
        return len(self.__dict__)

    def __contains__(self, name: object) -> bool:
        return name in self.__dict__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Struct):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"Struct({items})"


_RESERVED = frozenset(name for name in vars(Struct) if not name.startswith("__"))


def _check_name(name: str) -> None:
    if name.startswith("__") or name in _RESERVED:
        raise ValueError(f"Struct attribute name {name!r} is reserved")
