"""The ``--where`` expression language of ``butler query-datasets`` and ``pipetask qgraph -d``.

Design
------
An expression such as ``instrument = 'HSC' AND visit IN (vs, 100..120:2) AND NOT detector = 9``
is parsed once into a tree of frozen dataclasses (`parse_where`; grammar and tokenizer live in
`butler._expression_parser`), then either

* compiled to a SQLAlchemy boolean clause (`compile_where`) with the column of each name supplied
  by the registry's ``resolve`` callable, every literal and bind value becoming a SQL bound
  parameter (no value is ever formatted into SQL text), or
* evaluated in memory on a mapping of name to value (`evaluate_where`).

Both follow SQL's three-valued logic, so they select exactly the same rows: a comparison with a
NULL (`None`) value is unknown, ``NOT unknown`` is unknown, ``x IN (...)`` is unknown when ``x``
is NULL (or when no item matches and one is NULL), and only a true result selects a row.  An
``IN`` over an empty bound list is false.  Ranges ``a..b:s`` match integers ``a <= x <= b`` with
``(x - a) % s == 0``; they are meant for integer columns.

Names that are keys of ``bind`` are bind values; a bound list, tuple or set may only appear
inside ``IN (...)``, where it is expanded.  Comparing a number with a string is an
`ExpressionTypeError` whenever the types are known (literals, bind values, columns whose
SQLAlchemy type has a Python type, and row values).

There is no mutable module state.
"""

from __future__ import annotations

import difflib
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BooleanClauseList, Grouping

from ._errors import ButlerError
from ._expression_parser import (
    BinaryOp,
    BindRef,
    Comparison,
    Identifier,
    InList,
    Literal,
    Node,
    Operand,
    ParseError,
    Predicate,
    Range,
    UnaryOp,
    parse,
    render,
)

__all__ = [
    "BinaryOp",
    "BindRef",
    "Comparison",
    "ExpressionSyntaxError",
    "ExpressionTypeError",
    "Identifier",
    "InList",
    "Literal",
    "Node",
    "Operand",
    "Predicate",
    "Range",
    "UnaryOp",
    "UnknownNameError",
    "compile_where",
    "evaluate_where",
    "identifiers",
    "parse_where",
    "render",
]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def _show(expression: str, column: int) -> str:
    """Return the line of ``expression`` holding ``column`` and a caret line under it."""
    start = expression.rfind("\n", 0, column) + 1
    end = expression.find("\n", column)
    line = expression[start : len(expression) if end < 0 else end]
    pad = "".join("\t" if char == "\t" else " " for char in line[: column - start])
    return f"{line}\n{pad}^"


def _compose(first: str, expression: str | None, column: int | None) -> str:
    if expression is None:
        return first
    if column is None or column < 0:
        return f"{first}\n{expression}"
    return f"{first}\n{_show(expression, column)}"


class ExpressionSyntaxError(ButlerError, ValueError):
    """The text of a ``--where`` expression is not valid.

    Parameters
    ----------
    reason : `str`
        What is wrong, e.g. ``"unterminated string literal"``.
    expression : `str`
        The full expression text.
    column : `int`
        0-based offset into ``expression`` of the offending character.

    Notes
    -----
    The message shows the reason, then the offending line of the expression, then a line with
    a caret ``^`` under the offending character.
    """

    def __init__(self, reason: str, expression: str, column: int):
        self.reason = reason
        self.expression = expression
        self.column = column
        super().__init__(_compose(f"{reason} (column {column}):", expression, column))

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.reason, self.expression, self.column)


class UnknownNameError(ButlerError, LookupError):
    """An expression refers to a name that is neither a known column nor a bind value.

    Parameters
    ----------
    name : `str`
        The unknown identifier.
    expression : `str`, optional
        The expression text; `None` if not available.
    column : `int`, optional
        0-based offset of the identifier in ``expression``; `None` or negative if unknown.
    known_names : `~collections.abc.Iterable` [`str`], optional
        Valid names, listed in the message and used for a "did you mean" suggestion.
    """

    def __init__(
        self,
        name: str,
        expression: str | None = None,
        column: int | None = None,
        known_names: Iterable[str] = (),
    ):
        self.name = name
        self.expression = expression
        self.column = column
        self.known_names = tuple(sorted(set(known_names)))
        matches = difflib.get_close_matches(name, self.known_names, n=1)
        self.suggestion = matches[0] if matches else None
        first = f"unknown name {name!r}"
        if column is not None and column >= 0:
            first += f" (column {column})"
        if self.suggestion is not None:
            first += f"; did you mean {self.suggestion!r}?"
        message = _compose(first, expression, column)
        if self.known_names:
            message += "\nknown names: " + ", ".join(self.known_names)
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.name, self.expression, self.column, self.known_names)


