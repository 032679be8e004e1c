"""Provider `google-cloud-vertex-ai`: completions through generateContent and Gemini's errors and safety
blocks, through the OpenAI client pointed at modelgate, against the fake Vertex AI server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.fakes.vertex_upstream import SAFETY_RATINGS, FakeVertexThread
from tests.providers.client_calls import invoke, text_before_error, texts_by_choice
from tests.providers.conftest import VERTEX_MODELS
from tests.providers.sent import sent_with
from tests.serving.support import sse_events
from tests.support.live import LiveServer

COMPLETIONS = "llm/v1/completions"
PROVIDER_MESSAGE = "Received error from google-cloud-vertex-ai"


def test_completion_is_a_single_turn_generate_content(
    oai: openai.OpenAI,
    vertex_fake: FakeVertexThread,
    vertex_endpoint: Callable[..., str],
) -> None:
    name = vertex_endpoint(task=COMPLETIONS)
    prompt = f"Once upon a time {name}"
    answer = oai.completions.create(
        model=name, prompt=prompt, max_tokens=30, temperature=0.2, top_p=0.9, n=2, stop=["END"]
    )
    assert answer.object == "text_completion"
    assert [(c.index, c.text, c.finish_reason) for c in answer.choices] == [
        (0, f"echo: {prompt}", "stop"),
        (1, f"echo: {prompt}", "stop"),
    ]
    words = len(prompt.split())
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (words + 3, 2 * (words + 1))
    [sent] = sent_with(vertex_fake, prompt, VERTEX_MODELS)
    assert sent.path == f"{VERTEX_MODELS}/gemini-2.5-flash:generateContent"
    assert sent.json == {
        "contents": [{"role": "user", "parts": [{"text": prompt}]}],
        "generationConfig": {
            "temperature": 0.2,
            "topP": 0.9,
            "maxOutputTokens": 30,
            "stopSequences": ["END"],
            "candidateCount": 2,
        },
    }


def test_completion_of_several_prompts_numbers_choices_per_prompt(
    oai: openai.OpenAI,
    vertex_fake: FakeVertexThread,
    vertex_endpoint: Callable[..., str],
) -> None:
    name = vertex_endpoint(task=COMPLETIONS)
    prompts = [f"first {name}", f"second prompt {name}"]
    answer = oai.completions.create(model=name, prompt=prompts, n=2)
    assert [(c.index, c.text) for c in answer.choices] == [
        (0, f"echo: {prompts[0]}"),
        (1, f"echo: {prompts[0]}"),
        (2, f"echo: {prompts[1]}"),
        (3, f"echo: {prompts[1]}"),
    ]
    assert len(sent_with(vertex_fake, name, VERTEX_MODELS)) == 2
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == sum(len(p.split()) + 3 for p in prompts)


@pytest.mark.parametrize("several", [False, True])
def test_completion_stream(
    server: LiveServer,
    vertex_fake: FakeVertexThread,
    vertex_endpoint: Callable[..., str],
    several: bool,
) -> None:
    name = vertex_endpoint(task=COMPLETIONS)
    prompts = [f"stream me {name}", f"and me {name}"] if several else f"stream me {name}"
    resp = invoke(server, name, {"prompt": prompts, "stream": True})
    assert resp.status_code == 200, resp.text
    events = sse_events(resp.text)
    assert all(e["object"] == "text_completion" for e in events)
    texts, finishes = texts_by_choice(events)
    expected = [prompts] if isinstance(prompts, str) else prompts
    assert texts == {i: f"echo: {p}" for i, p in enumerate(expected)}
    assert finishes == dict.fromkeys(range(len(expected)), "stop")
    assert len([e for e in events if len(e["choices"]) > 0]) > 2 * len(expected)  # word by word
    usage = events[-1]["usage"]
    assert events[-1]["choices"] == []
    assert usage["prompt_tokens"] == sum(len(p.split()) + 3 for p in expected)
    assert all(r.query == {"alt": "sse"} for r in sent_with(vertex_fake, name, VERTEX_MODELS))


def test_completion_fields_gemini_lacks_are_a_clear_400(
    server: LiveServer,
    vertex_endpoint: Callable[..., str],
) -> None:
    name = vertex_endpoint(task=COMPLETIONS)
    resp = invoke(server, name, {"prompt": "x", "echo": True, "suffix": "y"})
    assert resp.status_code == 400
    assert resp.json() == {
        "error_code": "BAD_REQUEST",
        "message": "Provider 'google-cloud-vertex-ai' does not support echo, suffix for completions; "
        "remove it from the request.",
    }


@pytest.mark.parametrize(
    ("status", "code", "hint"),
    [
        (429, 429, "Vertex AI quota or rate limit reached"),
        (403, 400, "grant it the Vertex AI User role (roles/aiplatform.user)"),
        (401, 400, "refused the endpoint's service account credentials; check its private_key"),
        (503, 503, None),
    ],
)
def test_gemini_errors_map_by_status_name(
    server: LiveServer,
    vertex_fake: FakeVertexThread,
    vertex_endpoint: Callable[..., str],
    status: int,
    code: int,
    hint: str | None,
) -> None:
    name = vertex_endpoint()
    vertex_fake.fail_next(status)
    resp = invoke(server, name, {"messages": [{"role": "user", "content": "x"}]})
    assert resp.status_code == code
    body = resp.json()
    assert (
        body["error_code"] == {400: "BAD_REQUEST", 429: "REQUEST_LIMIT_EXCEEDED", 503: "TEMPORARILY_UNAVAILABLE"}[code]
    )
    if hint is None:
        assert body["message"] == PROVIDER_MESSAGE
    else:
        assert body["message"].startswith(f"{PROVIDER_MESSAGE}: ") and hint in body["message"]
    assert body["external_model_message"]["code"] == status
    assert body["external_model_message"]["message"] == f"Injected {status} error"
    if code in (429, 503):
        assert resp.headers["retry-after"] == "1"


@pytest.mark.parametrize("task", ["llm/v1/chat", COMPLETIONS])
def test_context_overflow_is_a_400_saying_what_to_do(
    server: LiveServer,
    vertex_endpoint: Callable[..., str],
    task: str,
) -> None:
    name = vertex_endpoint(model="long-context", task=task)
    payload: Any = {"prompt": "x"} if task == COMPLETIONS else {"messages": [{"role": "user", "content": "x"}]}
    resp = invoke(server, name, payload)
    assert resp.status_code == 400
    assert resp.json() == {
        "error_code": "BAD_REQUEST",
        "message": f"{PROVIDER_MESSAGE}: The input is longer than the model's context window; shorten the "
        "messages or the prompt.",
        "external_model_message": {
            "code": 400,
            "message": "The input token count (1048577) exceeds the maximum number of tokens allowed (1048576).",
            "status": "INVALID_ARGUMENT",
        },
    }


@pytest.mark.parametrize(("task", "stream"), [("llm/v1/chat", False), ("llm/v1/chat", True), (COMPLETIONS, True)])
def test_blocked_prompt_is_a_content_filter_400(
    server: LiveServer,
    vertex_endpoint: Callable[..., str],
    task: str,
    stream: bool,
) -> None:
    name = vertex_endpoint(model="blocked-prompt", task=task)
    payload: Any = {"prompt": "x"} if task == COMPLETIONS else {"messages": [{"role": "user", "content": "x"}]}
    resp = invoke(server, name, {**payload, "stream": stream})
    assert resp.status_code == 400
    assert resp.json() == {
        "error_code": "BAD_REQUEST",
        "message": f"{PROVIDER_MESSAGE}: the prompt was blocked by the provider's content filter (SAFETY).",
        "external_model_message": {
            "message": "The prompt was blocked by Gemini's content filter (blockReason SAFETY).",
            "status": "CONTENT_FILTERED",
            "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": SAFETY_RATINGS},
        },
    }


def test_safety_finish_is_content_filter(
    oai: openai.OpenAI,
    vertex_endpoint: Callable[..., str],
) -> None:
    name = vertex_endpoint(model="unsafe-answer")
    answer = oai.chat.completions.create(model=name, messages=[{"role": "user", "content": "tell me how"}])
    assert answer.choices[0].finish_reason == "content_filter"
    assert answer.choices[0].message.content is None
    chunks = list(
        oai.chat.completions.create(model=name, messages=[{"role": "user", "content": "tell me how"}], stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: "
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "content_filter"
    ]


def test_mid_stream_resource_exhausted_is_a_rate_limit_error_event(
    server: LiveServer,
    vertex_endpoint: Callable[..., str],
) -> None:
    name = vertex_endpoint(model="stream-exhausted")
    resp = invoke(server, name, {"messages": [{"role": "user", "content": "a long answer"}], "stream": True})
    assert resp.status_code == 200
    events = sse_events(resp.text)
    assert events[-1]["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert events[-1]["external_model_message"] == {
        "code": 429,
        "message": "Resource exhausted. Please try again later.",
        "status": "RESOURCE_EXHAUSTED",
    }
    assert text_before_error(events) == "echo: "
