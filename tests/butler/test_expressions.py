"""Tests for the ``--where`` expression language (butler/expressions.py)."""

from __future__ import annotations

import pickle

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from butler._errors import ButlerError
from butler.expressions import (
    BinaryOp,
    BindRef,
    Comparison,
    ExpressionSyntaxError,
    ExpressionTypeError,
    Identifier,
    InList,
    Literal,
    Range,
    UnaryOp,
    UnknownNameError,
    compile_where,
    evaluate_where,
    identifiers,
    parse_where,
    render,
)

# ------------------------------------------------------------------------------------------
# A small real SQLite table
# ------------------------------------------------------------------------------------------

COLUMNS = {
    "visit": ("visit", sa.Integer),
    "detector": ("detector", sa.Integer),
    "visit.exposure_time": ("visit_exposure_time", sa.Float),
    "band": ("band", sa.String),
    "instrument": ("instrument", sa.String),
}


class Table:
    """An in-memory SQLite table ``dataset`` with one column per identifier in COLUMNS."""

    def __init__(self, rows):
        self.engine = sa.create_engine("sqlite://")
        metadata = sa.MetaData()
        self.table = sa.Table(
            "dataset",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            *(sa.Column(sql_name, sql_type) for sql_name, sql_type in COLUMNS.values()),
        )
        metadata.create_all(self.engine)
        self.rows = [dict(row, id=i) for i, row in enumerate(rows)]
        if self.rows:
            with self.engine.begin() as connection:
                connection.execute(
                    self.table.insert(),
                    [
                        {"id": row["id"], **{COLUMNS[k][0]: row[k] for k in COLUMNS}}
                        for row in self.rows
                    ],
                )

    def resolve(self, name):
        return self.table.c[COLUMNS[name][0]]

    def select(self, expression, **kwargs):
        clause = compile_where(expression, self.resolve, known_names=COLUMNS, **kwargs)
        statement = sa.select(self.table.c.id).where(clause)
        with self.engine.connect() as connection:
            return {row[0] for row in connection.execute(statement)}

    def select_in_memory(self, expression, **kwargs):
        return {
            row["id"]
            for row in self.rows
            if evaluate_where(expression, {k: row[k] for k in COLUMNS}, **kwargs)
        }

    def table_names(self):
        return set(sa.inspect(self.engine).get_table_names())


def make_row(visit, detector=1, exposure_time=30.0, band="r", instrument="HSC"):
    return {
        "visit": visit,
        "detector": detector,
        "visit.exposure_time": exposure_time,
        "band": band,
        "instrument": instrument,
    }


@pytest.fixture
def table():
    return Table(
        [
            make_row(1, 0, 15.0, "g"),
            make_row(2, 1, 30.0, "r"),
            make_row(3, 2, 30.0, "i", "LSST"),
            make_row(4, 3, None, "x' OR 1=1 --"),
            make_row(None, 4, 60.0, None),
            make_row(10, 5, 30.0, "1 OR 1=1", "LSST"),
        ]
    )


# ------------------------------------------------------------------------------------------
# Parsing
# ------------------------------------------------------------------------------------------


def ident(name):
    return Identifier(name)


def eq(name, value):
    return Comparison("=", Identifier(name), Literal(value))


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_comparison_operators(op):
    assert parse_where(f"visit {op} 12") == Comparison(op, ident("visit"), Literal(12))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12", 12),
        ("-12", -12),
        ("- 12", -12),
        ("1.5", 1.5),
        ("-0.25", -0.25),
        (".5", 0.5),
        ("2e3", 2000.0),
        ("1.5E-2", 0.015),
        ("'r'", "r"),
        ("''", ""),
        ("'it''s'", "it's"),
        ("'a b\tc'", "a b\tc"),
    ],
)
def test_literals(text, value):
    node = parse_where(f"band = {text}")
    assert node == Comparison("=", ident("band"), Literal(value))
    assert type(node.right.value) is type(value)


def test_dotted_identifier_and_literal_on_left():
    node = parse_where("30.0 <= visit.exposure_time")
    assert node == Comparison("<=", Literal(30.0), ident("visit.exposure_time"))
    assert parse_where("detector.full_name = 'R22_S11'").left == ident("detector.full_name")


