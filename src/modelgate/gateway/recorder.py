"""Turns finished queries into usage rows and inference-table rows (an observer of InvocationService).

Runs on the request path only to copy a few fields and enqueue; serialising payloads to JSON happens in the
writer thread, when the row is written.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

from modelgate.gateway.tables import USAGE_TABLE, payload_table_name
from modelgate.gateway.writer import GatewayWriter
from modelgate.serving.records import CallRecord

MAX_PAYLOAD_BYTES = 1024 * 1024


class LazyJson:
    """A payload turned into JSON text only when the writer thread needs it."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def render(self) -> bytes:
        value = self._value
        if hasattr(value, "model_dump"):
            value = value.model_dump(mode="json", exclude_none=True, by_alias=True)
        return orjson.dumps(value)


def input_chars(record: CallRecord) -> int:
    from modelgate.serving.dispatch import request_chars

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

    def rows(self) -> list[tuple[str, dict[str, Any]]]:
        record = self.record
        gateway = record.ai_gateway or {}
        out: list[tuple[str, dict[str, Any]]] = []
        if (gateway.get("usage_tracking_config") or {}).get("enabled"):
            out.append((USAGE_TABLE, usage_row(record)))
        table_cfg = gateway.get("inference_table_config") or {}
        if table_cfg.get("enabled"):
            fraction = float(table_cfg.get("sampling_fraction") or 1.0)
            if fraction >= 1.0 or _sampler.random() < fraction:
                out.append((payload_table_name(table_cfg, record.endpoint), payload_row(record, fraction)))
        return out


def usage_row(record: CallRecord) -> dict[str, Any]:
    return {
        "databricks_request_id": record.request_id,
        "client_request_id": record.client_request_id,
        "requester": record.principal.name,
        "endpoint_name": record.endpoint,
        "endpoint_id": record.endpoint_id,
        "served_entity_id": record.served_entity,
        "status_code": record.status_code,
        "usage_date": record.request_time,
        "request_time": record.request_time,
        "input_token_count": record.prompt_tokens,
        "output_token_count": record.completion_tokens,
        "input_character_count": input_chars(record),
        "output_character_count": output_chars(record),
        "usage_context": record.usage_context,
        "request_streaming": record.streaming,
    }


def payload_row(record: CallRecord, fraction: float) -> dict[str, Any]:
    errors: list[str] = []
    sent = record.request_body if record.request_body is not None else record.request
    request_text = _bounded(LazyJson(sent).render(), "MAX_REQUEST_SIZE_EXCEEDED", errors)
    response_text = None
    if record.response is not None:
        response_text = _bounded(LazyJson(record.response).render(), "MAX_RESPONSE_SIZE_EXCEEDED", errors)
    return {
        "databricks_request_id": record.request_id,
        "client_request_id": record.client_request_id,
        "request_date": record.request_time,
        "request_time": record.request_time,
        "status_code": record.status_code,
        "sampling_fraction": fraction,
        "execution_duration_ms": int(record.duration_s * 1000),
        "request": request_text,
        "response": response_text,
        "logging_error_codes": errors,
        "served_entity_id": record.served_entity,
        "requester": record.principal.name,
    }


def _bounded(payload: bytes, code: str, errors: list[str]) -> str | None:
    if len(payload) > MAX_PAYLOAD_BYTES:
        errors.append(code)
        return None
    return payload.decode()
