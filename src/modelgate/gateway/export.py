"""Export the AI Gateway's tables as a Parquet file or a Delta Lake table, batch by batch.

Rows come from one streaming query (a server-side cursor on PostgreSQL; SQLite's cursor is lazy too) and are
turned into Arrow record batches with the column types Databricks documents for the tables (TIMESTAMP, DATE,
BIGINT, ARRAY<STRING>, MAP<STRING,STRING>), so memory holds one batch however big the table is. Parquet gets one
row group per batch; deltalake's writer consumes the same stream of batches.

pyarrow and deltalake are optional (`pip install 'modelgate[export]'`) and imported only when exporting.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from sqlalchemy import Engine, MetaData, Table, inspect, select

from modelgate.errors import InvalidParameterValue, NotImplementedByServer
from modelgate.gateway.tables import USAGE_TABLE, payload_table, payload_table_name, usage_table

Format = Literal["parquet", "delta"]
FORMATS: tuple[Format, ...] = ("parquet", "delta")
IfExists = Literal["error", "overwrite", "append"]
IF_EXISTS: tuple[IfExists, ...] = ("error", "overwrite", "append")
BATCH_ROWS = 10_000
BATCH_BYTES = 16 << 20  # of request/response text per batch
FETCH_BYTES = 4 << 20

# Column name -> Arrow type name, in Databricks' column order; built into a pyarrow schema lazily.
_PAYLOAD_COLUMNS: list[tuple[str, str]] = [
    ("databricks_request_id", "string"),
    ("client_request_id", "string"),
    ("request_date", "date"),
    ("request_time", "timestamp"),
    ("status_code", "int"),
    ("sampling_fraction", "double"),
    ("execution_duration_ms", "bigint"),
    ("request", "string"),
    ("response", "string"),
    ("logging_error_codes", "array<string>"),
    ("served_entity_id", "string"),
    ("requester", "string"),
]
_USAGE_COLUMNS: list[tuple[str, str]] = [
    ("databricks_request_id", "string"),
    ("client_request_id", "string"),
    ("requester", "string"),
    ("endpoint_name", "string"),  # ours: Databricks' system table joins served_entities for it
    ("endpoint_id", "string"),  # ours, as above
    ("served_entity_id", "string"),
    ("status_code", "int"),
    ("usage_date", "date"),
    ("request_time", "timestamp"),
    ("input_token_count", "bigint"),
    ("output_token_count", "bigint"),
    ("input_character_count", "bigint"),
    ("output_character_count", "bigint"),
    ("usage_context", "map<string,string>"),
    ("request_streaming", "boolean"),
]


@dataclass(frozen=True)
class ExportSource:
    """One table to export: which rows, in which order, and the Databricks columns they map to."""

    table_name: str
    columns: list[tuple[str, str]]
    endpoint_filter: str | None  # endpoint_usage holds every endpoint's rows; payload tables hold one's
    order_by: tuple[str, ...]


def inference_table_source(endpoint: str, ai_gateway: dict[str, Any] | None) -> ExportSource:
    config = (ai_gateway or {}).get("inference_table_config") or {}
    return ExportSource(payload_table_name(config, endpoint), _PAYLOAD_COLUMNS, None, ("id",))


def check_inference_table(engine: Engine, endpoint: str, ai_gateway: dict[str, Any] | None) -> None:
    """Refuse to export a table the endpoint does not write: without an enabled inference table, the name is
    only the default one, and an empty export of it (the rows sitting in another table) would pass for a real
    one. A disabled table that was written before still exports."""
    config = (ai_gateway or {}).get("inference_table_config") or {}
    if config.get("enabled"):
        return
    name = payload_table_name(config, endpoint)
    if inspect(engine).has_table(name):
        return
    raise InvalidParameterValue(
        f"Endpoint '{endpoint}' writes no inference table: its AI Gateway config has no enabled "
        f"inference_table_config, and no table '{name}' exists. Note that PUT .../ai-gateway replaces the whole "
        "config: a PUT without inference_table_config turns the table off. Enable it with the catalog, schema and "
        "prefix it had to export the rows it wrote."
    )


def usage_source(endpoint: str) -> ExportSource:
    # (endpoint_name, request_time) is indexed, so this order needs no sort.
    return ExportSource(USAGE_TABLE, _USAGE_COLUMNS, endpoint, ("request_time", "id"))


@dataclass(frozen=True)
class TimeRange:
    """Rows with start <= request_time < end; either bound may be open."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None