def test_in_list_items_and_ranges():
    node = parse_where("visit IN (1, -2, 1..10, 0..20:5, vs, 'a')")
    assert node == InList(
        ident("visit"),
        (Literal(1), Literal(-2), Range(1, 10), Range(0, 20, 5), ident("vs"), Literal("a")),
    )
    assert parse_where("visit NOT IN (3)") == InList(ident("visit"), (Literal(3),), negated=True)
    assert parse_where("visit in (-3..-1)").items == (Range(-3, -1),)


def test_keywords_are_case_insensitive():
    expected = parse_where("NOT visit = 1 AND detector IN (2) OR band NOT IN ('g')")
    assert parse_where("not visit = 1 and detector in (2) or band Not In ('g')") == expected


def test_precedence_not_and_or():
    a, b, c = eq("a", 1), eq("b", 2), eq("c", 3)
    assert parse_where("a = 1 OR b = 2 AND c = 3") == BinaryOp("OR", a, BinaryOp("AND", b, c))
    assert parse_where("a = 1 AND b = 2 OR c = 3") == BinaryOp("OR", BinaryOp("AND", a, b), c)
    assert parse_where("NOT a = 1 AND b = 2") == BinaryOp("AND", UnaryOp("NOT", a), b)
    assert parse_where("NOT (a = 1 AND b = 2)") == UnaryOp("NOT", BinaryOp("AND", a, b))
    assert parse_where("(a = 1 OR b = 2) AND c = 3") == BinaryOp("AND", BinaryOp("OR", a, b), c)
    # Left associativity, and explicit right nesting is kept.
    assert parse_where("a = 1 AND b = 2 AND c = 3") == BinaryOp("AND", BinaryOp("AND", a, b), c)
    assert parse_where("a = 1 AND (b = 2 AND c = 3)") == BinaryOp("AND", a, BinaryOp("AND", b, c))
    assert parse_where("NOT NOT a = 1") == UnaryOp("NOT", UnaryOp("NOT", a))


def test_bind_names_become_bind_refs():
    node = parse_where("visit IN (vs) AND band = b", bind_names=["vs", "b"])
    assert node == BinaryOp(
        "AND",
        InList(ident("visit"), (BindRef("vs"),)),
        Comparison("=", ident("band"), BindRef("b")),
    )


def test_positions_are_recorded_but_not_compared():
    node = parse_where("band = 'r' AND  visit = 3")
    assert node.right.left.column == 16
    assert node.right.column == 22
    assert node == parse_where("band='r' AND visit=3")


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_expression_means_no_constraint(text, table):
    assert parse_where(text) is None
    assert compile_where(text, table.resolve).compare(sa.true())
    assert evaluate_where(text, {})
    assert table.select(text) == {row["id"] for row in table.rows}
    assert identifiers(text) == set()


def test_render_canonical():
    text = "visit in (1..10:1, 2..8:2,vs) and not (band='it''s' or detector>=-3.5) or x != 'y'"
    assert render(parse_where(text)) == (
        "visit IN (1..10, 2..8:2, vs) AND NOT (band = 'it''s' OR detector >= -3.5) OR x != 'y'"
    )
    assert render(None) == ""


def test_identifiers():
    text = "visit IN (vs, other) AND NOT detector.full_name = b OR 3 < visit.exposure_time"
    assert identifiers(text) == {"visit", "vs", "other", "detector.full_name", "b",
                                 "visit.exposure_time"}
    assert identifiers(text, bind={"vs": [1], "b": "x"}) == {
        "visit", "other", "detector.full_name", "visit.exposure_time"
    }
    assert identifiers(parse_where(text, bind_names=["b"])) == identifiers(text) - {"b"}