class ExpressionTypeError(ButlerError, TypeError):
    """Values of incompatible types are compared, or a bound list is used outside ``IN``.

    Parameters
    ----------
    reason : `str`
        What is wrong.
    expression : `str`, optional
        The expression text; `None` if not available.
    column : `int`, optional
        0-based offset of the offending operator or name; `None` or negative if unknown.
    """

    def __init__(self, reason: str, expression: str | None = None, column: int | None = None):
        self.reason = reason
        self.expression = expression
        self.column = column
        super().__init__(_compose(reason, expression, column))

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.reason, self.expression, self.column)


# --------------------------------------------------------------------------------------------
# Parsing and inspection
# --------------------------------------------------------------------------------------------


def parse_where(text: str, *, bind_names: Iterable[str] | None = None) -> Predicate | None:
    """Parse a ``--where`` expression.

    Parameters
    ----------
    text : `str`
        The expression.  Empty or whitespace-only text means "no constraint".
    bind_names : `~collections.abc.Iterable` [`str`], optional
        Names to parse as `BindRef` instead of `Identifier`.  `None` means none.

    Returns
    -------
    node : `Node` or `None`
        The root of the syntax tree (a `Comparison`, `InList`, `UnaryOp` or `BinaryOp`), or
        `None` for an empty expression.

    Raises
    ------
    ExpressionSyntaxError
        If ``text`` is not a valid expression; ``column`` locates the problem.
    """
    bad = next((i for i, char in enumerate(text) if "\ud800" <= char <= "\udfff"), None)
    if bad is not None:  # cannot be sent to the database, nor printed: shown as U+FFFD
        shown = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
        raise ExpressionSyntaxError(
            f"not valid text: a lone surrogate {text[bad]!r} (not a character)", shown, bad
        )
    try:
        return parse(text, frozenset(bind_names or ()))
    except ParseError as err:
        raise ExpressionSyntaxError(err.reason, text, err.column) from None


def _walk(node: Node | None) -> Iterator[Node]:
    stack = [] if node is None else [node]
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, BinaryOp):
            stack += (item.right, item.left)
        elif isinstance(item, UnaryOp):
            stack.append(item.operand)
        elif isinstance(item, Comparison):
            stack += (item.right, item.left)
        elif isinstance(item, InList):
            stack += (*reversed(item.items), item.operand)


def identifiers(
    expression: str | Node | None, *, bind: Mapping[str, Any] | None = None
) -> set[str]:
    """Return the column names an expression refers to.

    Parameters
    ----------
    expression : `str` or `Node` or `None`
        Expression text or parsed tree.
    bind : `~collections.abc.Mapping`, optional
        Bind values; their names are not column names and are left out.

    Returns
    -------
    names : `set` [`str`]
        Identifier names, e.g. ``{"visit", "visit.exposure_time"}``.

    Raises
    ------
    ExpressionSyntaxError
        If ``expression`` is text that does not parse.
    """
    bind = bind or {}
    node = parse_where(expression) if isinstance(expression, str) else expression
    return {n.name for n in _walk(node) if isinstance(n, Identifier) and n.name not in bind}


def _flatten(node: BinaryOp) -> list[Node]:
    """Return the operands of a chain of ``node.op`` (left-to-right), without recursion."""
    parts: list[Node] = []
    stack: list[Node] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, BinaryOp) and item.op == node.op:
            stack += (item.right, item.left)
        else:
            parts.append(item)
    return parts


# --------------------------------------------------------------------------------------------
# Shared operand handling
# --------------------------------------------------------------------------------------------

_COMPARATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_COLLECTIONS = (list, tuple, set, frozenset)


#: Integers must fit the registry's 64-bit integer columns.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _kind_of_value(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _kind_of_column(column: sqlalchemy.ColumnElement[Any]) -> str | None:
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return None
    if issubclass(python_type, str):
        return "string"
    if issubclass(python_type, bool):
        return "boolean"
    if issubclass(python_type, int | float | Decimal):
        return "number"
    return None