_RELATIVE = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_time(name: str, raw: str, *, now: dt.datetime | None = None) -> dt.datetime:
    """A time as epoch milliseconds, ISO 8601 (naive means UTC) or a span back from now (`30m`, `24h`, `7d`)."""
    text = raw.strip()
    now = now or dt.datetime.now(dt.UTC)
    if text.isdigit():
        try:
            return dt.datetime.fromtimestamp(int(text) / 1000, tz=dt.UTC)
        except (OverflowError, OSError, ValueError):
            pass
    elif match := _RELATIVE.match(text):
        return now - dt.timedelta(**{_UNITS[match[2]]: int(match[1])})
    else:
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
    raise InvalidParameterValue(
        f"'{name}' must be epoch milliseconds, an ISO 8601 time such as 2026-01-31T12:00:00Z, "
        f"or a span back from now such as 24h or 7d; got '{raw[:40]}'."
    )


def time_range(start: str | None, end: str | None, *, names: tuple[str, str] = ("start_time", "end_time")) -> TimeRange:
    now = dt.datetime.now(dt.UTC)
    rng = TimeRange(
        parse_time(names[0], start, now=now) if start else None, parse_time(names[1], end, now=now) if end else None
    )
    if rng.start and rng.end and rng.start >= rng.end:
        raise InvalidParameterValue(f"'{names[0]}' must be before '{names[1]}'.")
    return rng


def parse_format(raw: str | None) -> Format:
    value = (raw or "parquet").lower()
    for fmt in FORMATS:
        if value == fmt:
            return fmt
    raise InvalidParameterValue(f"'format' must be one of {', '.join(FORMATS)}; got '{(raw or '')[:40]}'.")


def parse_if_exists(raw: str) -> IfExists:
    for mode in IF_EXISTS:
        if raw == mode:
            return mode
    raise InvalidParameterValue(f"'if_exists' must be one of {', '.join(IF_EXISTS)}; got '{raw[:40]}'.")


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # loads the submodule onto the package
    except ImportError:
        raise NotImplementedByServer(
            "Exporting tables needs pyarrow on the server: pip install 'modelgate[export]'."
        ) from None
    return pyarrow


def arrow_schema(columns: list[tuple[str, str]]) -> Any:
    pa = _pyarrow()
    types: dict[str, Callable[[], Any]] = {
        "string": pa.string,
        "date": pa.date32,
        "timestamp": lambda: pa.timestamp("us", tz="UTC"),
        "int": pa.int32,
        "bigint": pa.int64,
        "double": pa.float64,
        "boolean": pa.bool_,
        "array<string>": lambda: pa.list_(pa.string()),
        "map<string,string>": lambda: pa.map_(pa.string(), pa.string()),
    }
    return pa.schema([pa.field(name, types[kind]()) for name, kind in columns])


def _string_map(value: Any) -> Any:
    """usage_context is map<string,string>; a value stored as anything else is written as its text."""
    if not isinstance(value, dict):
        return None
    return {str(k): v if isinstance(v, str) or v is None else str(v) for k, v in value.items()}


def _string_list(value: Any) -> Any:
    if value is None:
        return None
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


_CONVERTERS: dict[str, Callable[[Any], Any]] = {"array<string>": _string_list, "map<string,string>": _string_map}


def _text_bytes(row: Any) -> int:
    return sum(len(v) for v in row if isinstance(v, str))


