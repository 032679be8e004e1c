"""Turns finished queries into usage rows and inference-table rows (an observer of InvocationService).

On the request path it copies what the rows need out of the query's record into a `FinishedQuery` (scalars,
the request's and response's JSON bytes, two character counts: data the request has just touched, so
cheap to read) and enqueues it. The writer thread makes the rows from that: ids, dates and times, the
driver's values. The record itself, with the parsed request and response, is freed by the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from modelgate.gateway.sqlvalues import SqlValues
from modelgate.gateway.tables import USAGE_TABLE, RecordingPlan
from modelgate.gateway.writer import GatewayWriter
from modelgate.serving.records import CallRecord, new_request_id, request_chars

MAX_PAYLOAD_BYTES = 1024 * 1024


def payload_json(value: Any) -> bytes:
    """A request or response as JSON: the bytes sent or received when we have them, else the parsed value."""
    if isinstance(value, bytes):
        return value
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", exclude_none=True, by_alias=True)
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def output_chars(response: Any) -> int:
    """Characters of the generated text in a chat or completions response (0 for anything else)."""
    if isinstance(response, dict) and "choices" in response:
        total = 0
        for choice in response.get("choices") or []:
            msg = choice.get("message")
            content = msg.get("content") if msg else choice.get("text")
            if isinstance(content, str):
                total += len(content)
        return total
    return 0


@dataclass(slots=True)
class FinishedQuery:
    """What the usage and payload rows of one query need, copied out of its record on the request path."""

    plan: RecordingPlan
    endpoint: str
    endpoint_id: str
    requester: str
    client_request_id: str | None
    served_entity: str | None
    status_code: int
    request_time: float  # epoch seconds
    duration_s: float
    prompt_tokens: int
    completion_tokens: int
    input_chars: int
    output_chars: int
    usage_context: dict[str, str] | None
    streaming: bool
    # The inference table's request and response (bytes, or a parsed value made JSON by the writer);
    # `keeps_payload` False when the table is off or sampling left this query out.
    keeps_payload: bool
    request: Any
    response: Any

    @classmethod
    def of(cls, record: CallRecord, plan: RecordingPlan) -> FinishedQuery:
        keeps = plan.keeps_payload()
        return cls(
            plan,
            record.endpoint,
            record.endpoint_id,
            record.principal.name,
            record.client_request_id,
            record.served_entity,
            record.status_code,
            record.request_time,
            record.duration_s,
            record.prompt_tokens,
            record.completion_tokens,
            request_chars(record.request) if plan.usage else 0,
            output_chars(record.response) if plan.usage else 0,
            record.usage_context,
            record.streaming,
            keeps,
            (record.request_body if record.request_body is not None else record.request) if keeps else None,
            (record.response_body if record.response_body is not None else record.response) if keeps else None,
        )

    def rows(self, values: SqlValues) -> list[tuple[str, tuple[Any, ...]]]:
        """This query's rows, each in its table's column order (writer thread)."""
        request_id = new_request_id()  # made here: nothing else needs one
        date, time = values.moment(self.request_time)
        out: list[tuple[str, tuple[Any, ...]]] = []
        if self.plan.usage:
            out.append((USAGE_TABLE, self._usage_row(request_id, date, time, values)))
        if self.keeps_payload:
            assert self.plan.payload_table is not None
            out.append((self.plan.payload_table, self._payload_row(request_id, date, time, values)))
        return out

    def _usage_row(self, request_id: str, date: Any, time: Any, values: SqlValues) -> tuple[Any, ...]:
        """The `endpoint_usage` row (tables.usage_table)."""
        return (
            request_id,  # databricks_request_id
            self.client_request_id,
            self.requester,
            self.endpoint,  # endpoint_name
            self.endpoint_id,
            self.served_entity,  # served_entity_id
            self.status_code,
            date,  # usage_date
            time,  # request_time
            self.prompt_tokens,  # input_token_count
            self.completion_tokens,  # output_token_count
            self.input_chars,  # input_character_count
            self.output_chars,  # output_character_count
            None if self.usage_context is None else values.json(self.usage_context),
            values.boolean(self.streaming),  # request_streaming
        )

    def _payload_row(self, request_id: str, date: Any, time: Any, values: SqlValues) -> tuple[Any, ...]:
        """The `{catalog}.{schema}.{prefix}_payload` row (tables.payload_table)."""
        errors: list[str] = []
        request_text = _bounded(payload_json(self.request), "MAX_REQUEST_SIZE_EXCEEDED", errors)
        response_text = None
        if self.response is not None:
            response_text = _bounded(payload_json(self.response), "MAX_RESPONSE_SIZE_EXCEEDED", errors)
        return (
            request_id,  # databricks_request_id
            self.client_request_id,
            date,  # request_date
            time,  # request_time
            self.status_code,
            self.plan.sampling_fraction,
            int(self.duration_s * 1000),  # execution_duration_ms
            request_text,  # request
            response_text,  # response
            values.json(errors) if errors else _NO_ERRORS,  # logging_error_codes
            self.served_entity,  # served_entity_id
            self.requester,
        )


_NO_ERRORS = "[]"


def _bounded(payload: bytes, code: str, errors: list[str]) -> str | None:
    if len(payload) > MAX_PAYLOAD_BYTES:
        errors.append(code)
        return None
    return payload.decode()


class GatewayRecorder:
    """Hands each finished query whose endpoint tracks usage or keeps an inference table to the writer."""

    def __init__(self, writer: GatewayWriter) -> None:
        self.writer = writer

    def observe(self, record: CallRecord) -> None:
        if record.recording is not None:
            self.writer.submit(FinishedQuery.of(record, record.recording))
