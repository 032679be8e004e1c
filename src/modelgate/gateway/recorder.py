"""Turns finished queries into usage rows and inference-table rows (an observer of InvocationService).

On the request path it copies what the rows need out of the query's record into a `FinishedQuery` (scalars,
the request's and response's JSON bytes, two character counts: data the request has just touched, so
cheap to read) and enqueues it. The writer thread makes the rows from that: ids, dates and times, the
driver's values, appended flat to the list of each row's shape (tables.RowShape). The record itself,
with the parsed request and response, is freed by the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from modelgate.gateway.sqlvalues import SqlValues
from modelgate.gateway.tables import USAGE_BARE, USAGE_FULL, RecordingPlan, RowShape
from modelgate.gateway.writer import GatewayWriter
from modelgate.serving.records import CallRecord, new_request_id, output_chars, request_chars

MAX_PAYLOAD_BYTES = 1024 * 1024


def payload_json(value: Any) -> bytes:
    """A request or response as JSON: the bytes sent or received when we have them, else the parsed value."""
    if isinstance(value, bytes):
        return value
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", exclude_none=True, by_alias=True)
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


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

    def add_rows(self, values: SqlValues, rows: dict[RowShape, list[Any]]) -> None:
        """Append this query's rows, flat, to the lists of their shapes (writer thread). Each row goes in with
        one `+=`, so a row that fails to render leaves nothing half-written."""
        request_id = new_request_id()  # made here: nothing else needs one
        date, time = values.moment(self.request_time)
        client_id = self.client_request_id
        if self.plan.usage:
            context = self.usage_context
            usage = (
                request_id,  # databricks_request_id
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
                values.boolean(self.streaming),  # request_streaming
            )
            if client_id is None and context is None:
                rows[USAGE_BARE] += usage
            else:
                rows[USAGE_FULL] += (*usage, client_id, None if context is None else values.json(context))
        if self.keeps_payload:
            shapes = self.plan.payload_shapes
            assert shapes is not None
            errors: list[str] = []
            request = _bounded(self.request, "MAX_REQUEST_SIZE_EXCEEDED", errors)
            response = None if self.response is None else _bounded(self.response, "MAX_RESPONSE_SIZE_EXCEEDED", errors)
            payload = (
                request_id,  # databricks_request_id
                date,  # request_date
                time,  # request_time
                self.status_code,
                self.plan.sampling_fraction,
                int(self.duration_s * 1000),  # execution_duration_ms
                request,
                response,
                values.json(errors) if errors else _NO_ERRORS,  # logging_error_codes
                self.served_entity,  # served_entity_id
                self.requester,
            )
            if client_id is None:
                rows[shapes[0]] += payload
            else:
                rows[shapes[1]] += (*payload, client_id)


_NO_ERRORS = "[]"


def _bounded(payload: Any, code: str, errors: list[str]) -> str | None:
    """The payload as JSON text, or None (and `code` noted in `errors`) when it is over 1 MB."""
    data = payload if type(payload) is bytes else payload_json(payload)
    if len(data) > MAX_PAYLOAD_BYTES:
        errors.append(code)
        return None
    return data.decode()


class GatewayRecorder:
    """Hands each finished query whose endpoint tracks usage or keeps an inference table to the writer."""

    def __init__(self, writer: GatewayWriter) -> None:
        self.writer = writer

    def observe(self, record: CallRecord) -> None:
        if record.recording is not None:
            self.writer.submit(FinishedQuery.of(record, record.recording))
