"""Provider `cohere`: images (`image_url` parts, Cohere's own shape) and reasoning (`thinking` param and
`thinking` content blocks, round-tripped), through the OpenAI client pointed at modelgate, against the fake
Cohere v2 API, streaming and not."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import openai
import pytest
from PIL import Image

from tests.fakes.cohere_upstream import FakeCohereThread
from tests.providers.client_calls import chat_text, invoke, stream_thinking
from tests.providers.sent import sent_with
from tests.support.live import LiveServer

MODEL = "command-a-reasoning"


def png_data_url(width: int = 8, height: int = 6) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def reasoning(text: str) -> dict[str, Any]:
    return {"type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}


@pytest.mark.parametrize("stream", [False, True])
def test_images_as_image_url_parts(
    oai: openai.OpenAI,
    cohere_fake: FakeCohereThread,
    cohere_endpoint: Callable[..., str],
    stream: bool,
) -> None:
    name = cohere_endpoint("command-a-vision")
    marker = f"describe {stream} {name}"
    url = png_data_url()
    content: Any = [
        {"type": "text", "text": marker},
        {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/chart.png"}},
    ]
    messages: Any = [{"role": "user", "content": content}]
    text = chat_text(oai, name, messages, stream=stream)
    assert text == f"echo: {marker} [saw 2 image(s): image/png, url]"
    [sent] = sent_with(cohere_fake, marker)
    assert sent.json["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": marker},
                {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/chart.png"}},
            ],
        }
    ]


def test_reasoning_blocks_round_trip(
    oai: openai.OpenAI,
    cohere_fake: FakeCohereThread,
    cohere_endpoint: Callable[..., str],
) -> None:
    name = cohere_endpoint(MODEL)
    question = f"how many sisters {name}"
    answer = oai.chat.completions.create(
        model=name,
        messages=[{"role": "user", "content": question}],
        extra_body={"thinking": {"type": "enabled", "budget_tokens": 2000}},
    )
    content: Any = answer.choices[0].message.content
    thought = f"thinking about: {question}"
    assert content == [reasoning(thought), {"type": "text", "text": f"echo: {question}"}]
    words = len(thought.split()) + len(f"echo: {question}".split())
    assert answer.usage is not None and answer.usage.completion_tokens == words
    [first] = sent_with(cohere_fake, question)
    assert first.json["thinking"] == {"type": "enabled", "token_budget": 2000}

    follow_up = f"and brothers {name}"
    oai.chat.completions.create(
        model=name,
        messages=[
            {"role": "user", "content": question},
            {"role": "assistant", "content": content},
            {"role": "user", "content": follow_up},
        ],
        reasoning_effort="low",
    )
    [second] = sent_with(cohere_fake, follow_up)
    assert second.json["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": thought}, {"type": "text", "text": f"echo: {question}"}],
    }
    assert second.json["thinking"] == {"type": "enabled", "token_budget": 2048}


def test_streamed_thinking_deltas(
    server: LiveServer,
    cohere_fake: FakeCohereThread,
    cohere_endpoint: Callable[..., str],
) -> None:
    name = cohere_endpoint(MODEL)
    question = f"think out loud {name}"
    streamed = stream_thinking(server, name, question, 3000)
    assert "".join(b["summary"][0]["text"] for b in streamed.reasoning) == f"thinking about: {question}"
    assert streamed.text == f"echo: {question}"
    [sent] = sent_with(cohere_fake, question)
    assert sent.json["thinking"] == {"type": "enabled", "token_budget": 3000}


@pytest.mark.parametrize(
    ("extra", "sent_thinking"),
    [({"thinking": {"type": "disabled"}}, {"type": "disabled"}), ({"reasoning_effort": "none"}, {"type": "disabled"})],
    ids=["thinking", "effort"],
)
def test_reasoning_off(
    server: LiveServer,
    cohere_fake: FakeCohereThread,
    cohere_endpoint: Callable[..., str],
    extra: Any,
    sent_thinking: Any,
) -> None:
    name = cohere_endpoint(MODEL)
    marker = f"no thinking {sorted(extra)[0]} {name}"
    resp = invoke(server, name, {"messages": [{"role": "user", "content": marker}], **extra})
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == f"echo: {marker}"
    [sent] = sent_with(cohere_fake, marker)
    assert sent.json["thinking"] == sent_thinking


def test_reasoning_in_user_turn_is_400(
    server: LiveServer,
    cohere_endpoint: Callable[..., str],
) -> None:
    name = cohere_endpoint(MODEL)
    resp = invoke(server, name, {"messages": [{"role": "user", "content": [reasoning("x")]}]})
    assert resp.status_code == 400
    assert resp.json() == {
        "error_code": "BAD_REQUEST",
        "message": "messages[0]: provider 'cohere' does not take 'reasoning' content in user messages.",
    }
