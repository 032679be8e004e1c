"""Databricks DDL types for `returnType` and `responseFormat`: parse, render for DuckDB/Arrow/JSON Schema, coerce.

`ai_query` results arrive as JSON (a model's text answer, or an embedding vector) and leave as a typed SQL value.
This module is engine-neutral: a parsed type renders as a DuckDB type string, a pyarrow type (what the vectorized
UDFs return) and a JSON Schema (what a structured-output request sends), and `coerce` turns a JSON value into the
Python value Arrow expects for that type, or says precisely where it does not fit.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from dataclasses import dataclass
from typing import Any

from modelgate.sql.errors import AiQueryError


@dataclass(frozen=True)
class Scalar:
    name: str  # canonical Databricks name: STRING, INT, BIGINT, FLOAT, DOUBLE, BOOLEAN, DECIMAL, ...
    precision: int = 0
    scale: int = 0


@dataclass(frozen=True)
class ArrayType:
    element: SqlType


@dataclass(frozen=True)
class MapType:
    key: SqlType
    value: SqlType


@dataclass(frozen=True)
class StructType:
    fields: tuple[tuple[str, SqlType], ...]


SqlType = Scalar | ArrayType | MapType | StructType

STRING = Scalar("STRING")
ARRAY_FLOAT = ArrayType(Scalar("FLOAT"))

_ALIASES = {
    "STRING": "STRING", "VARCHAR": "STRING", "CHAR": "STRING", "TEXT": "STRING",
    "INT": "INT", "INTEGER": "INT", "BIGINT": "BIGINT", "LONG": "BIGINT",
    "SMALLINT": "SMALLINT", "SHORT": "SMALLINT", "TINYINT": "TINYINT", "BYTE": "TINYINT",
    "FLOAT": "FLOAT", "REAL": "FLOAT", "DOUBLE": "DOUBLE",
    "BOOLEAN": "BOOLEAN", "BOOL": "BOOLEAN",
    "DATE": "DATE", "TIMESTAMP": "TIMESTAMP", "TIMESTAMP_NTZ": "TIMESTAMP",
    "BINARY": "BINARY", "DECIMAL": "DECIMAL", "DEC": "DECIMAL", "NUMERIC": "DECIMAL",
}  # fmt: skip
_INT_RANGES = {"TINYINT": 2**7, "SMALLINT": 2**15, "INT": 2**31, "BIGINT": 2**63}
_TOKEN = re.compile(r"\s*(?:(`(?:[^`]|``)*`)|([A-Za-z_][A-Za-z0-9_]*)|(\d+)|('(?:[^']|'')*')|([<>(),:]))")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[str] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if not m:
                raise self.error(f"unexpected character {text[pos:].strip()[:1]!r}")
            self.tokens.append(m.group(m.lastindex or 0))
            pos = m.end()
        self.i = 0

    def error(self, why: str) -> AiQueryError:
        return AiQueryError(f"returnType/responseFormat {self.text!r} is not a valid DDL type: {why}")

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None:
            raise self.error(f"expected {expected!r} but the text ended" if expected else "the text ended early")
        if expected is not None and tok.upper() != expected:
            raise self.error(f"expected {expected!r}, found {tok!r}")
        self.i += 1
        return tok

    def parse_type(self) -> SqlType:
        word = self.take()
        upper = word.upper()
        if upper == "ARRAY":
            self.take("<")
            element = self.parse_type()
            self.take(">")
            return ArrayType(element)
        if upper == "MAP":
            self.take("<")
            key = self.parse_type()
            self.take(",")
            value = self.parse_type()
            self.take(">")
            return MapType(key, value)
        if upper == "STRUCT":
            self.take("<")
            fields = self.parse_fields(closing=">")
            self.take(">")
            return StructType(fields)
        name = _ALIASES.get(upper)
        if name is None:
            raise self.error(f"unknown type {word!r}")
        if self.peek() == "(":  # VARCHAR(10), DECIMAL(10, 2)
            self.take("(")
            args = [int(self._number())]
            while self.peek() == ",":
                self.take(",")
                args.append(int(self._number()))
            self.take(")")
            if name == "DECIMAL":
                return Scalar(name, args[0], args[1] if len(args) > 1 else 0)
        elif name == "DECIMAL":
            return Scalar(name, 10, 0)
        return Scalar(name)

    def _number(self) -> str:
        tok = self.take()
        if not tok.isdigit():
            raise self.error(f"expected a number, found {tok!r}")
        return tok

    def parse_fields(self, closing: str | None) -> tuple[tuple[str, SqlType], ...]:
        fields: list[tuple[str, SqlType]] = []
        while True:
            raw = self.take()
            if not (raw[0].isalpha() or raw[0] in "_`"):
                raise self.error(f"expected a field name, found {raw!r}")
            name = raw[1:-1].replace("``", "`") if raw.startswith("`") else raw
            if self.peek() == ":":
                self.take(":")
            ftype = self.parse_type()
            self._field_modifiers()
            if any(existing == name for existing, _ in fields):
                raise self.error(f"field {name!r} appears twice")
            fields.append((name, ftype))
            if self.peek() != ",":
                break
            self.take(",")
        if self.peek() not in (closing, None):
            raise self.error(f"unexpected {self.peek()!r}")
        return tuple(fields)

    def _field_modifiers(self) -> None:
        while (tok := self.peek()) is not None and tok.upper() in ("NOT", "COMMENT"):
            if self.take().upper() == "NOT":
                self.take("NULL")
            elif not (self.take() or "").startswith("'"):
                raise self.error("COMMENT needs a quoted string")


def parse_type(text: str) -> SqlType:
    """Parse a Databricks DDL type: `STRING`, `ARRAY<FLOAT>`, `STRUCT<a: INT, b: ARRAY<STRING>>`, `a INT, b STRING`."""
    parser = _Parser(text)
    if not parser.tokens:
        raise parser.error("it is empty")
    second = parser.tokens[1] if len(parser.tokens) > 1 else None
    if second in (None, "<", "("):  # one type: STRING, ARRAY<FLOAT>, DECIMAL(10,2)
        result = parser.parse_type()
        if parser.peek() is not None:
            raise parser.error(f"unexpected {parser.peek()!r} after the type")
        return result
    result_struct = StructType(parser.parse_fields(closing=None))  # from_json style: "a INT, b STRING"
    if parser.peek() is not None:
        raise parser.error(f"unexpected {parser.peek()!r}")
    return result_struct


# -- rendering ------------------------------------------------------------------------------------------------
def ddl(t: SqlType) -> str:
    """The Databricks spelling, for messages."""
    if isinstance(t, ArrayType):
        return f"ARRAY<{ddl(t.element)}>"
    if isinstance(t, MapType):
        return f"MAP<{ddl(t.key)}, {ddl(t.value)}>"
    if isinstance(t, StructType):
        return "STRUCT<" + ", ".join(f"{n}: {ddl(f)}" for n, f in t.fields) + ">"
    return f"DECIMAL({t.precision},{t.scale})" if t.name == "DECIMAL" else t.name


_DUCKDB = {
    "STRING": "VARCHAR", "INT": "INTEGER", "BIGINT": "BIGINT", "SMALLINT": "SMALLINT", "TINYINT": "TINYINT",
    "FLOAT": "FLOAT", "DOUBLE": "DOUBLE", "BOOLEAN": "BOOLEAN", "DATE": "DATE", "TIMESTAMP": "TIMESTAMP",
    "BINARY": "BLOB",
}  # fmt: skip


def duckdb_type(t: SqlType) -> str:
    if isinstance(t, ArrayType):
        return duckdb_type(t.element) + "[]"
    if isinstance(t, MapType):
        return f"MAP({duckdb_type(t.key)}, {duckdb_type(t.value)})"
    if isinstance(t, StructType):
        return "STRUCT(" + ", ".join(f"{_quote(n)} {duckdb_type(f)}" for n, f in t.fields) + ")"
    return f"DECIMAL({t.precision},{t.scale})" if t.name == "DECIMAL" else _DUCKDB[t.name]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def arrow_type(t: SqlType) -> Any:
    import pyarrow as pa

    if isinstance(t, ArrayType):
        return pa.list_(arrow_type(t.element))
    if isinstance(t, MapType):
        return pa.map_(arrow_type(t.key), arrow_type(t.value))
    if isinstance(t, StructType):
        return pa.struct([(n, arrow_type(f)) for n, f in t.fields])
    simple = {
        "STRING": pa.string(), "INT": pa.int32(), "BIGINT": pa.int64(), "SMALLINT": pa.int16(),
        "TINYINT": pa.int8(), "FLOAT": pa.float32(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(),
        "DATE": pa.date32(), "TIMESTAMP": pa.timestamp("us"), "BINARY": pa.binary(),
    }  # fmt: skip
    return pa.decimal128(t.precision, t.scale) if t.name == "DECIMAL" else simple[t.name]


def json_schema(t: SqlType) -> dict[str, Any]:
    """A JSON Schema (OpenAI strict-mode compatible) whose instances `coerce` accepts."""
    if isinstance(t, ArrayType):
        return {"type": "array", "items": json_schema(t.element)}
    if isinstance(t, MapType):
        return {"type": "object", "additionalProperties": json_schema(t.value)}
    if isinstance(t, StructType):
        return {
            "type": "object",
            "properties": {n: json_schema(f) for n, f in t.fields},
            "required": [n for n, _ in t.fields],
            "additionalProperties": False,
        }
    if t.name in _INT_RANGES:
        return {"type": "integer"}
    if t.name in ("FLOAT", "DOUBLE", "DECIMAL"):
        return {"type": "number"}
    if t.name == "BOOLEAN":
        return {"type": "boolean"}
    if t.name == "DATE":
        return {"type": "string", "format": "date"}
    if t.name == "TIMESTAMP":
        return {"type": "string", "format": "date-time"}
    return {"type": "string"}


# -- coercion -------------------------------------------------------------------------------------------------
class DoesNotFit(ValueError):
    """A JSON value that does not fit the returnType; the message names the path and the problem."""


def coerce(value: Any, t: SqlType, path: str = "$") -> Any:
    """The Arrow-ready Python value for a JSON `value` of type `t` (None stays None)."""
    if value is None:
        return None
    if isinstance(t, ArrayType):
        if not isinstance(value, list):
            raise DoesNotFit(f"{path} should be an array, got {_kind(value)}")
        return [coerce(v, t.element, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(t, MapType):
        if not isinstance(value, dict):
            raise DoesNotFit(f"{path} should be an object (MAP), got {_kind(value)}")
        return [(coerce(k, t.key, f"{path} key"), coerce(v, t.value, f"{path}.{k}")) for k, v in value.items()]
    if isinstance(t, StructType):
        if not isinstance(value, dict):
            raise DoesNotFit(f"{path} should be an object, got {_kind(value)}")
        lowered = {k.lower(): v for k, v in value.items() if isinstance(k, str)}
        return {
            name: coerce(value[name] if name in value else lowered.get(name.lower()), ftype, f"{path}.{name}")
            for name, ftype in t.fields
        }
    return _scalar(value, t, path)


def _scalar(value: Any, t: Scalar, path: str) -> Any:
    name = t.name
    if name == "STRING":
        if isinstance(value, str):
            return value
        import orjson

        return orjson.dumps(value).decode()
    if name in _INT_RANGES:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise DoesNotFit(f"{path} should be an integer ({name}), got {_kind(value)}")
        if not -_INT_RANGES[name] <= value < _INT_RANGES[name]:
            raise DoesNotFit(f"{path} = {value} is out of range for {name}")
        return value
    if name in ("FLOAT", "DOUBLE"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise DoesNotFit(f"{path} should be a number ({name}), got {_kind(value)}")
        return float(value)
    if name == "DECIMAL":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise DoesNotFit(f"{path} should be a number (DECIMAL), got {_kind(value)}")
        try:
            return decimal.Decimal(str(value)).quantize(decimal.Decimal(1).scaleb(-t.scale))
        except decimal.InvalidOperation:
            raise DoesNotFit(f"{path} = {value!r} is not a DECIMAL({t.precision},{t.scale})") from None
    if name == "BOOLEAN":
        if not isinstance(value, bool):
            raise DoesNotFit(f"{path} should be true or false, got {_kind(value)}")
        return value
    if name in ("DATE", "TIMESTAMP"):
        if not isinstance(value, str):
            raise DoesNotFit(f"{path} should be an ISO {name.lower()} string, got {_kind(value)}")
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise DoesNotFit(f"{path} = {value!r} is not an ISO {name.lower()}") from None
        return parsed.date() if name == "DATE" else parsed
    if name == "BINARY":
        if not isinstance(value, str):
            raise DoesNotFit(f"{path} should be a string (BINARY), got {_kind(value)}")
        return value.encode()
    raise DoesNotFit(f"{path}: unsupported type {name}")  # pragma: no cover - every Scalar name is handled above


def _kind(value: Any) -> str:
    kinds = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }
    text = repr(value) if not isinstance(value, list | dict) else ""
    kind = kinds.get(type(value), type(value).__name__)
    return f"{kind} {text[:40]}".rstrip()