@dataclass(frozen=True, slots=True)
class _Value:
    """A resolved operand: a SQL column (compile), or a plain value, or a bound collection."""

    value: Any
    kind: str | None
    is_column: bool = False
    is_collection: bool = False
    #: ``bind value 'x'`` for a bound value, to name it in messages.
    source: str = ""

    def describe(self) -> str:
        return f"{self.source} (a {self.kind})" if self.source else f"a {self.kind}"


@dataclass(frozen=True, slots=True)
class _Context:
    """What the compiler and evaluator need besides the tree: text, binds, name lookup."""

    text: str | None
    bind: Mapping[str, Any]
    lookup: Callable[[str], Any]
    known_names: Iterable[str] | None

    def type_error(self, reason: str, column: int) -> ExpressionTypeError:
        return ExpressionTypeError(reason, self.text, column if self.text is not None else None)

    def unknown(self, name: str, column: int, known: Iterable[str] = ()) -> UnknownNameError:
        return UnknownNameError(name, self.text, column if self.text is not None else None, known)

    def plain(self, value: Any, what: str, column: int) -> _Value:
        """Check a literal or bound value the database can take; return it with its kind."""
        kind = _kind_of_value(value)
        if kind is None:
            raise self.type_error(
                f"{what} is a {type(value).__name__}; use a number or a string "
                "(or, inside IN (...), a list of them)",
                column,
            )
        if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
            raise self.type_error(
                f"{what} {value} is out of range: integers must fit in 64 bits "
                f"({_INT64_MIN}..{_INT64_MAX})",
                column,
            )
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as err:
                raise self.type_error(
                    f"{what} is not valid text: {value[err.start]!r} is a lone surrogate", column
                ) from None
        return _Value(value, kind)

    def operand(self, node: Operand, *, columns_as_sql: bool) -> _Value:
        if isinstance(node, Literal):
            return self.plain(node.value, "literal", node.column)
        if node.name in self.bind:
            value = self.bind[node.name]
            what = f"bind value {node.name!r}"
            if value is None:
                raise self.type_error(f"{what} is None", node.column)
            if isinstance(value, _COLLECTIONS):
                items = [self.plain(v, f"an item of {what}", node.column).value for v in value]
                return _Value(items, None, is_collection=True, source=what)
            plain = self.plain(value, what, node.column)
            return _Value(plain.value, plain.kind, source=what)
        if isinstance(node, BindRef):
            raise self.unknown(node.name, node.column, self.bind.keys())
        try:
            value = self.lookup(node.name)
        except KeyError:
            raise self.unknown(node.name, node.column, self.known_names or ()) from None
        if columns_as_sql:
            return _Value(value, _kind_of_column(value), is_column=True)
        return _Value(value, _kind_of_value(value))

    def scalar(self, node: Operand, *, columns_as_sql: bool) -> _Value:
        value = self.operand(node, columns_as_sql=columns_as_sql)
        if value.is_collection:
            raise self.type_error(
                f"bind value {node.name!r} is a collection; use it inside IN (...)",  # type: ignore[union-attr]
                node.column,
            )
        return value

    def check(self, left: _Value, right: _Value, column: int, what: str) -> None:
        if left.kind and right.kind and left.kind != right.kind:
            raise self.type_error(
                f"cannot compare {left.describe()} with {right.describe()} in {what}", column
            )


def _context(
    expression: str | Node | None,
    bind: Mapping[str, Any] | None,
    lookup: Callable[[str], Any],
    known_names: Iterable[str] | None,
) -> tuple[Node | None, _Context]:
    bind = dict(bind or {})
    if isinstance(expression, str):
        node = parse_where(expression, bind_names=bind.keys())
        return node, _Context(expression, bind, lookup, known_names)
    text = render(expression) if expression is not None else None
    return expression, _Context(text, bind, lookup, known_names)


# --------------------------------------------------------------------------------------------
# Compilation to SQL
# --------------------------------------------------------------------------------------------


