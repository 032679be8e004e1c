"""The per-token cost of streaming from the transformers engine: torch's thread setting, and one wake-up of the
event loop per decoding step for the whole batch."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from modelgate.engines.catalog import ENGINES, parse_entries
from modelgate.engines.row_streamer import Channel, post_step
from modelgate.engines.transformers_chat import TransformersEngine, torch_threads
from modelgate.errors import InvalidParameterValue
from modelgate.protocol.chat import ChatRequest
from tests.engines.conftest import serve_engine

# -- threads -------------------------------------------------------------------------------------------------


def test_thread_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert torch_threads(3, "cpu", 8, cores=16) == 3  # the catalog entry's setting wins
    assert torch_threads(None, "cpu", 16, cores=16) == 15  # all cores but one
    assert torch_threads(None, "cpu", 2, cores=2) == 1
    assert torch_threads(None, "cpu", 1, cores=1) == 1  # at least one
    assert torch_threads(None, "cpu", 4, cores=16) == 4  # a setting the user lowered stays
    assert torch_threads(None, "cuda", 8, cores=16) == 8  # on a GPU torch's own setting
    monkeypatch.setenv("OMP_NUM_THREADS", "6")
    assert torch_threads(None, "cpu", 6, cores=16) == 6  # what OMP_NUM_THREADS asked for
    assert torch_threads(2, "cpu", 6, cores=16) == 2


def test_the_catalog_entry_sets_the_worker_threads(tiny_llama: Path, tmp_path: Path) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            [entry] = parse_entries([{"name": "t", "task": "llm/v1/chat", "engine": "transformers",
                                      "path": str(tiny_llama), "dtype": "float32", "threads": threads}])  # fmt: skip
            engine = ENGINES["transformers"].create(entry, str(tiny_llama), tmp_path)
            assert isinstance(engine, TransformersEngine)
            assert (engine.threads, engine.worker_threads) == (threads, threads)
            assert entry.public(with_command=False)["threads"] == threads
    finally:
        torch.set_num_threads(before)


def test_bad_thread_settings_are_rejected() -> None:
    base = {"name": "t", "task": "llm/v1/chat", "engine": "transformers", "path": "/x"}
    with pytest.raises(InvalidParameterValue, match=r"models\[0\].*threads"):
        parse_entries([{**base, "threads": 0}])
    with pytest.raises(InvalidParameterValue, match=r"models\[0\].*threads"):
        parse_entries([{**base, "threads": "many"}])
    embed = {**base, "task": "llm/v1/embeddings", "engine": "sentence_transformers", "threads": 2}
    with pytest.raises(InvalidParameterValue, match="'threads' is an option of engine 'transformers'"):
        parse_entries([embed])


# -- one wake-up per step ------------------------------------------------------------------------------------


async def test_one_loop_wakeup_per_step_for_the_whole_batch(
    plain_engine: TransformersEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = serve_engine(plain_engine)
    loop = asyncio.get_running_loop()
    calls = 0
    real = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    requests, max_tokens = 4, 16
    before = plain_engine.generate_calls

    async def one(i: int) -> list[dict[str, Any]]:
        body = {"messages": [{"role": "user", "content": f"the cat {i}"}], "max_tokens": max_tokens,
                "temperature": 0, "stream": True}  # fmt: skip
        return [chunk async for chunk in backend.chat_stream(ChatRequest.model_validate(body))]

    streams = await asyncio.gather(*(one(i) for i in range(requests)))
    generates = plain_engine.generate_calls - before
    for chunks in streams:
        assert chunks[-1]["usage"]["completion_tokens"] == max_tokens
        assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]][-1] == "length"
    # Per generate(): a wake-up per step (max_tokens in all, across a pause for newcomers) plus the end.
    # One per request per step would be requests * max_tokens = 64.
    assert generates < requests
    assert calls <= max_tokens + 3 * generates, (calls, generates)


def test_deltas_for_a_closed_loop_are_dropped() -> None:
    """A request whose event loop is gone must not take the model's worker thread down with it."""
    live, closed = asyncio.new_event_loop(), asyncio.new_event_loop()
    closed.close()
    try:
        queues: list[asyncio.Queue[Any]] = [asyncio.Queue(), asyncio.Queue()]
        post_step([(Channel(closed, queues[0]), "lost"), (Channel(live, queues[1]), "kept")])
        live.run_until_complete(asyncio.sleep(0))
        assert (queues[0].qsize(), queues[1].get_nowait()) == (0, "kept")
    finally:
        live.close()
