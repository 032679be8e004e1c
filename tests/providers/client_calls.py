"""What the provider tests send through modelgate and read back: a chat turn through the openai client
(streaming or not), a streamed turn with usage, a raw invocation, and what a stream carried: text per choice,
text up to an error event, reasoning then text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import openai
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionChunk

from tests.serving.support import sse_events
from tests.support.live import LiveServer

Json = dict[str, Any]


def chat_text(oai: openai.OpenAI, endpoint: str, messages: Any, *, stream: bool) -> str:
    """The assistant's text for one chat turn, joined from the chunks when streaming."""
    if stream:
        chunks = list(oai.chat.completions.create(model=endpoint, messages=messages, stream=True))
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return oai.chat.completions.create(model=endpoint, messages=messages).choices[0].message.content or ""


def multi_turn(marker: str) -> list[Any]:
    """A system prompt, one earlier exchange and `marker` as the last user turn."""
    return [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "echo: first"},
        {"role": "user", "content": marker},
    ]


@dataclass
class Streamed:
    chunks: list[ChatCompletionChunk]
    text: str  # the first choice's content, joined
    finish_reasons: list[str]  # every finish_reason the first choice got, in order
    usage: CompletionUsage | None  # the last chunk's


def stream_chat(oai: openai.OpenAI, endpoint: str, content: str) -> Streamed:
    """Stream one user turn with `include_usage` and gather what came back."""
    chunks = list(
        oai.chat.completions.create(
            model=endpoint,
            messages=[{"role": "user", "content": content}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes: list[str] = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    return Streamed(chunks, text, finishes, chunks[-1].usage)


def invoke(server: LiveServer, endpoint: str, body: Json) -> httpx.Response:
    """POST `body` to the endpoint's invocations URL as the admin, the way curl users call it."""
    with server.client() as c:
        return c.post(f"/serving-endpoints/{endpoint}/invocations", json=body)


def texts_by_choice(events: list[Json]) -> tuple[dict[int, str], dict[int, str]]:
    """(text, finish_reason) of each choice index in a stream of chat chunks or text completions."""
    texts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    for event in events:
        for choice in event["choices"]:
            piece = choice["text"] if event["object"] == "text_completion" else choice["delta"].get("content") or ""
            texts[choice["index"]] = texts.get(choice["index"], "") + piece
            if choice["finish_reason"]:
                finishes[choice["index"]] = choice["finish_reason"]
    return texts, finishes


def text_before_error(events: list[Json]) -> str:
    """The text streamed before the final error event."""
    return "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e.get("choices"))


def stream_fanned_out(server: LiveServer, endpoint: str, marker: str, n: int) -> list[Json]:
    """Stream one chat turn asking for `n` choices; check they share one id and each echoes `marker`, then
    stops. Returns the events, for the provider's own usage arithmetic."""
    resp = invoke(server, endpoint, {"messages": [{"role": "user", "content": marker}], "n": n, "stream": True})
    assert resp.status_code == 200, resp.text
    events = sse_events(resp.text)
    assert len({e["id"] for e in events}) == 1
    texts, finishes = texts_by_choice(events)
    assert texts == dict.fromkeys(range(n), f"echo: {marker}")
    assert finishes == dict.fromkeys(range(n), "stop")
    return events


@dataclass
class ThinkingStream:
    events: list[Json]
    reasoning: list[Json]  # the `reasoning` content blocks, one per delta, in order
    text: str


def stream_thinking(server: LiveServer, endpoint: str, question: str, budget_tokens: int) -> ThinkingStream:
    """Stream `question` with thinking on; check that reasoning deltas (all `reasoning` blocks) come first,
    then the answer's text deltas."""
    body = {
        "messages": [{"role": "user", "content": question}],
        "thinking": {"type": "enabled", "budget_tokens": budget_tokens},
        "stream": True,
    }
    resp = invoke(server, endpoint, body)
    assert resp.status_code == 200, resp.text
    events = sse_events(resp.text)
    deltas = [e["choices"][0]["delta"] for e in events if e["choices"]]
    kinds = ["r" if isinstance(d.get("content"), list) else "t" for d in deltas if d.get("content")]
    assert kinds == sorted(kinds) and "r" in kinds and "t" in kinds, kinds
    reasoning = [d["content"][0] for d in deltas if isinstance(d.get("content"), list)]
    assert all(block["type"] == "reasoning" for block in reasoning)
    text = "".join(d["content"] for d in deltas if isinstance(d.get("content"), str))
    return ThinkingStream(events, reasoning, text)