def record_batches(
    engine: Engine,
    source: ExportSource,
    rng: TimeRange,
    batch_rows: int = BATCH_ROWS,
    batch_bytes: int = BATCH_BYTES,
) -> Iterator[Any]:
    """The source's rows as Arrow record batches (none if the table is absent).

    A batch ends at `batch_rows` rows or once its text passes `batch_bytes`: payload rows run from a few
    hundred bytes to 2 MB, so a row count alone would not bound memory.
    """
    if not inspect(engine).has_table(source.table_name):
        return
    metadata = MetaData()
    table: Table = (
        usage_table(metadata) if source.table_name == USAGE_TABLE else payload_table(metadata, source.table_name)
    )
    query = select(*(table.c[name] for name, _ in source.columns)).order_by(*(table.c[n] for n in source.order_by))
    if source.endpoint_filter is not None:
        query = query.where(table.c.endpoint_name == source.endpoint_filter)
    if rng.start is not None:
        query = query.where(table.c.request_time >= rng.start)
    if rng.end is not None:
        query = query.where(table.c.request_time < rng.end)
    to_batch = _BatchBuilder(source.columns)
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True).execute(query)
        pending: list[Any] = []
        size = 0
        fetch = 16
        while rows := result.fetchmany(fetch):
            fetched = 0
            for row in rows:
                pending.append(row)
                row_bytes = _text_bytes(row)
                fetched += row_bytes
                size += row_bytes
                if len(pending) >= batch_rows or size >= batch_bytes:
                    yield to_batch(pending)
                    pending, size = [], 0
            # Fetch about FETCH_BYTES at a time: many small usage rows per round trip, few 2 MB payload rows.
            fetch = max(1, min(1024, FETCH_BYTES * len(rows) // max(fetched, 1)))
        if pending:
            yield to_batch(pending)


class _BatchBuilder:
    """Rows (tuples in the source's column order) -> one Arrow record batch of the export schema."""

    def __init__(self, columns: list[tuple[str, str]]) -> None:
        self._pa = _pyarrow()
        self._schema = arrow_schema(columns)
        self._converters = [_CONVERTERS.get(kind) for _, kind in columns]

    def __call__(self, rows: list[Any]) -> Any:
        pa = self._pa
        arrays = []
        for i, (field, convert) in enumerate(zip(self._schema, self._converters, strict=True)):
            values = [row[i] for row in rows] if convert is None else [convert(row[i]) for row in rows]
            arrays.append(pa.array(values, type=field.type))
        return pa.RecordBatch.from_arrays(arrays, schema=self._schema)


@dataclass(frozen=True)
class ExportResult:
    table_name: str
    rows: int
    path: Path


class _Counter:
    """Counts rows as batches pass through to a writer."""

    def __init__(self, batches: Iterator[Any]) -> None:
        self._batches = batches
        self.rows = 0

    def __iter__(self) -> Iterator[Any]:
        for batch in self._batches:
            self.rows += batch.num_rows
            yield batch


def write_parquet(batches: Iterator[Any], schema: Any, out: Path | Any) -> int:
    """Write batches to `out` (a path or a binary file) as Parquet, one row group per batch; returns rows."""
    pq = _pyarrow().parquet
    counter = _Counter(batches)
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for batch in counter:
            writer.write_batch(batch)
    return counter.rows


def write_delta(batches: Iterator[Any], schema: Any, out: Path, if_exists: IfExists) -> int:
    """Write batches as a Delta Lake table directory at `out`; returns rows."""
    pa = _pyarrow()
    try:
        from deltalake import write_deltalake
        from deltalake.exceptions import DeltaError
    except ImportError:
        raise NotImplementedByServer("Delta Lake export needs deltalake: pip install 'modelgate[export]'.") from None
    if out.exists() and not out.is_dir():
        raise InvalidParameterValue(f"{out} is a file; a Delta Lake table is a directory.")
    counter = _Counter(batches)
    reader = pa.RecordBatchReader.from_batches(schema, iter(counter))
    try:
        write_deltalake(str(out), reader, mode=if_exists)
    except DeltaError as exc:  # e.g. appending usage rows to a payload table: a schema mismatch
        raise InvalidParameterValue(f"Delta Lake refused the write to {out}: {exc}") from None
    return counter.rows


def export_to_spool(engine: Engine, source: ExportSource, rng: TimeRange) -> tuple[IO[bytes], int]:
    """Export one table as Parquet into an unnamed temporary file, rewound; the REST route streams it.

    The file is written whole before the response starts, so a failure is still a proper error response,
    and it has no name to clean up: closing it (or the process ending) frees it.
    """
    spool = tempfile.TemporaryFile()  # noqa: SIM115  (handed to the caller, who closes it)
    try:
        rows = write_parquet(record_batches(engine, source, rng), arrow_schema(source.columns), spool)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool, rows


def export_to_path(
    engine: Engine, source: ExportSource, fmt: Format, out: Path, rng: TimeRange, *, if_exists: IfExists = "error"
) -> ExportResult:
    """Export one table to a Parquet file or a Delta table directory (the CLI's path)."""
    if fmt == "parquet" and if_exists == "append":
        raise InvalidParameterValue("Parquet files cannot be appended to; use --format delta to append.")
    if if_exists == "error" and out.exists():
        raise InvalidParameterValue(f"{out} already exists; choose --if-exists overwrite (or append for delta).")
    schema = arrow_schema(source.columns)
    batches = record_batches(engine, source, rng)
    if fmt == "delta":
        rows = write_delta(batches, schema, out, if_exists)
    else:
        if out.is_dir():
            raise InvalidParameterValue(f"{out} is a directory; a Parquet export is one file.")
        partial = out.with_name(out.name + ".partial")  # a failed export leaves no half-written file at `out`
        try:
            rows = write_parquet(batches, schema, partial)
            partial.replace(out)
        finally:
            partial.unlink(missing_ok=True)
    return ExportResult(source.table_name, rows, out)
