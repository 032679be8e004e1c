"""ai_query: batch LLM inference from SQL against modelgate (or Databricks) serving endpoints.

`modelgate.sql.connect(host, token)` gives a DuckDB connection where statements may call `ai_query(...)`
with the Databricks signature; `modelgate sql` is the same from the command line. See docs/ai_query.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelgate.sql.errors import AiQueryError, EndpointCallError

if TYPE_CHECKING:
    from modelgate.sql.duckdb_binding import AiQueryConnection

__all__ = ["AiQueryConnection", "AiQueryError", "EndpointCallError", "connect"]


def connect(host: str | None = None, token: str | None = None, **options: Any) -> AiQueryConnection:
    """A DuckDB connection with ai_query (needs the `sql` extra: duckdb, pyarrow)."""
    from modelgate.sql.duckdb_binding import connect as _connect

    return _connect(host, token, **options)