# ------------------------------------------------------------------------------------------
# Syntax errors, with the caret
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "column", "reason"),
    [
        ("visit = 1; DROP TABLE dataset", 9, "unexpected character ';'"),
        ("band = 'abc", 7, "unterminated string"),
        ("band = 'it''s", 7, "unterminated string"),
        ("(visit = 1 AND detector = 2", 27, "expected ')'"),
        ("visit IN (1, 2", 14, "expected ',' or ')'"),
        ("visit IN ()", 10, "empty IN list"),
        ("visit IN (5..1)", 10, "empty range 5..1"),
        ("visit IN (1..5:0)", 15, "stride"),
        ("visit IN (1.5..3)", 10, "integer"),
        ("visit IN (1..x)", 13, "integer"),
        ("visit = 1 detector", 10, "after a complete expression"),
        ("visit = 1)", 9, "after a complete expression"),
        ("visit", 5, "expected a comparison operator or IN"),
        ("visit == 1", 7, "expected a name or a literal"),
        ("visit = ", 8, "expected a name or a literal"),
        ("visit NOT = 3", 10, "expected IN after NOT"),
        ("visit IN 3", 9, "'(' after IN"),
        ("AND visit = 1", 0, "expected a name or a literal"),
        ("visit = 1 AND", 13, "expected a name or a literal"),
        ("visit = 1e999", 8, "out of range"),
        ("visit = 1 -- comment", 10, "unexpected '-'"),
        ('band = "r"', 7, "unexpected character '\"'"),
    ],
)
def test_syntax_errors_point_at_column(text, column, reason):
    with pytest.raises(ExpressionSyntaxError) as info:
        parse_where(text)
    error = info.value
    assert isinstance(error, ValueError) and isinstance(error, ButlerError)
    assert error.expression == text
    assert error.column == column
    assert reason in error.reason
    lines = str(error).splitlines()
    assert lines[-2] == text
    assert lines[-1] == " " * column + "^"
    # The caret is under the offending character (or just past the end for end-of-input).
    assert len(lines[-1]) - 1 == column


def test_syntax_error_caret_on_the_right_line_of_multiline_text():
    text = "visit = 1 AND\n  band = 'r' AND ;"
    with pytest.raises(ExpressionSyntaxError) as info:
        parse_where(text)
    assert info.value.column == text.index(";")
    lines = str(info.value).splitlines()
    assert lines[-2] == "  band = 'r' AND ;"
    assert lines[-1].index("^") == lines[-2].index(";")


def test_deep_nesting_is_a_syntax_error_not_a_crash():
    with pytest.raises(ExpressionSyntaxError, match="nested"):
        parse_where("(" * 1000 + "visit = 1" + ")" * 1000)
    with pytest.raises(ExpressionSyntaxError, match="nested"):
        parse_where("NOT " * 1000 + "visit = 1")
    assert parse_where("(" * 50 + "visit = 1" + ")" * 50) == eq("visit", 1)


def test_long_flat_chains_do_not_recurse(table):
    text = " OR ".join(f"visit = {i}" for i in range(5000))
    node = parse_where(text)
    assert render(node) == text
    assert identifiers(node) == {"visit"}
    assert evaluate_where(node, {"visit": 4999})
    assert not evaluate_where(node, {"visit": 5000})
    clause = compile_where(node, table.resolve)
    # SQLite caps its expression depth at 1000: the equalities become one IN list...
    assert " OR " not in str(clause.compile(table.engine))
    assert table.select(text) == {0, 1, 2, 3, 5}
    # ...and other long chains nest in parenthesized groups, with the same answer.
    mixed = " OR ".join(f"(visit = {i} AND visit >= 0)" for i in range(1100))
    assert table.select(mixed) == {0, 1, 2, 3, 5}
    assert table.select(f"NOT ({mixed})") == table.select("visit >= 1100")
    long_and = " AND ".join(f"visit != {i}" for i in range(1, 1100))
    assert table.select(long_and) == table.select("visit = 0 OR visit >= 1100")


def test_errors_pickle():
    for error in (
        ExpressionSyntaxError("bad", "visit = ;", 8),
        UnknownNameError("visti", "visti = 1", 0, ["visit"]),
        ExpressionTypeError("mismatch", "visit = 'a'", 6),
    ):
        clone = pickle.loads(pickle.dumps(error))
        assert type(clone) is type(error)
        assert str(clone) == str(error)
        assert clone.column == error.column


# ------------------------------------------------------------------------------------------
# Name and type errors
# ------------------------------------------------------------------------------------------


def test_unknown_name_in_compile(table):
    text = "band = 'r' AND visti = 3"
    with pytest.raises(UnknownNameError) as info:
        compile_where(text, table.resolve, known_names=COLUMNS)
    error = info.value
    assert isinstance(error, LookupError) and isinstance(error, ButlerError)
    assert error.name == "visti"
    assert error.column == 15
    assert error.suggestion == "visit"
    message = str(error)
    assert "'visti'" in message and "did you mean 'visit'?" in message
    lines = message.splitlines()
    assert lines[1] == text
    assert lines[2] == " " * 15 + "^"
    assert lines[3] == "known names: " + ", ".join(sorted(COLUMNS))


