"""Turns finished queries into usage rows and inference-table rows (an observer of InvocationService).

Runs on the request path only to enqueue the finished query's record; its rows (payloads as JSON, character
counts, the driver's values) are built in the writer thread.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

from modelgate.gateway.sqlvalues import SqlValues
from modelgate.gateway.tables import USAGE_TABLE, payload_table_name
from modelgate.gateway.writer import GatewayWriter
from modelgate.serving.records import CallRecord, new_request_id, request_chars

MAX_PAYLOAD_BYTES = 1024 * 1024


def payload_json(value: Any) -> bytes:
    """A request or response as JSON: the client's own bytes when we have them, else the parsed value."""
    if isinstance(value, bytes):
        return value
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", exclude_none=True, by_alias=True)
    return orjson.dumps(value)


def input_chars(record: CallRecord) -> int:
    return request_chars(record.request)


def output_chars(record: CallRecord) -> int:
    body = record.response
    if isinstance(body, dict) and "choices" in body:
        total = 0
        for choice in body.get("choices") or []:
            msg = choice.get("message")
            content = msg.get("content") if msg else choice.get("text")
            if isinstance(content, str):
                total += len(content)
        return total
    return 0


class GatewayRecorder:
    """Hands each finished query whose endpoint tracks usage or keeps an inference table to the writer.

    The request path pays one deque append; which rows to write (sampling included) is decided by the
    writer thread in `RecordedCall.rows`."""

    def __init__(self, writer: GatewayWriter) -> None:
        self.writer = writer

    def observe(self, record: CallRecord) -> None:
        gateway = record.ai_gateway
        if not gateway:
            return
        usage, table = gateway.get("usage_tracking_config"), gateway.get("inference_table_config")
        if (usage and usage.get("enabled")) or (table and table.get("enabled")):
            self.writer.submit(RecordedCall(record))


_sampler = random.Random()


class RecordedCall:
    """One finished query; its usage and payload rows are built in the writer thread."""

    __slots__ = ("record",)

    def __init__(self, record: CallRecord) -> None:
        self.record = record

    def rows(self, values: SqlValues) -> list[tuple[str, tuple[Any, ...]]]:
        record = self.record
        gateway = record.ai_gateway or {}
        # Both rows carry the request's id (made here: nothing else needs one), date and time.
        request_id = new_request_id()
        when = (values.date(record.request_time), values.datetime(record.request_time))
        out: list[tuple[str, tuple[Any, ...]]] = []
        if (gateway.get("usage_tracking_config") or {}).get("enabled"):
            out.append((USAGE_TABLE, usage_row(record, request_id, values, when)))
        table_cfg = gateway.get("inference_table_config") or {}
        if table_cfg.get("enabled"):
            fraction = float(table_cfg.get("sampling_fraction") or 1.0)
            if fraction >= 1.0 or _sampler.random() < fraction:
                row = payload_row(record, request_id, fraction, values, when)
                out.append((payload_table_name(table_cfg, record.endpoint), row))
        return out


def usage_row(record: CallRecord, request_id: str, values: SqlValues, when: tuple[Any, Any]) -> tuple[Any, ...]:
    """The `endpoint_usage` row, in the table's column order (tables.usage_table)."""
    return (
        request_id,  # databricks_request_id
        record.client_request_id,
        record.principal.name,  # requester
        record.endpoint,  # endpoint_name
        record.endpoint_id,
        record.served_entity,  # served_entity_id
        record.status_code,
        *when,  # usage_date, request_time
        record.prompt_tokens,  # input_token_count
        record.completion_tokens,  # output_token_count
        input_chars(record),  # input_character_count
        output_chars(record),  # output_character_count
        values.json(record.usage_context),
        values.boolean(record.streaming),  # request_streaming
    )


_NO_ERRORS = "[]"


def payload_row(
    record: CallRecord, request_id: str, fraction: float, values: SqlValues, when: tuple[Any, Any]
) -> tuple[Any, ...]:
    """The `{catalog}.{schema}.{prefix}_payload` row, in the table's column order (tables.payload_table)."""
    errors: list[str] = []
    sent = record.request_body if record.request_body is not None else record.request
    request_text = _bounded(payload_json(sent), "MAX_REQUEST_SIZE_EXCEEDED", errors)
    response_text = None
    if record.response is not None:
        response_text = _bounded(payload_json(record.response), "MAX_RESPONSE_SIZE_EXCEEDED", errors)
    return (
        request_id,  # databricks_request_id
        record.client_request_id,
        *when,  # request_date, request_time
        record.status_code,
        fraction,  # sampling_fraction
        int(record.duration_s * 1000),  # execution_duration_ms
        request_text,  # request
        response_text,  # response
        values.json(errors) if errors else _NO_ERRORS,  # logging_error_codes
        record.served_entity,  # served_entity_id
        record.principal.name,  # requester
    )


def _bounded(payload: bytes, code: str, errors: list[str]) -> str | None:
    if len(payload) > MAX_PAYLOAD_BYTES:
        errors.append(code)
        return None
    return payload.decode()
