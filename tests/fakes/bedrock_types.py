"""Bedrock runtime bodies checked against AWS's own service model (botocore's `bedrock-runtime`).

botocore ships the model that every AWS SDK is generated from, and its `ParamValidator` refuses what the
service's validation refuses: unknown members ("Unknown parameter"), missing required ones, wrong types,
values under a member's `min`, and a tagged union (a `ContentBlock`, a `ToolResultContentBlock`) with other
than exactly one member set. Converse's members are camelCase on the wire and in the model alike, so a
snake_case key is an unknown one. Answers and each ConverseStream event are checked against the output
shapes the same way, so the fake never answers what boto3 would not read.

What the model cannot say, checked here from the API reference: a blank `text` block is refused
("The text field in the ContentBlock object at messages.0.content.0 is blank").
"""

from __future__ import annotations

import functools
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, StructureShape
from botocore.validate import ParamValidator


@functools.cache
def _service() -> ServiceModel:
    return botocore.session.get_session().get_service_model("bedrock-runtime")


def _operation(name: str) -> OperationModel:
    return _service().operation_model(name)


def _report(params: Any, shape: StructureShape) -> list[str]:
    report = ParamValidator().validate(params, shape).generate_report()
    return [line for line in report.splitlines() if line.strip()][:3]


def converse_problems(body: Any, model_id: str, stream: bool = False) -> list[str]:
    """Why Converse (or ConverseStream) would refuse this body for `model_id`; empty when it takes it."""
    if not isinstance(body, dict):
        return ["Malformed input request: the body must be a JSON object"]
    shape = _operation("ConverseStream" if stream else "Converse").input_shape
    found = _report({**body, "modelId": model_id}, shape)
    return found or _blank_texts(body)


def invoke_problems(model_id: str, content_type: str | None, accept: str | None, body: bytes) -> list[str]:
    """Why InvokeModel would refuse these parameters (the body itself is the model provider's JSON)."""
    params: dict[str, Any] = {"modelId": model_id, "body": body}
    if content_type is not None:
        params["contentType"] = content_type
    if accept is not None:
        params["accept"] = accept
    return _report(params, _operation("InvokeModel").input_shape)


def converse_answer_problems(answer: Any) -> list[str]:
    """Why boto3 would not read this as a Converse answer."""
    return _report(answer, _operation("Converse").output_shape)


def stream_event_problems(event_type: str, payload: Any) -> list[str]:
    """Why boto3 would not read this as a ConverseStream event of `event_type`."""
    stream = _operation("ConverseStream").output_shape.members["stream"]
    assert isinstance(stream, StructureShape)
    if event_type not in stream.members:
        return [f"{event_type}: not a ConverseStream event"]
    shape = stream.members[event_type]
    assert isinstance(shape, StructureShape)
    return _report(payload, shape)


def _blank_texts(body: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for i, block in enumerate(body.get("system") or []):
        if isinstance(block, dict) and "text" in block and not str(block["text"]).strip():
            found.append(f"The text field in the SystemContentBlock object at system.{i} is blank.")
    for i, message in enumerate(body.get("messages") or []):
        for j, block in enumerate(message.get("content") or []):
            if isinstance(block, dict) and "text" in block and not str(block["text"]).strip():
                found.append(f"The text field in the ContentBlock object at messages.{i}.content.{j} is blank.")
    return found
