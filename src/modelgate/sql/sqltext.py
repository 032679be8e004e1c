"""Just enough SQL lexing to find `ai_query(...)` calls and rewrite them in place.

A SQL macro cannot give `ai_query` its Databricks result type (STRING, the returnType, or
STRUCT<result, errorMessage> depending on its arguments), so each call is rewritten, before the engine sees
the statement, into a call of a UDF registered with the right type. Only the call's own text changes; the
rest of the statement (COPY options, comments, quoting) goes to the engine as written.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from modelgate.sql.errors import AiQueryError

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_NAMED = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:=>|:=)\s*(.*\S)\s*$", re.DOTALL)


@dataclass
class Arg:
    name: str | None  # set for `name => value` / `name := value`
    text: str  # the value's SQL text, stripped


@dataclass
class Call:
    start: int  # offset of the function name
    end: int  # offset just past the closing parenthesis
    args: list[Arg]


def _skip(sql: str, i: int) -> int:
    """If a string, quoted identifier or comment starts at `i`, the offset just past it; else `i`."""
    c = sql[i]
    if c in "'\"":
        j = i + 1
        while j < len(sql):
            if sql[j] == c:
                if j + 1 < len(sql) and sql[j + 1] == c:  # doubled quote
                    j += 2
                    continue
                return j + 1
            j += 1
        raise AiQueryError(f"unterminated {'string' if c == chr(39) else 'quoted identifier'} in the SQL")
    if sql.startswith("--", i):
        j = sql.find("\n", i)
        return len(sql) if j < 0 else j + 1
    if sql.startswith("/*", i):
        j = sql.find("*/", i + 2)
        if j < 0:
            raise AiQueryError("unterminated /* comment in the SQL")
        return j + 2
    return i


def _close_paren(sql: str, open_at: int) -> tuple[int, list[tuple[int, int]]]:
    """Offset of the `)` matching `sql[open_at] == '('`, and the spans of the top-level comma-separated parts."""
    depth, i, part_start, parts = 0, open_at, open_at + 1, []
    while i < len(sql):
        j = _skip(sql, i)
        if j != i:
            i = j
            continue
        c = sql[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                parts.append((part_start, i))
                return i, parts
        elif c == "," and depth == 1:
            parts.append((part_start, i))
            part_start = i + 1
        i += 1
    raise AiQueryError("unbalanced parentheses in the SQL")


def find_calls(sql: str, function: str) -> list[Call]:
    """Top-level calls of `function` (case-insensitive); calls nested in their arguments are not listed."""
    calls: list[Call] = []
    i, target = 0, function.lower()
    while i < len(sql):
        j = _skip(sql, i)
        if j != i:
            i = j
            continue
        m = _IDENT.match(sql, i) if (sql[i].isalpha() or sql[i] == "_") else None
        if m is None:
            i += 1
            continue
        k = m.end()
        while k < len(sql) and sql[k].isspace():
            k += 1
        qualified = i > 0 and sql[i - 1] == "."
        if m.group().lower() == target and not qualified and k < len(sql) and sql[k] == "(":
            close, parts = _close_paren(sql, k)
            args = [_arg(sql[a:b]) for a, b in parts]
            if len(args) == 1 and not args[0].text:
                args = []
            calls.append(Call(i, close + 1, args))
            i = close + 1
        else:
            i = m.end()
    return calls


def _arg(text: str) -> Arg:
    m = _NAMED.match(text)
    if m:
        return Arg(m.group(1), m.group(2).strip())
    return Arg(None, text.strip())


@dataclass
class Span:
    """Where one replaced call sat in the original text, and where its replacement sits in the new one."""

    start: int
    end: int
    new_start: int
    new_end: int


def replace_calls(sql: str, function: str, render: Callable[[Call], str]) -> str:
    """`sql` with every top-level call of `function` replaced by `render(call)`."""
    return replace_calls_mapped(sql, function, render)[0]


def replace_calls_mapped(sql: str, function: str, render: Callable[[Call], str]) -> tuple[str, list[Span]]:
    """`replace_calls`, with the span of each replacement (to point an engine's error back at the original)."""
    out, last, size, spans = [], 0, 0, []
    for call in find_calls(sql, function):
        out.append(sql[last : call.start])
        size += call.start - last
        text = render(call)
        out.append(text)
        spans.append(Span(call.start, call.end, size, size + len(text)))
        size += len(text)
        last = call.end
    out.append(sql[last:])
    return "".join(out), spans


# Words that end a select-list item, and those that start a clause (the last one before a call says which
# clause the call is in).
_ITEM_END = {"", ",", ")", ";", "from", "where", "group", "having", "order", "limit", "offset", "qualify", "window",
             "union", "except", "intersect", "into"}  # fmt: skip
_CLAUSES = {"select", "from", "where", "group", "having", "order", "limit", "offset", "qualify", "window", "values",
            "set", "returning", "on", "using", "union", "except", "intersect", "into"}  # fmt: skip


def bare_select_items(sql: str, calls: list[Call]) -> set[int]:
    """The starts of the calls that are a whole, unaliased item of a SELECT list (`SELECT a, f(x) FROM t`),
    whose column the engine would otherwise name after the rewritten text."""
    bare = set()
    for call in calls:
        before, after = _word_before(sql, call.start), _word_after(sql, call.end)
        whole = before in ("select", "distinct", "all", ",") and after in _ITEM_END
        if whole and _clause_at(sql, call.start) == "select":
            bare.add(call.start)
    return bare


def _word_before(sql: str, i: int) -> str:
    while i > 0 and sql[i - 1].isspace():
        i -= 1
    j = i
    while j > 0 and (sql[j - 1].isalnum() or sql[j - 1] == "_"):
        j -= 1
    return sql[j:i].lower() if j < i else sql[i - 1 : i]


def _word_after(sql: str, i: int) -> str:
    while i < len(sql):
        j = _skip(sql, i) if sql[i] in "-/" else i
        if j != i:
            i = j
        elif sql[i].isspace():
            i += 1
        else:
            break
    m = _IDENT.match(sql, i)
    return m.group().lower() if m else sql[i : i + 1]


def _clause_at(sql: str, at: int) -> str:
    """The last clause keyword before `at` at `at`'s own parenthesis depth ('' if none)."""
    levels: list[str] = [""]
    i = 0
    while i < at:
        j = _skip(sql, i)
        if j != i:
            i = j
            continue
        c = sql[i]
        if c == "(":
            levels.append("")
        elif c == ")" and len(levels) > 1:
            levels.pop()
        m = _IDENT.match(sql, i) if (c.isalpha() or c == "_") else None
        if m:
            if m.group().lower() in _CLAUSES:
                levels[-1] = m.group().lower()
            i = m.end()
            continue
        i += 1
    return levels[-1]


# -- literals -----------------------------------------------------------------------------------------------
def string_literal(text: str, what: str) -> str:
    """The value of a single-quoted SQL string literal."""
    t = text.strip()
    if len(t) >= 2 and t[0] == "'" and t[-1] == "'" and _skip(t, 0) == len(t):
        return t[1:-1].replace("''", "'")
    raise AiQueryError(f"ai_query: {what} must be a string literal such as 'value', got {text.strip()!r}")


def bool_literal(text: str, what: str) -> bool:
    t = text.strip().lower()
    if t in ("true", "false"):
        return t == "true"
    raise AiQueryError(f"ai_query: {what} must be true or false, got {text.strip()!r}")


def spark_struct_to_duckdb(text: str) -> str:
    """Spark's `named_struct('k', v, ...)` and `array(...)` in DuckDB spelling (`{'k': v}`, `list_value(...)`)."""

    def named(call: Call) -> str:
        if len(call.args) % 2 or any(a.name for a in call.args):
            raise AiQueryError("ai_query: named_struct needs pairs of 'name', value")
        pairs = []
        for key, value in zip(call.args[::2], call.args[1::2], strict=True):
            name = string_literal(key.text, "a named_struct field name")
            pairs.append(f"'{name.replace(chr(39), chr(39) * 2)}': {spark_struct_to_duckdb(value.text)}")
        return "{" + ", ".join(pairs) + "}"

    def array(call: Call) -> str:
        return "list_value(" + ", ".join(spark_struct_to_duckdb(a.text) for a in call.args) + ")"

    return replace_calls(replace_calls(text, "named_struct", named), "array", array)


# -- statements ---------------------------------------------------------------------------------------------
def split_statements(sql: str) -> list[str]:
    """The non-empty statements of a script, split at top-level semicolons."""
    out, start, i, depth = [], 0, 0, 0
    while i < len(sql):
        j = _skip(sql, i)
        if j != i:
            i = j
            continue
        c = sql[i]
        depth += c == "("
        depth -= c == ")"
        if c == ";" and depth == 0:
            out.append(sql[start:i])
            start = i + 1
        i += 1
    out.append(sql[start:])
    return [s.strip() for s in out if _strip_comments(s).strip()]


def _strip_comments(sql: str) -> str:
    out, i = [], 0
    while i < len(sql):
        j = _skip(sql, i)
        if j != i:
            if sql[i] in "'\"":
                out.append(sql[i:j])
            i = j
            continue
        out.append(sql[i])
        i += 1
    return "".join(out)


def keyword(statement: str) -> str:
    """The statement's first keyword, lower-cased ('' if none)."""
    first = _IDENT.match(_strip_comments(statement).strip())
    return first.group().lower() if first else ""


def row_query(statement: str) -> str | None:
    """The query whose rows a statement produces: the statement itself for SELECT/WITH/FROM/VALUES,
    the parenthesized query of `COPY (query) TO ...`; None for anything else."""
    body = _strip_comments(statement).strip()
    first = _IDENT.match(body)
    keyword = first.group().lower() if first else ""
    if keyword in ("select", "with", "from", "values"):
        return body
    if keyword == "copy":
        k = first.end() if first else 0
        while k < len(body) and body[k].isspace():
            k += 1
        if k < len(body) and body[k] == "(":
            close, _ = _close_paren(body, k)
            return body[k + 1 : close]
    return None
