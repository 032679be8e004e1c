"""Tables the AI Gateway writes: `endpoint_usage` (one per server) and one payload table per endpoint.

Payload tables are named as Databricks names them, `{catalog}.{schema}.{prefix}_payload`, as one quoted
identifier (query with `SELECT * FROM "main.default.chat_payload"`); they are created on first write.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

USAGE_TABLE = "endpoint_usage"

# Rows are appended under a sequential key (SQLite's rowid, a PostgreSQL identity): inserting under the random
# request id instead cost 2.5x as much per row in SQLite's B-tree.
RowId = BigInteger().with_variant(Integer(), "sqlite")


def usage_table(metadata: MetaData) -> Table:
    return Table(
        USAGE_TABLE,
        metadata,
        Column("id", RowId, primary_key=True, autoincrement=True),
        Column("databricks_request_id", String(64), nullable=False),
        Column("client_request_id", String(256)),
        Column("requester", String(255)),
        Column("endpoint_name", String(63)),
        Column("endpoint_id", String(32)),
        Column("served_entity_id", String(128)),
        Column("status_code", Integer),
        Column("usage_date", Date),
        Column("request_time", DateTime(timezone=True)),
        Column("input_token_count", BigInteger),
        Column("output_token_count", BigInteger),
        Column("input_character_count", BigInteger),
        Column("output_character_count", BigInteger),
        Column("usage_context", JSON),
        Column("request_streaming", Boolean),
        Index("ix_endpoint_usage_endpoint_time", "endpoint_name", "request_time"),
        extend_existing=True,
    )


def payload_table(metadata: MetaData, name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("id", RowId, primary_key=True, autoincrement=True),
        Column("databricks_request_id", String(64), nullable=False),
        Column("client_request_id", String(256)),
        Column("request_date", Date),
        Column("request_time", DateTime(timezone=True)),
        Column("status_code", Integer),
        Column("sampling_fraction", Float),
        Column("execution_duration_ms", BigInteger),
        Column("request", Text),
        Column("response", Text),
        Column("logging_error_codes", JSON),
        Column("served_entity_id", String(128)),
        Column("requester", String(255)),
        extend_existing=True,
    )


def payload_table_name(config: dict[str, object], endpoint: str) -> str:
    catalog = config.get("catalog_name") or "main"
    schema = config.get("schema_name") or "default"
    prefix = config.get("table_name_prefix") or endpoint
    return f"{catalog}.{schema}.{prefix}_payload"


@dataclass(frozen=True, slots=True, eq=False)
class RowShape:
    """A table and the columns that one list of rows fills, in this order; the table's others stay NULL.

    A table has two shapes. "Full" has every column. "Bare" leaves out the optional ones, such as
    client_request_id. It is for a row where all of those are None, as for most queries: SQLite's driver
    pays ~1k instructions to bind each None. Shapes are compared by identity (the writer groups by shape).
    """

    table: str
    columns: tuple[str, ...]


# Usage rows: the columns every row has, then the optional ones (None for most queries).
USAGE_COLUMNS = (
    "databricks_request_id", "requester", "endpoint_name", "endpoint_id", "served_entity_id", "status_code",
    "usage_date", "request_time", "input_token_count", "output_token_count", "input_character_count",
    "output_character_count", "request_streaming",
)  # fmt: skip
USAGE_OPTIONAL_COLUMNS = ("client_request_id", "usage_context")
USAGE_BARE = RowShape(USAGE_TABLE, USAGE_COLUMNS)
USAGE_FULL = RowShape(USAGE_TABLE, USAGE_COLUMNS + USAGE_OPTIONAL_COLUMNS)

PAYLOAD_COLUMNS = (
    "databricks_request_id", "request_date", "request_time", "status_code", "sampling_fraction",
    "execution_duration_ms", "request", "response", "logging_error_codes", "served_entity_id", "requester",
)  # fmt: skip
PAYLOAD_OPTIONAL_COLUMNS = ("client_request_id",)


@dataclass(frozen=True, slots=True)
class RecordingPlan:
    """What an endpoint's AI Gateway config asks to record of each query, worked out once per endpoint."""

    usage: bool  # a row in endpoint_usage
    payload_table: str | None  # the inference table, None when it is off
    sampling_fraction: float = 1.0
    # The payload table's (bare, full) row shapes, None when the table is off.
    payload_shapes: tuple[RowShape, RowShape] | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        shapes = None
        if self.payload_table is not None:
            bare = RowShape(self.payload_table, PAYLOAD_COLUMNS)
            shapes = (bare, RowShape(self.payload_table, PAYLOAD_COLUMNS + PAYLOAD_OPTIONAL_COLUMNS))
        object.__setattr__(self, "payload_shapes", shapes)

    def keeps_payload(self) -> bool:
        """Whether this query's payload row is written (the sampling decision, made once per query)."""
        if self.payload_table is None:
            return False
        return self.sampling_fraction >= 1.0 or _sampler.random() < self.sampling_fraction


_sampler = random.Random()


def recording_plan(endpoint: str, ai_gateway: dict[str, Any] | None) -> RecordingPlan | None:
    """None when the endpoint records nothing (usage tracking and inference tables both off)."""
    gateway = ai_gateway or {}
    usage = bool((gateway.get("usage_tracking_config") or {}).get("enabled"))
    table_cfg = gateway.get("inference_table_config") or {}
    if not table_cfg.get("enabled"):
        return RecordingPlan(usage=True, payload_table=None) if usage else None
    fraction = float(table_cfg.get("sampling_fraction") or 1.0)
    return RecordingPlan(usage, payload_table_name(table_cfg, endpoint), fraction)
