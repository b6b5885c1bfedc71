"""Storage classes: what kind of in-memory object a dataset is, and its default formatter.

Storage classes live in a `StorageClassRegistry`, a plug-in registry object
(no global state: each Butler owns one). Besides the built-in classes, other
packages add theirs through the ``skyquanta.storage_classes`` entry-point
group: each entry point is a callable ``register(registry)``. Entry points
are loaded lazily, the first time a name is not found. Registering a name a
second time with a different definition is refused unless ``overwrite=True``.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import logging
import threading
from collections.abc import Iterator
from typing import Any

from ._errors import ConflictingDefinitionError, StorageClassError

__all__ = ["ENTRY_POINT_GROUP", "StorageClass", "StorageClassRegistry", "import_object"]

_LOG = logging.getLogger(__name__)

#: Entry-point group through which packages register storage classes.
ENTRY_POINT_GROUP = "skyquanta.storage_classes"


def import_object(dotted: str) -> Any:
    """Import ``package.module.Name`` and return the object.

    Raises
    ------
    ImportError
        If the module or attribute does not exist; the message names ``dotted``.
    """
    module_name, _, attr = dotted.rpartition(".")
    if not module_name:
        raise ImportError(f"{dotted!r} is not a dotted path 'module.Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(f"cannot import module {module_name!r} (for {dotted!r}): {err}") from err
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ImportError(f"module {module_name!r} has no attribute {attr!r}") from None


@dataclasses.dataclass(frozen=True, slots=True)
class StorageClass:
    """A kind of in-memory dataset.

    Parameters
    ----------
    name : `str`
        Storage class name (e.g. ``NumpyArray``, ``Exposure``).
    pytype : `str`
        Dotted path of the Python type of its objects.
    formatter : `str`
        Dotted path of the default `~butler.datastore.formatter.Formatter` class.
    parameters : `tuple` [`str`, ...]
        Names of read parameters it understands (e.g. ``bbox``).
    """

    name: str
    pytype: str
    formatter: str
    parameters: tuple[str, ...] = ()

    def import_pytype(self) -> type:
        """Import and return the Python type."""
        return import_object(self.pytype)


_BUILTIN = (
    StorageClass(
        "StructuredDataDict", "builtins.dict", "butler.datastore.formatters.YamlFormatter"
    ),
    StorageClass("JsonDict", "builtins.dict", "butler.datastore.formatters.JsonFormatter"),
    StorageClass(
        "NumpyArray", "numpy.ndarray", "butler.datastore.formatters.ZarrArrayFormatter", ("bbox",)
    ),
    StorageClass(
        "ImageF", "numpy.ndarray", "butler.datastore.formatters.ZarrArrayFormatter", ("bbox",)
    ),
    StorageClass(
        "AstropyTable", "astropy.table.Table", "butler.datastore.formatters.FitsTableFormatter"
    ),
)


class StorageClassRegistry:
    """A registry of storage classes, filled with built-ins and plug-ins.

    Parameters
    ----------
    load_entry_points : `bool`
        Whether to look up the ``skyquanta.storage_classes`` entry points when
        a name is missing.
    """

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self._classes: dict[str, StorageClass] = {sc.name: sc for sc in _BUILTIN}
        self._plugins_loaded = not load_entry_points
        # Threads of one process share a registry (a dask worker's threads share its limited
        # butler): one loads the plug-ins while the others wait; a plug-in that looks a name
        # up while registering (same thread) does not load them again.
        self._loading = threading.RLock()
        self._in_load = False

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_loading"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._loading = threading.RLock()

    def register(self, storage_class: StorageClass, *, overwrite: bool = False) -> None:
        """Add a storage class.

        Raises
        ------
        ConflictingDefinitionError
            If the name is registered with a different definition and
            ``overwrite`` is False.
        """
        existing = self._classes.get(storage_class.name)
        if existing is not None and existing != storage_class and not overwrite:
            raise ConflictingDefinitionError(
                f"storage class {storage_class.name!r} is already registered as {existing}, "
                f"refusing to replace it with {storage_class}"
            )
        self._classes[storage_class.name] = storage_class

    def load_plugins(self) -> None:
        """Load every ``skyquanta.storage_classes`` entry point (once)."""
        if self._plugins_loaded:
            return
        with self._loading:
            if self._plugins_loaded or self._in_load:
                return
            self._in_load = True
            try:
                for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                    try:
                        register = entry_point.load()
                    except Exception as err:  # a broken plug-in must not break the butler
                        _LOG.warning(
                            "storage class plug-in %s failed to load: %s", entry_point.name, err
                        )
                        continue
                    register(self)
            finally:
                self._in_load = False
                self._plugins_loaded = True

    def __getitem__(self, name: str) -> StorageClass:
        if name not in self._classes:
            self.load_plugins()
        try:
            return self._classes[name]
        except KeyError:
            raise StorageClassError(
                f"unknown storage class {name!r} (known: {', '.join(sorted(self._classes))})"
            ) from None

    def __contains__(self, name: object) -> bool:
        if name not in self._classes:
            self.load_plugins()
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        self.load_plugins()
        return iter(sorted(self._classes))
