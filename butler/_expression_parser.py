"""Syntax of the ``--where`` language: syntax-tree nodes, tokenizer, parser, renderer.

Design
------
The text is split into tokens by one regular expression (plus a hand-written scanner for
single-quoted strings, whose ``''`` escape a regular expression handles poorly), then parsed by
recursive descent, one function per precedence level::

    expression := or_term
    or_term    := and_term ("OR" and_term)*
    and_term   := not_term ("AND" not_term)*
    not_term   := "NOT" not_term | predicate
    predicate  := "(" expression ")"
                | operand compare_op operand
                | operand ["NOT"] "IN" "(" item ("," item)* ")"
    item       := operand | integer ".." integer [":" integer]
    operand    := identifier | string | ["-"] number

Keywords are case-insensitive.  ``AND`` and ``OR`` associate to the left, so a chain of N terms
is a left-deep tree; the consumers in `butler.expressions` walk such chains with loops, not
recursion, so long generated clauses do not exhaust the Python stack.  Explicit nesting
(parentheses and ``NOT``) is limited to `MAX_NESTING` levels for the same reason.

The only mutable state is the `_Parser` cursor, which lives for one `parse` call.  Errors are
raised as `ParseError` (reason and 0-based column); `butler.expressions.parse_where` turns them
into `butler.expressions.ExpressionSyntaxError`, which knows how to show the text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

__all__ = [
    "MAX_NESTING",
    "BinaryOp",
    "BindRef",
    "Comparison",
    "Identifier",
    "InList",
    "Literal",
    "Node",
    "Operand",
    "ParseError",
    "Predicate",
    "Range",
    "UnaryOp",
    "parse",
    "render",
]

MAX_NESTING = 200
"""Maximum depth of parentheses and ``NOT`` nesting accepted by the parser."""

COMPARISON_OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
KEYWORDS = frozenset({"AND", "OR", "NOT", "IN"})


# --------------------------------------------------------------------------------------------
# Syntax tree.  ``column`` (0-based offset in the parsed text, -1 when built by hand) is kept
# for error messages only and takes no part in equality.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    """Base class of every node of a parsed ``--where`` expression."""


@dataclass(frozen=True, slots=True)
class Identifier(Node):
    """A (possibly dotted) name, e.g. ``visit`` or ``visit.exposure_time``.

    Whether it names a column or a bind value is decided when the expression is compiled or
    evaluated: names that are keys of ``bind`` are bind values.
    """

    name: str
    column: int = field(default=-1, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class BindRef(Node):
    """A reference to a bind value, produced by `parse` for names listed in ``bind_names``."""

    name: str
    column: int = field(default=-1, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Literal(Node):
    """A string, integer or float constant."""

    value: str | int | float
    column: int = field(default=-1, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Range(Node):
    """An inclusive integer range ``start..stop[:stride]``; only valid inside ``IN (...)``."""

    start: int
    stop: int
    stride: int = 1
    column: int = field(default=-1, compare=False, repr=False, kw_only=True)


Operand = Identifier | BindRef | Literal


@dataclass(frozen=True, slots=True)
class Comparison(Node):
    """``left op right`` with ``op`` one of ``= != < <= > >=``."""

    op: str
    left: Operand
    right: Operand
    column: int = field(default=-1, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class InList(Node):
    """``operand [NOT] IN (items...)``."""

    operand: Operand
    items: tuple[Operand | Range, ...]
    negated: bool = False
    column: int = field(default=-1, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class UnaryOp(Node):
    """Logical negation; ``op`` is always ``"NOT"``."""

    op: str
    operand: Predicate
    column: int = field(default=-1, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class BinaryOp(Node):
    """Logical conjunction or disjunction; ``op`` is ``"AND"`` or ``"OR"``."""

    op: str
    left: Predicate
    right: Predicate
    column: int = field(default=-1, compare=False, repr=False, kw_only=True)


Predicate = Comparison | InList | UnaryOp | BinaryOp


# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------


class ParseError(Exception):
    """Raised by `parse`; carries the reason and the 0-based column of the problem."""

    def __init__(self, reason: str, column: int):
        super().__init__(reason, column)
        self.reason = reason
        self.column = column


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # int float string name keyword op range ( ) , : - eof
    text: str
    column: int
    value: object = None


_TOKEN_RE = re.compile(
    r"""
     (?P<ws>\s+)
    |(?P<float>(?:\d+\.\d+|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
    |(?P<int>\d+)
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    |(?P<op><=|>=|!=|<|>|=)
    |(?P<range>\.\.)
    |(?P<punct>[(),:-])
    """,
    re.VERBOSE,
)


def _scan_string(text: str, start: int) -> tuple[str, int]:
    """Scan a single-quoted string starting at ``text[start] == "'"``; return value and end."""
    pieces = []
    pos = start + 1
    while True:
        end = text.find("'", pos)
        if end < 0:
            raise ParseError("unterminated string literal", start)
        pieces.append(text[pos:end])
        if text.startswith("''", end):
            pieces.append("'")
            pos = end + 2
        else:
            return "".join(pieces), end + 1


def _tokenize(text: str) -> Iterator[_Token]:
    pos = 0
    while pos < len(text):
        if text[pos] == "'":
            value, end = _scan_string(text, pos)
            yield _Token("string", text[pos:end], pos, value)
            pos = end
            continue
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise ParseError(f"unexpected character {text[pos]!r}", pos)
        kind, lexeme = match.lastgroup, match.group()
        if kind == "float":
            value = float(lexeme)
            if not math.isfinite(value):
                raise ParseError(f"number {lexeme} is out of range", pos)
            yield _Token("float", lexeme, pos, value)
        elif kind == "int":
            yield _Token("int", lexeme, pos, int(lexeme))
        elif kind == "name" and lexeme.upper() in KEYWORDS:
            yield _Token("keyword", lexeme, pos, lexeme.upper())
        elif kind == "punct":
            yield _Token(lexeme, lexeme, pos)
        elif kind != "ws":
            yield _Token(kind, lexeme, pos, lexeme)
        pos = match.end()
    yield _Token("eof", "", len(text))


def _describe(token: _Token) -> str:
    return "end of expression" if token.kind == "eof" else repr(token.text)


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------


class _Parser:
    """Recursive-descent cursor over the tokens of one expression."""

    def __init__(self, text: str, bind_names: Collection[str]):
        self._tokens = list(_tokenize(text))
        self._pos = 0
        self._depth = 0
        self._bind_names = bind_names

    def _peek(self, offset: int = 0) -> _Token:
        return self._tokens[min(self._pos + offset, len(self._tokens) - 1)]

    def _next(self) -> _Token:
        token = self._peek()
        self._pos += 1
        return token

    def _is_keyword(self, word: str, offset: int = 0) -> bool:
        token = self._peek(offset)
        return token.kind == "keyword" and token.value == word

    def _expect(self, kind: str, what: str) -> _Token:
        token = self._peek()
        if token.kind != kind:
            raise ParseError(f"expected {what}, found {_describe(token)}", token.column)
        return self._next()

    def _nest(self, token: _Token) -> None:
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise ParseError(f"expression nested more than {MAX_NESTING} levels", token.column)

    def parse(self) -> Predicate:
        node = self._or_term()
        token = self._peek()
        if token.kind != "eof":
            raise ParseError(
                f"unexpected {_describe(token)} after a complete expression", token.column
            )
        return node

    def _or_term(self) -> Predicate:
        node = self._and_term()
        while self._is_keyword("OR"):
            column = self._next().column
            node = BinaryOp("OR", node, self._and_term(), column=column)
        return node

    def _and_term(self) -> Predicate:
        node = self._not_term()
        while self._is_keyword("AND"):
            column = self._next().column
            node = BinaryOp("AND", node, self._not_term(), column=column)
        return node

    def _not_term(self) -> Predicate:
        if not self._is_keyword("NOT"):
            return self._predicate()
        token = self._next()
        self._nest(token)
        node = UnaryOp("NOT", self._not_term(), column=token.column)
        self._depth -= 1
        return node

    def _predicate(self) -> Predicate:
        token = self._peek()
        if token.kind == "(":
            self._next()
            self._nest(token)
            node = self._or_term()
            closing = self._peek()
            if closing.kind != ")":
                raise ParseError(
                    f"expected ')' to close '(' at column {token.column}, "
                    f"found {_describe(closing)}",
                    closing.column,
                )
            self._next()
            self._depth -= 1
            return node
        left = self._operand()
        token = self._peek()
        if token.kind == "op":
            self._next()
            return Comparison(token.text, left, self._operand(), column=token.column)
        negated = self._is_keyword("NOT")
        if negated:
            self._next()
            if not self._is_keyword("IN"):
                found = self._peek()
                raise ParseError(f"expected IN after NOT, found {_describe(found)}", found.column)
        if self._is_keyword("IN"):
            return self._in_list(left, negated, token.column)
        raise ParseError(
            f"expected a comparison operator or IN, found {_describe(token)}", token.column
        )

    def _in_list(self, operand: Operand, negated: bool, column: int) -> InList:
        self._next()  # IN
        self._expect("(", "'(' after IN")
        if self._peek().kind == ")":
            raise ParseError("empty IN list", self._peek().column)
        items = [self._item()]
        while self._peek().kind == ",":
            self._next()
            items.append(self._item())
        closing = self._peek()
        if closing.kind != ")":
            raise ParseError(
                f"expected ',' or ')' in IN list, found {_describe(closing)}", closing.column
            )
        self._next()
        return InList(operand, tuple(items), negated, column=column)

    def _item(self) -> Operand | Range:
        operand = self._operand()
        if self._peek().kind != "range":
            return operand
        self._next()  # ..
        if not (isinstance(operand, Literal) and type(operand.value) is int):
            raise ParseError("range bounds must be integer literals", operand.column)
        stop = self._operand()
        if not (isinstance(stop, Literal) and type(stop.value) is int):
            raise ParseError("range bounds must be integer literals", stop.column)
        stride = 1
        if self._peek().kind == ":":
            self._next()
            stride_token = self._peek()
            if stride_token.kind != "int" or stride_token.value == 0:
                raise ParseError(
                    f"range stride must be a positive integer, found {_describe(stride_token)}",
                    stride_token.column,
                )
            stride = self._next().value
        if stop.value < operand.value:
            raise ParseError(f"empty range {operand.value}..{stop.value}", operand.column)
        return Range(operand.value, stop.value, stride, column=operand.column)

    def _operand(self) -> Operand:
        token = self._next()
        if token.kind == "name":
            cls = BindRef if token.value in self._bind_names else Identifier
            return cls(token.text, column=token.column)
        if token.kind in ("string", "int", "float"):
            return Literal(token.value, column=token.column)
        if token.kind == "-" and self._peek().kind in ("int", "float"):
            return Literal(-self._next().value, column=token.column)
        raise ParseError(
            f"expected a name or a literal value, found {_describe(token)}", token.column
        )


def parse(text: str, bind_names: Collection[str] = ()) -> Predicate | None:
    """Parse ``text``; return `None` for an empty or whitespace-only expression.

    Raises
    ------
    ParseError
        If the text is not a valid expression.
    """
    if not text.strip():
        return None
    return _Parser(text, bind_names).parse()


# --------------------------------------------------------------------------------------------
# Renderer
# --------------------------------------------------------------------------------------------

_PRECEDENCE = {"OR": 1, "AND": 2, "NOT": 3}
_ATOM = 4


def _precedence(node: Node) -> int:
    if isinstance(node, BinaryOp | UnaryOp):
        return _PRECEDENCE[node.op]
    return _ATOM


def _render_value(node: Operand | Range) -> str:
    if isinstance(node, Identifier | BindRef):
        return node.name
    if isinstance(node, Range):
        text = f"{node.start}..{node.stop}"
        return text if node.stride == 1 else f"{text}:{node.stride}"
    value = node.value
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"cannot render non-finite float literal {value!r}")
    return repr(value)


def _render_predicate(node: Node) -> str:
    if isinstance(node, Comparison):
        return f"{_render_value(node.left)} {node.op} {_render_value(node.right)}"
    if isinstance(node, InList):
        items = ", ".join(_render_value(item) for item in node.items)
        keyword = "NOT IN" if node.negated else "IN"
        return f"{_render_value(node.operand)} {keyword} ({items})"
    raise TypeError(f"cannot render {node!r} as a predicate")


def render(node: Node | None) -> str:
    """Return the canonical text of ``node``; ``parse(render(node)) == node``.

    Parameters
    ----------
    node : `Node` or `None`
        Expression to render; `None` (no constraint) renders as the empty string.

    Returns
    -------
    text : `str`
        Keywords in upper case, single spaces, and parentheses only where precedence or the
        tree's shape requires them (``a AND (b AND c)`` keeps its parentheses).
    """
    if node is None:
        return ""
    if isinstance(node, Identifier | BindRef | Literal | Range):
        return _render_value(node)
    # Iterative over left-deep AND/OR chains and NOT chains; recursion only for explicit nesting.
    out: list[str] = []
    stack: list[Node | str] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, BinaryOp):
            own = _PRECEDENCE[item.op]
            right = item.right
            if _precedence(right) <= own:
                stack.append(f"({render(right)})")
            else:
                stack.append(right)
            stack.append(f" {item.op} ")
            if _precedence(item.left) < own:
                stack.append(f"({render(item.left)})")
            else:
                stack.append(item.left)
        elif isinstance(item, UnaryOp):
            if _precedence(item.operand) < _PRECEDENCE["NOT"]:
                stack.append(f"({render(item.operand)})")
            else:
                stack.append(item.operand)
            stack.append("NOT ")
        else:
            out.append(_render_predicate(item))
    return "".join(out)
