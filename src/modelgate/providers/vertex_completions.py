"""Completions (`llm/v1/completions`) on Gemini, which has only generateContent: pure translation.

Each prompt becomes one single-turn user message; `n` becomes `candidateCount`. A list of prompts makes one
call per prompt, and choice `i * n + j` is candidate j of prompt i, as OpenAI numbers them. Answers keep only
the text parts (no thoughts), and streams become `text_completion` chunks with usage in a final chunk.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from modelgate.errors import BadRequest
from modelgate.protocol.completions import CompletionRequest
from modelgate.providers.vertex_errors import raise_if_blocked
from modelgate.providers.vertex_translate import finish_reason, sampling_config, usage

Json = dict[str, Any]
# Completion fields Gemini has no equivalent for; refusing beats answering something else than was asked.
_UNSUPPORTED = ("echo", "suffix", "logprobs", "logit_bias")


def completion_body(request: CompletionRequest, prompt: str) -> Json:
    """A generateContent body for one prompt. Example (…/model-reference/inference#sample-requests):
    {"contents": [{"role": "user", "parts": [{"text": "Once upon a time"}]}],
     "generationConfig": {"maxOutputTokens": 32, "temperature": 0.2, "candidateCount": 2}}
    """
    data = request.model_dump(exclude_none=True)
    given = [name for name in _UNSUPPORTED if data.get(name) not in (None, False)]
    if given:
        raise BadRequest(
            f"Provider 'google-cloud-vertex-ai' does not support {', '.join(given)} for completions; "
            "remove it from the request."
        )
    body: Json = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
    config = sampling_config(data)
    if (request.n or 1) > 1:
        config["candidateCount"] = request.n
    if config:
        body["generationConfig"] = config
    if request.extra_params:
        body.update(request.extra_params)
    return body


def _text(candidate: Json) -> str:
    parts = (candidate.get("content") or {}).get("parts") or []
    return "".join(p.get("text", "") for p in parts if not p.get("thought"))


def completion_response(answers: list[Json], model: str, n: int) -> Json:
    """generateContent answers, one per prompt, → one text_completion. Example answer: see
    `vertex_translate.chat_response`."""
    choices = []
    prompt_tokens = completion_tokens = 0
    for p, resp in enumerate(answers):
        raise_if_blocked(resp)
        for j, cand in enumerate(resp.get("candidates") or []):
            index = p * n + int(cand.get("index", j))
            reason = finish_reason(cand.get("finishReason"))
            choices.append({"index": index, "text": _text(cand), "finish_reason": reason, "logprobs": None})
        u = usage(resp.get("usageMetadata"))
        prompt_tokens += u["prompt_tokens"]
        completion_tokens += u["completion_tokens"]
    total = prompt_tokens + completion_tokens
    return {
        "id": answers[0].get("responseId") or f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": sorted(choices, key=lambda c: int(c["index"])),
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": total},
    }


class CompletionStreamTranslator:
    """streamGenerateContent?alt=sse events of one prompt → text_completion chunks; choice index
    `offset + candidate index`. Usage (running totals on any event) goes out once, in `close()`."""

    def __init__(self, model: str, offset: int = 0) -> None:
        self.model = model
        self.offset = offset
        self.id = f"cmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.usage: Json | None = None

    def _chunk(self, index: int, text: str, finish: str | None = None) -> Json:
        choice = {"index": self.offset + index, "text": text, "finish_reason": finish, "logprobs": None}
        return {"id": self.id, "object": "text_completion", "created": self.created, "model": self.model,
                "choices": [choice]}  # fmt: skip

    def feed(self, event: Json) -> list[Json]:
        raise_if_blocked(event)
        if event.get("usageMetadata"):
            self.usage = event["usageMetadata"]
        out: list[Json] = []
        for i, cand in enumerate(event.get("candidates") or []):
            index = int(cand.get("index", i))
            text = _text(cand)
            if text:
                out.append(self._chunk(index, text))
            if cand.get("finishReason"):
                out.append(self._chunk(index, "", finish_reason(cand["finishReason"])))
        return out

    def close(self) -> list[Json]:
        last = self._chunk(0, "")
        return [{**last, "choices": [], "usage": usage(self.usage)}]
