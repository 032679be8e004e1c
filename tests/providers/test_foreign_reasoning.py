"""Reasoning blocks another provider wrote, sent to Anthropic and Bedrock: signed ones go as they came (the
provider checks the signature), unsigned ones (Cohere's, a Gemini 3 thought) are dropped, since Claude
refuses a thinking block without a signature."""

from __future__ import annotations

from typing import Any

from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.common import validate_request
from modelgate.providers import anthropic_translate, bedrock_translate

HISTORY: Any = [
    {"role": "user", "content": "q"},
    {
        "role": "assistant",
        "content": [
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "unsigned (Cohere's)"}]},
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "signed", "signature": "c2ln"}]},
            {"type": "text", "text": "answer"},
        ],
    },
    {"role": "user", "content": "more"},
]


def _request() -> ChatRequest:
    return validate_request(ChatRequest, {"messages": HISTORY})


def test_anthropic_drops_unsigned_thinking() -> None:
    body, _ = anthropic_translate.messages_body(_request(), "claude-sonnet-4-5")
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "signed", "signature": "c2ln"},
        {"type": "text", "text": "answer"},
    ]


def test_bedrock_drops_unsigned_reasoning() -> None:
    body, _ = bedrock_translate.converse_body(_request())
    assert body["messages"][1]["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "signed", "signature": "c2ln"}}},
        {"text": "answer"},
    ]
