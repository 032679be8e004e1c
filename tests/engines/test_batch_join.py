"""Requests that arrive while the transformers engine is generating join the running batch at the next token.

Without this a burst of concurrent requests ran as one request alone followed by the rest, because the first
one reached the worker a moment before the others (bench/local_tokens_bench.py measured half the throughput
of a plain batched generate() at 8 concurrent requests).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modelgate.protocol.chat import ChatRequest
from tests.engines.conftest import serve_engine

LONG = 300  # tokens of the request already running; the tiny model's context here is 2048
LONG_PROMPT, SHORT_PROMPT = "the cat jumps", "a dog runs over the hill"


def chat(content: str, **extra: Any) -> ChatRequest:
    return ChatRequest.model_validate({"messages": [{"role": "user", "content": content}], **extra})


@pytest.fixture(scope="module")
def backend(plain_engine: Any) -> Any:
    return serve_engine(plain_engine, "joiner")


@pytest.fixture
def batches(plain_engine: Any, monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The jobs (numbered 1, 2, ... as they first appear) in each generate() call the engine makes from now on."""
    seen: list[list[int]] = []
    known: list[Any] = []  # kept alive, so no later job gets the id of an earlier one
    run = plain_engine._batcher.run

    def recording(jobs: list[Any]) -> None:
        known.extend(job for job in jobs if all(job is not k for k in known))
        seen.append([next(i for i, k in enumerate(known, 1) if k is job) for job in jobs])
        run(jobs)

    monkeypatch.setattr(plain_engine._batcher, "run", recording)
    return seen


async def _while_streaming(backend: Any, newcomer: ChatRequest) -> tuple[str, dict[str, Any], Any]:
    """Stream a long greedy request, send `newcomer` once it is generating: (long text, its usage, the answer)."""
    stream = backend.chat_stream(chat(LONG_PROMPT, max_tokens=LONG, temperature=0, stream=True))
    chunks = [await anext(stream)]  # the worker is generating for it now
    task = asyncio.ensure_future(backend.chat(newcomer))
    chunks += [chunk async for chunk in stream]
    answer = await task
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    return text, chunks[-1]["usage"], answer


async def test_a_request_joins_the_batch_that_is_running(backend: Any, batches: list[list[int]]) -> None:
    alone_long = await backend.chat(chat(LONG_PROMPT, max_tokens=LONG, temperature=0))
    alone_short = await backend.chat(chat(SHORT_PROMPT, max_tokens=6, temperature=0))
    text, usage, short = await _while_streaming(backend, chat(SHORT_PROMPT, max_tokens=6, temperature=0))
    assert batches == [[1], [2], [3], [3, 4]]  # alone, alone, then the newcomer joined the running batch
    assert usage["completion_tokens"] == LONG
    assert text == alone_long["choices"][0]["message"]["content"]  # greedy output continues unchanged
    assert short["usage"] == alone_short["usage"]
    assert short["choices"][0]["finish_reason"] == "length"
    assert short["choices"][0]["message"]["content"] == alone_short["choices"][0]["message"]["content"]


async def test_a_seeded_request_waits_for_its_own_generate(backend: Any, batches: list[list[int]]) -> None:
    """A seed must hold for the whole answer, so a seeded request runs alone, after the batch in front of it."""
    _, usage, short = await _while_streaming(backend, chat(SHORT_PROMPT, max_tokens=4, temperature=0.7, seed=5))
    assert batches == [[1], [2]]
    assert usage["completion_tokens"] == LONG and short["usage"]["completion_tokens"] == 4
