"""Contracts: boolean expressions over task configs, checked without `eval`.

Design
------
A contract such as::

    calibrate.doAstrometry == False or charImage.connections.outputSchema == 'icSrc_schema'

is parsed with ``ast.parse(mode="eval")`` and walked by `_Evaluator`, which knows a short
whitelist of nodes: boolean operators, comparisons, ``not`` and unary minus/plus, constants,
names (task labels, bound to their configs), attribute chains (never a name starting with
``_``), subscripts, list/tuple/set displays and the arithmetic ``+ - * / // %``. Any other node
(a call, a lambda, a comprehension, ...) raises `ContractError` naming the construct, so a
pipeline file can never run code through a contract. The module holds no state.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Mapping
from typing import Any

from .._errors import ContractError

__all__ = ["check_contract", "contract_labels", "evaluate_contract"]

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_UNARY = {ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos}
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


def _prefix(where: str | None) -> str:
    return f"{where}: " if where else ""


def _parse(expression: str, where: str | None) -> ast.Expression:
    try:
        return ast.parse(expression.strip(), mode="eval")
    except SyntaxError as err:
        raise ContractError(
            f"{_prefix(where)}contract {expression!r} is not a valid expression: {err.msg}"
        ) from err


class _Evaluator:
    """Walks a parsed contract; ``names`` maps task labels to their configs."""

    def __init__(self, expression: str, names: Mapping[str, Any], where: str | None):
        self._expression = expression
        self._names = names
        self._where = where

    def _fail(self, message: str) -> ContractError:
        return ContractError(f"{_prefix(self._where)}contract {self._expression!r}: {message}")

    def visit(self, node: ast.AST) -> Any:
        method = getattr(self, f"_visit_{type(node).__name__}", None)
        if method is None:
            raise self._fail(
                f"construct {type(node).__name__!r} ({ast.unparse(node)!r}) is not allowed; "
                "contracts may use comparisons, and/or/not, constants, task labels with "
                "attributes, subscripts, lists/tuples and + - * /"
            )
        return method(node)

    def _visit_Expression(self, node: ast.Expression) -> Any:
        return self.visit(node.body)

    def _visit_Constant(self, node: ast.Constant) -> Any:
        return node.value

    def _visit_Name(self, node: ast.Name) -> Any:
        if node.id not in self._names:
            raise self._fail(
                f"unknown name {node.id!r}; contracts may name task labels: {sorted(self._names)}"
            )
        return self._names[node.id]

    def _visit_Attribute(self, node: ast.Attribute) -> Any:
        if node.attr.startswith("_"):
            raise self._fail(f"private attribute {node.attr!r} is not allowed")
        value = self.visit(node.value)
        try:
            return getattr(value, node.attr)
        except AttributeError as err:
            raise self._fail(f"{ast.unparse(node.value)!r} has no field {node.attr!r}") from err

    def _visit_Subscript(self, node: ast.Subscript) -> Any:
        value = self.visit(node.value)
        index = self.visit(node.slice)
        try:
            return value[index]
        except (KeyError, IndexError, TypeError) as err:
            raise self._fail(f"cannot evaluate {ast.unparse(node)!r}: {err!r}") from err

    def _visit_List(self, node: ast.List) -> Any:
        return [self.visit(e) for e in node.elts]

    def _visit_Tuple(self, node: ast.Tuple) -> Any:
        return tuple(self.visit(e) for e in node.elts)

    def _visit_Set(self, node: ast.Set) -> Any:
        return {self.visit(e) for e in node.elts}

    def _visit_BoolOp(self, node: ast.BoolOp) -> Any:
        if isinstance(node.op, ast.And):
            result: Any = True
            for value in node.values:
                result = self.visit(value)
                if not result:
                    return result
            return result
        result = False
        for value in node.values:
            result = self.visit(value)
            if result:
                return result
        return result

    def _visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        op = _UNARY.get(type(node.op))
        if op is None:
            raise self._fail(f"operator {type(node.op).__name__!r} is not allowed")
        return op(self.visit(node.operand))

    def _visit_BinOp(self, node: ast.BinOp) -> Any:
        op = _BINARY.get(type(node.op))
        if op is None:
            raise self._fail(f"operator {type(node.op).__name__!r} is not allowed")
        left, right = self.visit(node.left), self.visit(node.right)
        try:
            return op(left, right)
        except (TypeError, ArithmeticError) as err:
            raise self._fail(f"cannot evaluate {ast.unparse(node)!r}: {err}") from err

    def _visit_Compare(self, node: ast.Compare) -> Any:
        left = self.visit(node.left)
        for op_node, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.visit(right_node)
            try:
                ok = _COMPARE[type(op_node)](left, right)
            except TypeError as err:
                raise self._fail(f"cannot evaluate {ast.unparse(node)!r}: {err}") from err
            if not ok:
                return False
            left = right
        return True


def evaluate_contract(
    expression: str, configs: Mapping[str, Any], *, where: str | None = None
) -> Any:
    """Evaluate a contract expression over task configs.

    Parameters
    ----------
    expression : `str`
        The contract text.
    configs : `~collections.abc.Mapping` [`str`, `object`]
        Config of each task, by label.
    where : `str`, optional
        ``file:line`` of the contract, for messages.

    Returns
    -------
    value : `object`
        The value of the expression (normally a `bool`).

    Raises
    ------
    ContractError
        If the expression does not parse, uses a construct outside the whitelist, names an
        unknown label or field, or cannot be evaluated.
    """
    return _Evaluator(expression, configs, where).visit(_parse(expression, where))


def check_contract(
    expression: str,
    configs: Mapping[str, Any],
    *,
    msg: str | None = None,
    where: str | None = None,
) -> None:
    """Evaluate a contract and raise if it is false.

    Raises
    ------
    ContractError
        If the contract is false (the message holds the contract text and ``msg``), or as
        `evaluate_contract`.
    """
    if not evaluate_contract(expression, configs, where=where):
        detail = f": {msg}" if msg else ""
        raise ContractError(f"{_prefix(where)}contract {expression!r} failed{detail}")


def contract_labels(expression: str, *, where: str | None = None) -> set[str]:
    """Return the names (task labels) a contract refers to.

    Raises
    ------
    ContractError
        If the expression does not parse.
    """
    tree = _parse(expression, where)
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
