"""ai_query on DuckDB: each call is rewritten into a vectorized Arrow UDF typed for that call.

`ai_query('ep', prompt, returnType => 'ARRAY<FLOAT>', failOnError => false)` becomes
`__modelgate_aiq_3(prompt)` (with a request-type check around it), where UDF 3 was registered returning
`STRUCT(result FLOAT[], errorMessage VARCHAR)`. The endpoint is looked up when the statement is prepared, so an
unknown endpoint, a bad returnType or a bad option fails before any row is sent. DuckDB calls the UDF with
2,048-row chunks, serially; the ServingClient fans each chunk out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from modelgate.sql import ddl
from modelgate.sql.calls import CallSpec, spec_for_call
from modelgate.sql.client import ClientConfig, Progress, ServingClient
from modelgate.sql.config import resolve_credentials
from modelgate.sql.error_context import requote
from modelgate.sql.errors import AiQueryError
from modelgate.sql.sqltext import (
    Call,
    Span,
    bare_select_items,
    find_calls,
    replace_calls,
    replace_calls_mapped,
    row_query,
    spark_struct_to_duckdb,
    split_statements,
)

if TYPE_CHECKING:
    import duckdb


class AiQueryConnection:
    """A DuckDB connection whose statements may call ai_query (run them through `execute` or `sql`)."""

    def __init__(self, client: ServingClient, con: duckdb.DuckDBPyConnection) -> None:
        self.client = client
        self.raw = con
        self._udfs: dict[CallSpec, str] = {}
        self._failure: list[BaseException] = []  # the first error a UDF raised, re-raised without DuckDB's wrapping

    # -- running -------------------------------------------------------------------------------------------
    def execute(self, sql: str) -> duckdb.DuckDBPyConnection:
        """Run a script statement by statement; the connection holds the last statement's result."""
        statements = split_statements(sql)
        if not statements:
            raise AiQueryError("no SQL statement to run")
        for statement in statements:
            self._run(statement, lambda sql: self.raw.execute(sql))
        return self.raw

    def sql(self, query: str) -> duckdb.DuckDBPyRelation:
        """One query as a relation (its ai_query calls run when it is fetched: use `fetch` to get clean errors)."""
        result: duckdb.DuckDBPyRelation = self._run(query, lambda sql: self.raw.sql(sql))
        return result

    def fetchall(self, query: str) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self._run(query, lambda sql: self.raw.execute(sql).fetchall())
        return rows

    def _run(self, statement: str, action: Callable[[str], Any]) -> Any:
        """`action` on the prepared statement; DuckDB's errors quote `statement` as the user wrote it."""
        import duckdb

        self._failure.clear()
        prepared, spans = self._prepare(statement)
        try:
            return action(prepared)
        except duckdb.Error as exc:
            if self._failure:
                raise self._failure[0] from None
            message = str(exc)
            if "ai_query: " in message:  # our error() guard (a request of the wrong type): drop DuckDB's prefix
                raise AiQueryError(message[message.index("ai_query: ") :]) from None
            if spans:
                raise type(exc)(requote(message, statement, prepared, spans)) from None
            raise

    def interrupt(self) -> None:
        """Stop the running statement (from another thread, e.g. on Ctrl-C)."""
        self.client.cancel()
        self.raw.interrupt()

    def close(self) -> None:
        self.raw.close()
        self.client.close()

    def __enter__(self) -> AiQueryConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- progress ------------------------------------------------------------------------------------------
    def estimate_rows(self, statement: str) -> int | None:
        """How many rows a statement's ai_query calls will see (its query counted with the calls stubbed out);
        None when the statement is not a query or the count fails."""
        query = row_query(statement)
        if query is None:
            return None
        sites = len(_all_calls(query))
        if not sites:
            return 0
        stubbed = replace_calls(query, "ai_query", lambda call: "NULL")
        try:
            rows = self.raw.execute(f"SELECT count(*) FROM ({stubbed})").fetchall()
        except Exception:
            return None
        return int(rows[0][0]) * sites if rows else None

    def reset_progress(self, total: int | None) -> Progress:
        self.client.progress = Progress(total=total)
        return self.client.progress

    # -- rewriting -----------------------------------------------------------------------------------------
    def prepare(self, statement: str) -> str:
        """The statement with every ai_query call replaced by its typed UDF."""
        return self._prepare(statement)[0]

    def _prepare(self, statement: str) -> tuple[str, list[Span]]:
        """`prepare`, with the rewrite's spans. A call that is a whole unaliased SELECT item gets an alias of
        the call as written, or DuckDB would head its column with the rewritten expression."""
        bare = bare_select_items(statement, find_calls(statement, "ai_query"))

        def render(call: Call) -> str:
            text = self._rewrite(call)
            if call.start not in bare:
                return text
            name = re.sub(r"\s*\n\s*", " ", statement[call.start : call.end])
            return f'{text} AS "{name.replace(chr(34), chr(34) * 2)}"'

        return replace_calls_mapped(statement, "ai_query", render)

    def _rewrite(self, call: Call) -> str:
        args, spec = spec_for_call(call, self.client.endpoint_task, self._constant_struct)
        endpoint = spec.endpoint
        udf = self._udf(spec)
        request = self.prepare(args["request"])  # a nested ai_query feeds this one
        wrong = (
            f"'ai_query: the request for endpoint ''{_sql_escape(endpoint)}'' ({spec.task}) must be a STRING, got ' "
            f"|| typeof(({request}))"
        )
        return (
            f"(CASE WHEN typeof(({request})) IN ('VARCHAR', '\"NULL\"') THEN {udf}(({request})::VARCHAR) "
            f"ELSE error({wrong}) END)"
        )

    def _constant_struct(self, text: str) -> dict[str, Any]:
        expr = spark_struct_to_duckdb(text)
        try:
            rows = self.raw.execute(f"SELECT to_json({expr})::VARCHAR").fetchall()
        except Exception as exc:
            raise AiQueryError(
                f"ai_query: modelParameters must be a constant struct such as named_struct('max_tokens', 100): {exc}"
            ) from None
        value = orjson.loads(rows[0][0]) if rows and rows[0][0] is not None else None
        if not isinstance(value, dict):
            raise AiQueryError("ai_query: modelParameters must be a struct such as named_struct('temperature', 0.1)")
        return value

    def _udf(self, spec: CallSpec) -> str:
        name = self._udfs.get(spec)
        if name is not None:
            return name
        import pyarrow as pa
        from duckdb import func

        name = f"__modelgate_aiq_{len(self._udfs) + 1}"
        arrow_type = ddl.arrow_type(spec.result_type)
        client, failures = self.client, self._failure

        def ai_query(requests: Any) -> Any:
            try:
                values = client.run_batch(spec, requests.to_pylist())
            except BaseException as exc:
                failures.append(exc)
                raise
            return pa.array(values, type=arrow_type)

        self.raw.create_function(
            name,
            ai_query,
            ["VARCHAR"],
            ddl.duckdb_type(spec.result_type),
            type=func.ARROW,
            side_effects=True,
            null_handling=func.SPECIAL,
        )
        self._udfs[spec] = name
        return name


def _sql_escape(text: str) -> str:
    return text.replace("'", "''")


def _all_calls(sql: str) -> list[Call]:
    calls = find_calls(sql, "ai_query")
    nested = [inner for c in calls for a in c.args for inner in _all_calls(a.text)]
    return calls + nested


def connect(
    host: str | None = None,
    token: str | None = None,
    *,
    database: str = ":memory:",
    concurrency: int = 64,
    max_retries: int = 8,
    retry_timeout_s: float = 300.0,
    profile: str | None = None,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> AiQueryConnection:
    """A DuckDB connection (new, or `connection`) where SQL may call ai_query against `host`."""
    import duckdb

    host, token = resolve_credentials(host, token, profile)
    client = ServingClient(
        ClientConfig(host, token, concurrency=concurrency, max_retries=max_retries, retry_timeout_s=retry_timeout_s)
    )
    return AiQueryConnection(client, connection if connection is not None else duckdb.connect(database))