def test_unknown_name_without_known_names(table):
    with pytest.raises(UnknownNameError) as info:
        compile_where("nothing_like_it = 3", table.resolve)
    assert info.value.suggestion is None
    assert "did you mean" not in str(info.value)


def test_unknown_name_in_evaluate():
    with pytest.raises(UnknownNameError) as info:
        evaluate_where("detector IN (1) AND vist = 2", {"visit": 2, "detector": 1})
    assert info.value.suggestion == "visit"
    assert info.value.column == 20


def test_missing_bind_ref_value(table):
    node = parse_where("visit = v", bind_names=["v"])
    with pytest.raises(UnknownNameError, match="'v'"):
        compile_where(node, table.resolve)
    with pytest.raises(UnknownNameError, match="'v'"):
        evaluate_where(node, {"visit": 1})


@pytest.mark.parametrize(
    ("text", "bind", "column"),
    [
        ("visit = vs", {"vs": [1, 2]}, 8),
        ("visit = 'a'", {}, 6),
        ("band < 3", {}, 5),
        ("band IN (1..3)", {}, 5),
        ("visit IN (1, 'x')", {}, 6),
        ("visit IN (vs)", {"vs": [1, "x"]}, 6),
        ("band = b", {"b": 7}, 5),
        ("visit = b", {"b": None}, 8),
        ("'a' = 1", {}, 4),
    ],
)
def test_type_errors(text, bind, column, table):
    for run in (
        lambda: compile_where(text, table.resolve, bind=bind),
        lambda: evaluate_where(text, {"visit": 3, "band": "r"}, bind=bind),
    ):
        with pytest.raises(ExpressionTypeError) as info:
            run()
        assert isinstance(info.value, TypeError) and isinstance(info.value, ButlerError)
        assert info.value.column == column
        assert str(info.value).splitlines()[-1] == " " * column + "^"


# ------------------------------------------------------------------------------------------
# Semantics against a real SQLite table
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bind", "expected"),
    [
        ("visit = 2", {}, {1}),
        ("visit != 2", {}, {0, 2, 3, 5}),  # NULL visit is not selected
        ("NOT visit = 2", {}, {0, 2, 3, 5}),
        ("visit >= 3 AND instrument = 'LSST'", {}, {2, 5}),
        ("visit < 2 OR band = 'i'", {}, {0, 2}),
        ("visit IN (1..4:2, 10)", {}, {0, 2, 5}),
        ("visit NOT IN (1..4:2, 10)", {}, {1, 3}),
        ("visit IN (vs)", {"vs": (2, 3)}, {1, 2}),
        ("visit IN (vs)", {"vs": []}, set()),
        ("visit NOT IN (vs)", {"vs": []}, {0, 1, 2, 3, 4, 5}),
        ("visit IN (vs, 10)", {"vs": {1}}, {0, 5}),
        ("detector IN (visit, 3)", {}, {3}),  # a column inside IN: never equal here
        ("visit NOT IN (detector)", {}, {0, 1, 2, 3, 5}),
        ("visit.exposure_time > 20 AND visit.exposure_time <= 30", {}, {1, 2, 5}),
        ("visit.exposure_time = t", {"t": 15}, {0}),
        ("1 = 1", {}, {0, 1, 2, 3, 4, 5}),
        ("'a' > 'b'", {}, set()),
        ("visit > lo AND band != b", {"lo": 1, "b": "i"}, {1, 3, 5}),
        ("NOT (visit = 1 OR visit = 2) AND detector >= 1", {}, {2, 3, 5}),
    ],
)
def test_sql_and_memory_agree_on_examples(text, bind, expected, table):
    assert table.select(text, bind=bind) == expected
    assert table.select_in_memory(text, bind=bind) == expected


def test_injection_statement_separator_is_a_syntax_error(table):
    with pytest.raises(ExpressionSyntaxError):
        table.select("visit = 1; DROP TABLE dataset")
    with pytest.raises(ExpressionSyntaxError):
        table.select("visit = 1 OR 1=1 --")
    assert table.table_names() == {"dataset"}
    assert len(table.select("")) == 6


def test_injection_in_string_literal_is_plain_data(table):
    text = "band = 'x'' OR 1=1 --'"
    assert parse_where(text).right == Literal("x' OR 1=1 --")
    assert table.select(text) == {3}
    assert table.select_in_memory(text) == {3}
    clause = compile_where(text, table.resolve)
    assert "OR 1=1" not in str(clause.compile(table.engine))
    assert table.table_names() == {"dataset"}


