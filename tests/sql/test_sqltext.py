"""Finding and rewriting ai_query calls without disturbing the rest of the SQL."""

from __future__ import annotations

import pytest

from modelgate.sql.errors import AiQueryError
from modelgate.sql.sqltext import (
    Arg,
    bare_select_items,
    find_calls,
    replace_calls,
    row_query,
    spark_struct_to_duckdb,
    split_statements,
    string_literal,
)


def test_find_calls_with_named_args_strings_and_comments() -> None:
    sql = (
        "SELECT ai_query('ep', concat(a, ','), failOnError => false, returnType := 'STRUCT<a: INT, b: INT>')"
        " -- ai_query(x)\n"
        "FROM t /* ai_query('no') */ WHERE note = 'ai_query(''x'')' AND \"ai_query\"(1) AND s.ai_query(2)"
    )
    calls = find_calls(sql, "ai_query")
    assert len(calls) == 1
    assert calls[0].args == [
        Arg(None, "'ep'"),
        Arg(None, "concat(a, ',')"),
        Arg("failOnError", "false"),
        Arg("returnType", "'STRUCT<a: INT, b: INT>'"),
    ]
    assert sql[calls[0].start : calls[0].end].startswith("ai_query('ep'")
    assert sql[calls[0].end :].startswith(" -- ai_query(x)")


def test_replace_keeps_the_rest_verbatim() -> None:
    sql = "COPY (SELECT AI_QUERY('ep', p) AS a FROM 'in.parquet') TO 'out.parquet' (FORMAT parquet);"
    out = replace_calls(sql, "ai_query", lambda call: f"f({call.args[1].text})")
    assert out == "COPY (SELECT f(p) AS a FROM 'in.parquet') TO 'out.parquet' (FORMAT parquet);"


def test_statements_and_row_queries() -> None:
    script = "CREATE TABLE t AS SELECT 1; -- done;\nCOPY (SELECT ';' AS x) TO 'o.csv';\n\n-- only a comment;\n"
    statements = split_statements(script)
    assert statements == ["CREATE TABLE t AS SELECT 1", "-- done;\nCOPY (SELECT ';' AS x) TO 'o.csv'"]
    assert row_query(statements[0]) is None
    assert row_query(statements[1]) == "SELECT ';' AS x"
    assert row_query("  WITH q AS (SELECT 1) SELECT * FROM q") == "WITH q AS (SELECT 1) SELECT * FROM q"


def test_literals_and_spark_structs() -> None:
    assert string_literal(" 'it''s' ", "returnType") == "it's"
    with pytest.raises(AiQueryError, match=r"returnType must be a string literal such as 'value', got 'col'"):
        string_literal("col", "returnType")
    assert (
        spark_struct_to_duckdb("named_struct('max_tokens', 5, 'stop', array('a', 'b'))")
        == "{'max_tokens': 5, 'stop': list_value('a', 'b')}"
    )


def test_unbalanced_sql_is_a_clear_error() -> None:
    with pytest.raises(AiQueryError, match="unbalanced parentheses"):
        find_calls("SELECT ai_query('ep', (x)", "ai_query")
    with pytest.raises(AiQueryError, match="unterminated string"):
        find_calls("SELECT ai_query('ep, x)", "ai_query")


def test_bare_select_items_are_whole_unaliased_items_of_a_select_list() -> None:
    def bare(sql: str) -> list[str]:
        calls = find_calls(sql, "f")
        return [sql[c.start : c.end] for c in calls if c.start in bare_select_items(sql, calls)]

    assert bare("SELECT f(1), x, f(2)\nFROM t") == ["f(1)", "f(2)"]
    assert bare("SELECT DISTINCT f(1) FROM (SELECT f(2), y FROM t) WHERE f(3)") == ["f(1)", "f(2)"]
    assert bare("SELECT f(1) AS a, f(2) b, f(3) || 'x', g(x, f(4)), CASE WHEN c THEN f(5) END, f(6)") == ["f(6)"]
    assert bare("SELECT x FROM t WHERE a IN (1, f(1)) ORDER BY f(2)") == []