def compile_where(
    expression: str | Node | None,
    resolve: Callable[[str], sqlalchemy.ColumnElement[Any]],
    *,
    bind: Mapping[str, Any] | None = None,
    known_names: Iterable[str] | None = None,
) -> sqlalchemy.ColumnElement[bool]:
    """Compile a ``--where`` expression to a SQLAlchemy boolean clause.

    Parameters
    ----------
    expression : `str` or `Node` or `None`
        Expression text or parsed tree; empty text or `None` means "no constraint".
    resolve : `~collections.abc.Callable` [[`str`], `sqlalchemy.ColumnElement`]
        Maps an identifier such as ``"visit"`` or ``"visit.exposure_time"`` to a column;
        raises `KeyError` for unknown names.
    bind : `~collections.abc.Mapping` [`str`, `~typing.Any`], optional
        Bind values by name.  A list, tuple or set may only be used inside ``IN (...)``.
    known_names : `~collections.abc.Iterable` [`str`], optional
        Names ``resolve`` accepts, for the "did you mean" hint of `UnknownNameError`.

    Returns
    -------
    clause : `sqlalchemy.ColumnElement` [`bool`]
        The condition; `sqlalchemy.true` for an empty expression.  Every literal and bind
        value is a bound parameter.

    Raises
    ------
    ExpressionSyntaxError
        If the text does not parse.
    UnknownNameError
        If ``resolve`` raises `KeyError` for a name, or a `BindRef` has no value in ``bind``.
    ExpressionTypeError
        If a number is compared with a string, or a bound collection is used outside ``IN``.
    """
    node, context = _context(expression, bind, resolve, known_names)
    if node is None:
        return sqlalchemy.true()
    return _compile(node, context)


def _sql(value: _Value) -> Any:
    return value.value if value.is_column else sqlalchemy.literal(value.value)


#: Most terms joined in one flat AND/OR: longer chains are nested in parenthesized groups
#: of this many, because SQLite parses a chain into a tree as deep as it is long and refuses
#: trees deeper than 1000 ("Expression tree is too large").
_CHAIN = 64


def _compile(node: Node, context: _Context) -> sqlalchemy.ColumnElement[bool]:
    if isinstance(node, BinaryOp):
        terms = _flatten(node)
        if node.op == "OR":
            terms = _equalities_as_in(terms, context)
        parts = [_compile(part, context) for part in terms]
        if len(parts) <= _CHAIN:
            return sqlalchemy.and_(*parts) if node.op == "AND" else sqlalchemy.or_(*parts)
        # and_/or_ would flatten nested groups of the same operator back into one chain;
        # the raw constructor keeps the parenthesized groups.
        op = operators.and_ if node.op == "AND" else operators.or_
        while len(parts) > _CHAIN:
            parts = [
                Grouping(BooleanClauseList._construct_raw(op, parts[i : i + _CHAIN]))
                for i in range(0, len(parts), _CHAIN)
            ]
        return BooleanClauseList._construct_raw(op, parts)
    if isinstance(node, UnaryOp):
        return sqlalchemy.not_(_compile(node.operand, context))
    if isinstance(node, Comparison):
        left = context.scalar(node.left, columns_as_sql=True)
        right = context.scalar(node.right, columns_as_sql=True)
        context.check(left, right, node.column, f"'{node.op}'")
        compare = _COMPARATORS[node.op]
        if left.is_column or right.is_column:
            # A plain value next to a column becomes a parameter typed like the column.
            return compare(left.value, right.value)
        return compare(_sql(left), right.value)
    if isinstance(node, InList):
        return _compile_in(node, context)
    raise TypeError(f"cannot compile {node!r} as a boolean expression")


def _equalities_as_in(terms: list[Node], context: _Context) -> list[Node]:
    """Merge the ``name = value`` terms of an OR chain into one ``name IN (...)`` per name.

    ``a = 1 OR a = 2 OR b = 3`` selects what ``a IN (1, 2) OR b = 3`` does (OR is
    commutative, also in three-valued logic), and an IN list of any length is one node of
    the database's expression tree.
    """
    groups: dict[str, list[Comparison]] = {}
    rest: list[Node] = []
    for term in terms:
        if isinstance(term, Comparison) and term.op == "=":
            sides = (term.left, term.right)
            columns = [s for s in sides if isinstance(s, Identifier) and s.name not in context.bind]
            if len(columns) == 1:
                groups.setdefault(columns[0].name, []).append(term)
                continue
        rest.append(term)
    merged: list[Node] = []
    for equalities in groups.values():
        if len(equalities) == 1:
            merged.append(equalities[0])
            continue
        first = equalities[0]
        column = first.left if isinstance(first.left, Identifier) else first.right
        values = tuple(
            t.right if t.left is column or t.left == column else t.left for t in equalities
        )
        merged.append(InList(column, values, column=first.column))
    return merged + rest


