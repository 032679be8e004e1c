"""returnType/responseFormat DDL: parsing, engine types, JSON Schema, coercion of JSON answers."""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa
import pytest

from modelgate.sql import ddl
from modelgate.sql.errors import AiQueryError


@pytest.mark.parametrize(
    ("text", "duck"),
    [
        ("STRING", "VARCHAR"),
        ("string", "VARCHAR"),
        ("ARRAY<FLOAT>", "FLOAT[]"),
        ("array<double>", "DOUBLE[]"),
        ("MAP<STRING, BIGINT>", "MAP(VARCHAR, BIGINT)"),
        ("DECIMAL(10, 2)", "DECIMAL(10,2)"),
        ("STRUCT<label: STRING, score DOUBLE NOT NULL>", 'STRUCT("label" VARCHAR, "score" DOUBLE)'),
        ("STRUCT<a: ARRAY<STRUCT<`b c`: INT COMMENT 'x'>>>", 'STRUCT("a" STRUCT("b c" INTEGER)[])'),
        ("label STRING, n INT", 'STRUCT("label" VARCHAR, "n" INTEGER)'),
        ("date DATE", 'STRUCT("date" DATE)'),
    ],
)
def test_parse_and_render(text: str, duck: str) -> None:
    assert ddl.duckdb_type(ddl.parse_type(text)) == duck


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "it is empty"),
        ("STRUCT<a INT", "expected '>' but the text ended"),
        ("ARRAY<WIBBLE>", "unknown type 'WIBBLE'"),
        ("STRUCT<a: INT, a: STRING>", "field 'a' appears twice"),
        ("STRING STRING STRING", "unexpected 'STRING'"),
        ("ARRAY<INT> x", "unexpected 'x' after the type"),
        ("STRUCT<a: INT> ;", "unexpected character ';'"),
    ],
)
def test_bad_types_name_the_problem(text: str, why: str) -> None:
    with pytest.raises(AiQueryError) as info:
        ddl.parse_type(text)
    assert str(info.value) == f"returnType/responseFormat {text!r} is not a valid DDL type: {why}"


def test_arrow_and_json_schema() -> None:
    t = ddl.parse_type("STRUCT<label: STRING, n: INT, tags: ARRAY<STRING>, m: MAP<STRING, DOUBLE>>")
    assert ddl.arrow_type(t) == pa.struct(
        [("label", pa.string()), ("n", pa.int32()), ("tags", pa.list_(pa.string())),
         ("m", pa.map_(pa.string(), pa.float64()))]
    )  # fmt: skip
    assert ddl.json_schema(t) == {
        "type": "object",
        "properties": {
            "label": {"type": "string"},
            "n": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "m": {"type": "object", "additionalProperties": {"type": "number"}},
        },
        "required": ["label", "n", "tags", "m"],
        "additionalProperties": False,
    }
    assert ddl.ddl(t) == "STRUCT<label: STRING, n: INT, tags: ARRAY<STRING>, m: MAP<STRING, DOUBLE>>"


def test_coerce_fits() -> None:
    t = ddl.parse_type(
        "STRUCT<Label: STRING, n: BIGINT, x: FLOAT, ok: BOOLEAN, d: DATE, p: DECIMAL(5,2), m: MAP<STRING, INT>>"
    )
    value = {"label": "cat", "n": 3.0, "x": 2, "ok": False, "d": "2024-02-29", "p": 1.5, "m": {"a": 1}, "extra": 1}
    assert ddl.coerce(value, t) == {
        "Label": "cat", "n": 3, "x": 2.0, "ok": False, "d": dt.date(2024, 2, 29),
        "p": decimal.Decimal("1.50"), "m": [("a", 1)],
    }  # fmt: skip
    assert ddl.coerce({"nested": [1]}, ddl.STRING) == '{"nested":[1]}'
    assert ddl.coerce(None, t) is None
    assert ddl.coerce({}, t) == dict.fromkeys(["Label", "n", "x", "ok", "d", "p", "m"])


@pytest.mark.parametrize(
    ("value", "text", "why"),
    [
        ("x", "ARRAY<INT>", "$ should be an array, got a string 'x'"),
        ([1, "two"], "ARRAY<INT>", "$[1] should be an integer (INT), got a string 'two'"),
        ({"a": True}, "STRUCT<a: INT>", "$.a should be an integer (INT), got a boolean True"),
        ({"a": 2**40}, "STRUCT<a: INT>", f"$.a = {2**40} is out of range for INT"),
        ([1], "STRUCT<a: INT>", "$ should be an object, got an array"),
        ({"d": "soon"}, "STRUCT<d: DATE>", "$.d = 'soon' is not an ISO date"),
        (1.5, "INT", "$ should be an integer (INT), got a number 1.5"),
        ("1", "DOUBLE", "$ should be a number (DOUBLE), got a string '1'"),
    ],
)
def test_coerce_mismatch_says_where(value: object, text: str, why: str) -> None:
    with pytest.raises(ddl.DoesNotFit) as info:
        ddl.coerce(value, ddl.parse_type(text))
    assert str(info.value) == why
