"""ai_query on Apache Spark: each call is rewritten into a vectorized pandas UDF typed for that call.

    aiq = modelgate.sql.spark_binding.register(spark, host="http://127.0.0.1:8080", token="dapi...")
    aiq.sql("SELECT id, ai_query('my-chat', prompt, failOnError => false) AS answer FROM prompts").show()

As on DuckDB (see duckdb_binding), one UDF has one result type while ai_query's depends on its arguments, so
`aiq.sql` rewrites each call into a UDF registered with exactly that call's type; the endpoint is looked up
first, so an unknown endpoint or a bad returnType fails before any row is sent. The UDF runs in Spark's Python
workers, each partition's batch keeping `concurrency` requests in flight, so a cluster fans the calls out over
its executors. Workers need modelgate installed and PYSPARK_PYTHON pointing at that interpreter.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import TYPE_CHECKING, Any

import orjson

from modelgate.sql import ddl
from modelgate.sql.calls import CallSpec, spec_for_call
from modelgate.sql.client import ClientConfig, ServingClient
from modelgate.sql.config import resolve_credentials
from modelgate.sql.errors import AiQueryError
from modelgate.sql.sqltext import Call, replace_calls

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_COUNTER = itertools.count(1)
# One client per worker process and server, made on first use inside the worker (clients hold a loop thread).
_WORKER_CLIENTS: dict[tuple[Any, ...], ServingClient] = {}


def _worker_client(config: ClientConfig) -> ServingClient:
    key = dataclasses.astuple(config)
    client = _WORKER_CLIENTS.get(key)
    if client is None:
        client = _WORKER_CLIENTS[key] = ServingClient(config)
    return client


def _batch(config: ClientConfig, spec: CallSpec, requests: Any) -> Any:
    """The body of every ai_query UDF: a pandas Series of requests in, values of the call's type out."""
    import pandas as pd

    values = _worker_client(config).run_batch(spec, [None if pd.isna(r) else str(r) for r in requests])
    if isinstance(spec.result_type, ddl.StructType):
        names = [name for name, _ in spec.result_type.fields]
        return pd.DataFrame([v if isinstance(v, dict) else dict.fromkeys(names) for v in values], columns=names)
    return pd.Series(values, dtype=object)


class SparkAiQuery:
    """A Spark session where `sql(...)` may call ai_query against one modelgate (or Databricks) server."""

    def __init__(self, spark: SparkSession, config: ClientConfig) -> None:
        self.spark = spark
        self.config = config
        self.client = ServingClient(config)  # the driver's: endpoint lookups only
        self._udfs: dict[CallSpec, str] = {}

    def sql(self, query: str) -> DataFrame:
        return self.spark.sql(self.prepare(query))

    def prepare(self, query: str) -> str:
        return replace_calls(query, "ai_query", self._rewrite)

    def close(self) -> None:
        self.client.close()

    def _rewrite(self, call: Call) -> str:
        args, spec = spec_for_call(call, self.client.endpoint_task, self._constant_struct)
        request = self.prepare(args["request"])
        return f"{self._udf(spec)}(CAST(({request}) AS STRING))"

    def _constant_struct(self, text: str) -> dict[str, Any]:
        try:
            row = self.spark.sql(f"SELECT to_json({text}) AS j").first()
        except Exception as exc:
            raise AiQueryError(
                f"ai_query: modelParameters must be a constant struct such as named_struct('max_tokens', 100): {exc}"
            ) from None
        value = orjson.loads(row["j"]) if row is not None and row["j"] is not None else None
        if not isinstance(value, dict):
            raise AiQueryError("ai_query: modelParameters must be a struct such as named_struct('temperature', 0.1)")
        return value

    def _udf(self, spec: CallSpec) -> str:
        name = self._udfs.get(spec)
        if name is not None:
            return name
        import pandas as pd
        from pyspark.sql.pandas.functions import pandas_udf

        name = f"__modelgate_aiq_{next(_COUNTER)}"
        config = self.config

        def ai_query(requests: Any) -> Any:
            return _batch(config, spec, requests)

        # Spark picks the UDF's kind from real type hints (this module's are strings, under `annotations`).
        is_struct = isinstance(spec.result_type, ddl.StructType)
        ai_query.__annotations__ = {"requests": pd.Series, "return": pd.DataFrame if is_struct else pd.Series}

        self.spark.udf.register(name, pandas_udf(ai_query, returnType=ddl.ddl(spec.result_type)))  # type: ignore[call-overload]
        self._udfs[spec] = name
        return name


def register(
    spark: SparkSession,
    host: str | None = None,
    token: str | None = None,
    *,
    concurrency: int = 64,
    max_retries: int = 8,
    retry_timeout_s: float = 300.0,
    profile: str | None = None,
) -> SparkAiQuery:
    """ai_query for `spark`, against `host` (or DATABRICKS_HOST / ~/.databrickscfg), `concurrency` per partition."""
    host, token = resolve_credentials(host, token, profile)
    config = ClientConfig(
        host, token, concurrency=concurrency, max_retries=max_retries, retry_timeout_s=retry_timeout_s
    )
    return SparkAiQuery(spark, config)