def test_injection_in_bind_value_is_plain_data(table):
    for bind in ({"v": "1 OR 1=1"}, {"v": "r'; DROP TABLE dataset; --"}):
        clause = compile_where("band = v", table.resolve, bind=bind)
        assert bind["v"] not in str(clause.compile(table.engine))
        assert table.select("band = v", bind=bind) == ({5} if bind["v"] == "1 OR 1=1" else set())
    assert table.select("band IN (vs)", bind={"vs": ["1 OR 1=1", "z"]}) == {5}
    with pytest.raises(ExpressionTypeError):
        table.select("visit IN (vs)", bind={"vs": ["1 OR 1=1"]})
    assert table.table_names() == {"dataset"}


def test_sql_text_holds_no_literal_values(table):
    clause = compile_where(
        "band IN ('secret_a', b) AND visit IN (4242..4250) AND instrument = 'secret_c'",
        table.resolve,
        bind={"b": "secret_b"},
    )
    sql = str(clause.compile(table.engine))
    assert "secret" not in sql and "4242" not in sql


# ------------------------------------------------------------------------------------------
# Property-based: round trip and SQL == in-memory
# ------------------------------------------------------------------------------------------

BIND = {"lo": 3, "b": "r", "vs": [1, 4, 7], "names": ["g", "i'"], "empty": []}
TEXT = st.text(alphabet="gri' é\n", max_size=4)
INT_LITERALS = st.integers(-5, 25).map(Literal)
FLOAT_LITERALS = st.floats(-50, 50, allow_nan=False).map(Literal)
STRING_LITERALS = TEXT.map(Literal)
INT_OPERANDS = st.one_of(
    st.sampled_from([ident("visit"), ident("detector"), ident("lo")]), INT_LITERALS
)
NUMBER_OPERANDS = st.one_of(INT_OPERANDS, st.just(ident("visit.exposure_time")), FLOAT_LITERALS)
STRING_OPERANDS = st.one_of(
    st.sampled_from([ident("band"), ident("instrument"), ident("b")]), STRING_LITERALS
)
RANGES = st.builds(
    lambda start, length, stride: Range(start, start + length, stride),
    st.integers(-5, 20),
    st.integers(0, 15),
    st.integers(1, 4),
)
OPS = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])

PREDICATES = st.one_of(
    st.builds(Comparison, OPS, NUMBER_OPERANDS, NUMBER_OPERANDS),
    st.builds(Comparison, OPS, STRING_OPERANDS, STRING_OPERANDS),
    st.builds(
        InList,
        INT_OPERANDS,
        st.lists(
            st.one_of(NUMBER_OPERANDS, RANGES, st.sampled_from([ident("vs"), ident("empty")])),
            min_size=1,
            max_size=4,
        ).map(tuple),
        st.booleans(),
    ),
    st.builds(
        InList,
        STRING_OPERANDS,
        st.lists(
            st.one_of(STRING_OPERANDS, st.sampled_from([ident("names"), ident("empty")])),
            min_size=1,
            max_size=4,
        ).map(tuple),
        st.booleans(),
    ),
)
TREES = st.recursive(
    PREDICATES,
    lambda children: st.one_of(
        st.builds(BinaryOp, st.sampled_from(["AND", "OR"]), children, children),
        st.builds(UnaryOp, st.just("NOT"), children),
    ),
    max_leaves=10,
)
ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "visit": st.one_of(st.none(), st.integers(-5, 25)),
            "detector": st.integers(0, 9),
            "visit.exposure_time": st.one_of(st.none(), st.sampled_from([0.0, 15.0, 30.5, -2.5])),
            "band": st.one_of(st.none(), TEXT),
            "instrument": st.sampled_from(["HSC", "LSST"]),
        }
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(TREES)
def test_render_parse_round_trip(tree):
    text = render(tree)
    parsed = parse_where(text)
    assert parsed == tree
    assert render(parsed) == text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TREES, ROWS)
def test_sql_selects_exactly_the_rows_evaluate_accepts(tree, rows):
    table = Table(rows)
    expected = table.select_in_memory(tree, bind=BIND)
    assert table.select(tree, bind=BIND) == expected
    # The text form takes the same path through the parser and agrees too.
    assert table.select(render(tree), bind=BIND) == expected
