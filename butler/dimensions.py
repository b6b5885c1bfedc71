"""Dimensions: the universe of keys that identify datasets, and data IDs.

Design
------
A `DimensionUniverse` is read from a YAML file (``dimensions.yaml`` shipped with
the package by default). Each `Dimension` has a primary key (name and type),
the dimensions it *requires* (part of its identity: a detector is identified by
instrument and id) and the ones it *implies* (determined by its record: a visit
implies its physical_filter). A `DimensionGroup` is a set of dimension names
closed under requirement, in the universe's canonical order; it is what a
dataset type or a task's quantum has.

A `DataCoordinate` is a validated, normalized, hashable data ID: a value for
every required dimension of a group, each of the right type. Extra keys that
name implied dimensions (e.g. ``band`` for a visit data ID) are accepted and
kept aside in `DataCoordinate.implied`; any other key is an error.

There is no mutable state here: a universe is immutable once built.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from ._errors import DataIdError, DimensionConfigError

__all__ = [
    "Dimension",
    "DimensionElement",
    "DimensionGroup",
    "DimensionUniverse",
    "MetadataField",
    "SkyPixSystem",
]

_TYPES = {"int": int, "string": str, "float": float, "bool": bool}


@dataclasses.dataclass(frozen=True, slots=True)
class MetadataField:
    """A column of a dimension element's records.

    Parameters
    ----------
    name : `str`
        Column name.
    type : `str`
        One of ``int``, ``string``, ``float``, ``bool``.
    length : `int`, optional
        Maximum length of a string column.
    doc : `str`
        What the column holds, with units.
    """

    name: str
    type: str
    length: int | None = None
    doc: str = ""

    @property
    def pytype(self) -> type:
        """The Python type of the column's values."""
        return _TYPES[self.type]


@dataclasses.dataclass(frozen=True, slots=True)
class DimensionElement:
    """A table of records keyed by one or more dimensions.

    Parameters
    ----------
    name : `str`
        Element name.
    requires : `tuple` [`str`, ...]
        Names of the dimensions that identify a record (for a dimension, not
        including itself).
    implies : `tuple` [`str`, ...]
        Names of dimensions whose values each record determines.
    metadata : `tuple` [`MetadataField`, ...]
        Other columns.
    spatial : `bool`
        Whether records carry a sky region.
    """

    name: str
    requires: tuple[str, ...] = ()
    implies: tuple[str, ...] = ()
    metadata: tuple[MetadataField, ...] = ()
    spatial: bool = False

    @property
    def is_dimension(self) -> bool:
        """Whether this element is also a dimension (has its own key)."""
        return False


@dataclasses.dataclass(frozen=True, slots=True)
class Dimension(DimensionElement):
    """A dimension: an element with its own primary key.

    Parameters
    ----------
    key : `MetadataField`
        The primary key column (e.g. ``id`` of type int for a detector).
    """

    key: MetadataField = MetadataField("name", "string", 32)

    @property
    def is_dimension(self) -> bool:
        """Whether this element is also a dimension (has its own key)."""
        return True


@dataclasses.dataclass(frozen=True, slots=True)
class SkyPixSystem:
    """The sky pixelization used to shard spatial data (one level).

    Parameters
    ----------
    name : `str`
        Dimension name, e.g. ``healpix7``.
    system : `str`
        ``healpix`` (nested ordering).
    level : `int`
        HEALPix order: nside = 2**level.
    """

    name: str
    system: str
    level: int

    @property
    def nside(self) -> int:
        """HEALPix nside."""
        return 2**self.level


