"""Gemini's request and answer bodies checked against Google's own types (the `google-genai` SDK).

google-genai models every part of a generateContent call (`Content`, `Part`, `GenerationConfig`, `Tool`,
`ToolConfig`, `SafetySetting`, `GenerateContentResponse`, …) with camelCase aliases, unknown keys forbidden and
`bytes` fields (thoughtSignature, inlineData.data) as base64. It accepts snake_case names too, which the REST
API does not, so keys are also checked by their alias (:mod:`tests.fakes.strict_types`). The SDK has no
model of the REST body itself (it builds one from `GenerateContentConfig`), so `GenerateContentRequest` lists
its top-level fields, from cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference#request.
"""

from __future__ import annotations

from typing import Any

import orjson
import pydantic
from google.genai import _common
from google.genai import types as g

from tests.fakes.strict_types import problems


class GenerateContentRequest(_common.BaseModel):
    """The body of POST …/models/{model}:generateContent (and :streamGenerateContent)."""

    contents: list[g.Content]
    system_instruction: g.Content | None = None
    cached_content: str | None = None
    tools: list[g.Tool] | None = None
    tool_config: g.ToolConfig | None = None
    labels: dict[str, str] | None = None
    safety_settings: list[g.SafetySetting] | None = None
    generation_config: g.GenerationConfig | None = None


def _pydantic_problems(model: type[pydantic.BaseModel], value: Any) -> list[str]:
    try:
        model.model_validate_json(orjson.dumps(value), by_alias=True, by_name=False)
    except pydantic.ValidationError as exc:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)[:3]]
    return []


def request_problems(body: Any) -> list[str]:
    """Why Gemini would refuse this generateContent body ("Invalid JSON payload received. Unknown name …")."""
    return _pydantic_problems(GenerateContentRequest, body) or problems(GenerateContentRequest, body)


def response_problems(answer: Any) -> list[str]:
    """Why google-genai would not read this answer (or one streamed event of it) as Google's own."""
    return _pydantic_problems(g.GenerateContentResponse, answer) or problems(g.GenerateContentResponse, answer)