def _compile_in(node: InList, context: _Context) -> sqlalchemy.ColumnElement[bool]:
    operand = context.scalar(node.operand, columns_as_sql=True)
    lhs = _sql(operand)
    values: list[Any] = []
    conditions: list[sqlalchemy.ColumnElement[bool]] = []
    for item in node.items:
        if isinstance(item, Range):
            context.check(operand, _Value(item.start, "number"), node.column, "IN")
            for bound in (item.start, item.stop, item.stride):
                context.plain(bound, "range bound", item.column)
            condition = sqlalchemy.and_(lhs >= item.start, lhs <= item.stop)
            if item.stride != 1:
                condition = sqlalchemy.and_(condition, (lhs - item.start) % item.stride == 0)
            conditions.append(condition)
            continue
        value = context.operand(item, columns_as_sql=True)
        if value.is_collection:
            for element in value.value:
                context.check(operand, _Value(element, _kind_of_value(element)), node.column, "IN")
            values += value.value
        elif value.is_column:
            context.check(operand, value, node.column, "IN")
            conditions.append(lhs == value.value)
        else:
            context.check(operand, value, node.column, "IN")
            values.append(value.value)
    if values:
        conditions.insert(0, lhs.in_(values))
    clause = sqlalchemy.or_(*conditions) if conditions else sqlalchemy.false()
    return sqlalchemy.not_(clause) if node.negated else clause


# --------------------------------------------------------------------------------------------
# In-memory evaluation
# --------------------------------------------------------------------------------------------


def evaluate_where(
    expression: str | Node | None,
    row: Mapping[str, Any],
    *,
    bind: Mapping[str, Any] | None = None,
) -> bool:
    """Evaluate a ``--where`` expression on one row, with the same semantics as the SQL.

    Parameters
    ----------
    expression : `str` or `Node` or `None`
        Expression text or parsed tree; empty text or `None` means "no constraint".
    row : `~collections.abc.Mapping` [`str`, `~typing.Any`]
        Values keyed by identifier name (``"visit"``, ``"visit.exposure_time"``); `None` is
        SQL NULL.
    bind : `~collections.abc.Mapping` [`str`, `~typing.Any`], optional
        Bind values by name, as for `compile_where`.

    Returns
    -------
    selected : `bool`
        `True` only if the expression is true (unknown, as in SQL, counts as not selected).

    Raises
    ------
    ExpressionSyntaxError
        If the text does not parse.
    UnknownNameError
        If a name is neither a key of ``row`` nor of ``bind``.
    ExpressionTypeError
        If values of incompatible types are compared.
    """
    node, context = _context(expression, bind, row.__getitem__, row.keys())
    if node is None:
        return True
    return _evaluate(node, context) is True


def _not(value: bool | None) -> bool | None:
    return None if value is None else not value


def _evaluate(node: Node, context: _Context) -> bool | None:
    if isinstance(node, BinaryOp):
        results = [_evaluate(part, context) for part in _flatten(node)]
        decisive = node.op == "OR"  # True decides OR, False decides AND
        if decisive in results:
            return decisive
        return None if None in results else not decisive
    if isinstance(node, UnaryOp):
        return _not(_evaluate(node.operand, context))
    if isinstance(node, Comparison):
        left = context.scalar(node.left, columns_as_sql=False)
        right = context.scalar(node.right, columns_as_sql=False)
        if left.value is None or right.value is None:
            return None
        context.check(left, right, node.column, f"'{node.op}'")
        try:
            return bool(_COMPARATORS[node.op](left.value, right.value))
        except TypeError as err:
            raise context.type_error(
                f"cannot compare with '{node.op}': {err}", node.column
            ) from err
    if isinstance(node, InList):
        result = _evaluate_in(node, context)
        return _not(result) if node.negated else result
    raise TypeError(f"cannot evaluate {node!r} as a boolean expression")


def _evaluate_in(node: InList, context: _Context) -> bool | None:
    operand = context.scalar(node.operand, columns_as_sql=False)
    candidates: list[_Value | Range] = []
    for item in node.items:
        if isinstance(item, Range):
            candidates.append(item)
            continue
        value = context.operand(item, columns_as_sql=False)
        if value.is_collection:
            candidates += [_Value(v, _kind_of_value(v)) for v in value.value]
        else:
            candidates.append(value)
    if not candidates:
        return False
    if operand.value is None:
        return None
    unknown = False
    x = operand.value
    for candidate in candidates:
        if isinstance(candidate, Range):
            context.check(operand, _Value(candidate.start, "number"), node.column, "IN")
            start, stop, stride = candidate.start, candidate.stop, candidate.stride
            if start <= x <= stop and (x - start) % stride == 0:
                return True
        elif candidate.value is None:
            unknown = True
        else:
            context.check(operand, candidate, node.column, "IN")
            if x == candidate.value:
                return True
    return None if unknown else False