class DimensionUniverse:
    """All dimensions and elements known to a repository.

    Parameters
    ----------
    config : `~collections.abc.Mapping`
        The parsed YAML definition (see ``butler/dimensions.yaml``).
    source : `str`
        Where the definition came from, for error messages.

    Raises
    ------
    DimensionConfigError
        If the definition is malformed; the message names the source and key.
    """

    def __init__(self, config: Mapping[str, Any], *, source: str = "<dict>") -> None:
        self._source = source
        self._config = dict(config)
        try:
            self.version = int(config["version"])
            self.namespace = str(config.get("namespace", "skyquanta"))
            sp = config["skypix"]
            self.skypix = SkyPixSystem(str(sp["name"]), str(sp["system"]), int(sp["level"]))
            dims_cfg = config["dimensions"]
        except (KeyError, TypeError, ValueError) as err:
            raise DimensionConfigError(f"{source}: missing or invalid key {err}") from err
        if self.skypix.system != "healpix":
            raise DimensionConfigError(
                f"{source}: skypix.system {self.skypix.system!r} is not supported (use 'healpix')"
            )
        elements: dict[str, DimensionElement] = {}
        for name, spec in dims_cfg.items():
            elements[name] = self._parse_element(name, spec, is_dimension=True)
        elements[self.skypix.name] = Dimension(
            self.skypix.name, key=MetadataField("id", "int"), spatial=True
        )
        for name, spec in (config.get("elements") or {}).items():
            if name in elements:
                raise DimensionConfigError(f"{source}: element {name!r} is defined twice")
            elements[name] = self._parse_element(name, spec, is_dimension=False)
        for element in elements.values():
            for dep in element.requires + element.implies:
                if dep not in elements or not elements[dep].is_dimension:
                    raise DimensionConfigError(
                        f"{source}: element {element.name!r} refers to unknown dimension {dep!r}"
                    )
        self._elements = elements
        self._order = self._topological_order()

    def _parse_element(self, name: str, spec: Any, *, is_dimension: bool) -> DimensionElement:
        where = f"{self._source}: {'dimensions' if is_dimension else 'elements'}.{name}"
        if spec is None:
            spec = {}
        if not isinstance(spec, Mapping):
            raise DimensionConfigError(f"{where}: expected a mapping, got {type(spec).__name__}")
        allowed = {"key", "requires", "implies", "metadata", "spatial", "doc"}
        unknown = set(spec) - allowed
        if unknown:
            raise DimensionConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
        metadata = tuple(
            self._parse_field(f"{where}.metadata", m) for m in spec.get("metadata", [])
        )
        common = dict(
            name=name,
            requires=tuple(spec.get("requires", [])),
            implies=tuple(spec.get("implies", [])),
            metadata=metadata,
            spatial=bool(spec.get("spatial", False)),
        )
        if is_dimension:
            if "key" not in spec:
                raise DimensionConfigError(f"{where}: a dimension needs a 'key'")
            return Dimension(key=self._parse_field(f"{where}.key", spec["key"]), **common)
        return DimensionElement(**common)

    @staticmethod
    def _parse_field(where: str, spec: Any) -> MetadataField:
        if not isinstance(spec, Mapping) or "name" not in spec or "type" not in spec:
            raise DimensionConfigError(f"{where}: a field needs 'name' and 'type', got {spec!r}")
        if spec["type"] not in _TYPES:
            raise DimensionConfigError(
                f"{where}.{spec['name']}: unknown type {spec['type']!r} "
                f"(use one of {sorted(_TYPES)})"
            )
        return MetadataField(
            str(spec["name"]), str(spec["type"]), spec.get("length"), str(spec.get("doc", ""))
        )

    def _topological_order(self) -> tuple[str, ...]:
        order: list[str] = []
        visiting: set[str] = set()

        def visit(name: str, chain: tuple[str, ...]) -> None:
            if name in order:
                return
            if name in visiting:
                raise DimensionConfigError(
                    f"{self._source}: dependency cycle {' -> '.join(chain + (name,))}"
                )
            visiting.add(name)
            element = self._elements[name]
            for dep in element.requires + element.implies:
                visit(dep, chain + (name,))
            visiting.discard(name)
            order.append(name)

        for name in self._elements:
            visit(name, ())
        return tuple(order)

    # -- construction ---------------------------------------------------

    @classmethod
    def default(cls) -> DimensionUniverse:
        """Return the universe shipped with the package."""
        text = importlib.resources.files("butler").joinpath("dimensions.yaml").read_text()
        return cls.from_yaml_text(text, source="butler/dimensions.yaml")

    @classmethod
    def from_yaml_text(cls, text: str, *, source: str = "<string>") -> DimensionUniverse:
        """Build a universe from YAML text.

        Raises
        ------
        DimensionConfigError
            If the YAML does not parse or the definition is malformed.
        """
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise DimensionConfigError(f"{source}{line}: invalid YAML: {err}") from err
        if not isinstance(config, Mapping):
            raise DimensionConfigError(f"{source}: expected a mapping at the top level")
        return cls(config, source=source)

    @classmethod
    def from_file(cls, path: str | Path) -> DimensionUniverse:
        """Build a universe from a YAML file."""
        path = Path(path)
        return cls.from_yaml_text(path.read_text(), source=str(path))

    def to_config(self) -> dict[str, Any]:
        """Return the definition this universe was built from (for storing in a repo)."""
        return dict(self._config)

    # -- access -----------------------------------------------------------

    def __getitem__(self, name: str) -> DimensionElement:
        try:
            return self._elements[name]
        except KeyError:
            raise DataIdError(self._unknown_message("dimension element", name)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._elements

    def _unknown_message(self, what: str, name: str) -> str:
        near = difflib.get_close_matches(name, self._elements, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        return f"unknown {what} {name!r}{hint} (known: {', '.join(self.dimension_names)})"

    @property
    def dimension_names(self) -> tuple[str, ...]:
        """All dimension names, in canonical (dependency) order."""
        return tuple(n for n in self._order if self._elements[n].is_dimension)

    @property
    def element_names(self) -> tuple[str, ...]:
        """All element names (dimensions first), in canonical order."""
        return self._order

    def dimension(self, name: str) -> Dimension:
        """Return the dimension called ``name``.

        Raises
        ------
        DataIdError
            If there is no such dimension; the message suggests a near miss.
        """
        element = self._elements.get(name)
        if element is None or not isinstance(element, Dimension):
            raise DataIdError(self._unknown_message("dimension", name))
        return element

    def group(self, names: Iterable[str]) -> DimensionGroup:
        """Return the group of ``names`` closed under requirement."""
        return DimensionGroup(self, names)

    def sort(self, names: Iterable[str]) -> tuple[str, ...]:
        """Sort element names in canonical order."""
        wanted = set(names)
        return tuple(n for n in self._order if n in wanted)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DimensionUniverse):
            return NotImplemented
        return self._config == other._config

    def __hash__(self) -> int:
        return hash((self.namespace, self.version, self._order))


class DimensionGroup:
    """A set of dimensions closed under requirement, in canonical order.

    Parameters
    ----------
    universe : `DimensionUniverse`
        The universe the names belong to.
    names : iterable of `str`
        Dimension names; their required dimensions are added.

    Attributes
    ----------
    required : `tuple` [`str`, ...]
        Every dimension whose value is part of a data ID of this group.
    implied : `tuple` [`str`, ...]
        Dimensions determined by the required ones (not part of identity).
    """

    __slots__ = ("universe", "required", "implied", "_names", "_key_types", "_template")

    def __init__(self, universe: DimensionUniverse, names: Iterable[str]) -> None:
        self.universe = universe
        closure: set[str] = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            if name in closure:
                continue
            dim = universe.dimension(name)
            closure.add(name)
            stack.extend(dim.requires)
        implied: set[str] = set()
        stack = [i for n in closure for i in universe.dimension(n).implies]
        while stack:
            name = stack.pop()
            if name in implied or name in closure:
                continue
            implied.add(name)
            stack.extend(universe.dimension(name).implies)
            stack.extend(r for r in universe.dimension(name).requires if r not in closure)
        self.required = universe.sort(closure)
        self.implied = universe.sort(implied - closure)
        self._names = frozenset(self.required)
        # For the fast paths of `DataCoordinate.standardize` and `canonical_string`.
        self._key_types = tuple(universe.dimension(n).key.pytype for n in self.required)
        self._template = ",".join(
            n.replace("{", "{{").replace("}", "}}") + "={}" for n in self.required
        )

    @property
    def names(self) -> frozenset[str]:
        """The required dimension names as a set."""
        return self._names

    def issubset(self, other: DimensionGroup) -> bool:
        """Whether every required dimension of self is required by ``other``."""
        return self._names <= other._names

    def union(self, *others: DimensionGroup) -> DimensionGroup:
        """Return the group of all dimensions of self and ``others``."""
        names = set(self._names)
        for other in others:
            names |= other._names
        return DimensionGroup(self.universe, names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.required)

    def __len__(self) -> int:
        return len(self.required)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DimensionGroup):
            return self.required == other.required
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.required)

    def __repr__(self) -> str:
        return "{" + ", ".join(self.required) + "}"

