"""Reasoning models on the transformers engine: `<think>` blocks as reasoning content, budgets, on and off."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelgate.engines.transformers_chat import TransformersEngine
from modelgate.errors import BadRequest, InvalidParameterValue
from modelgate.protocol.chat import ChatRequest
from tests.engines.conftest import serve_engine
from tests.engines.schema_subset import check


def chat(messages: list[dict[str, Any]] | None = None, **extra: Any) -> ChatRequest:
    return ChatRequest.model_validate({"messages": messages or [{"role": "user", "content": "the dog runs"}], **extra})


@pytest.fixture(scope="module")
def backend(thinker_engine: Any) -> Any:
    assert thinker_engine.reasoning_delimiters == ("<think>", "</think>")  # found in its chat template
    return serve_engine(thinker_engine, "thinker")


def blocks(choice: dict[str, Any]) -> tuple[str, str]:
    """(reasoning, text) of a message whose content is [reasoning block, text block]."""
    reasoning, text = choice["message"]["content"]
    assert reasoning["type"] == "reasoning" and [s["type"] for s in reasoning["summary"]] == ["summary_text"]
    assert text["type"] == "text"
    return reasoning["summary"][0]["text"], text["text"]


async def test_a_reasoning_model_thinks_by_default(backend: Any) -> None:
    result = await backend.chat(chat(temperature=0, max_tokens=12))
    [choice] = result["choices"]
    reasoning, text = blocks(choice)
    assert reasoning and text == ""  # the random model never closes its block by itself
    assert choice["finish_reason"] == "length"
    assert result["usage"]["completion_tokens"] == 12


async def test_budget_closes_the_reasoning_block(backend: Any, thinker_engine: Any) -> None:
    result = await backend.chat(chat(thinking={"type": "enabled", "budget_tokens": 5}, temperature=0, max_tokens=20))
    [choice] = result["choices"]
    reasoning, text = blocks(choice)
    assert reasoning and text
    assert len(thinker_engine.tokenizer(reasoning, add_special_tokens=False)["input_ids"]) <= 5
    assert "</think>" not in reasoning
    assert result["usage"]["completion_tokens"] == 20
    longer = await backend.chat(chat(thinking={"type": "enabled", "budget_tokens": 12}, temperature=0, max_tokens=20))
    assert len(blocks(longer["choices"][0])[0]) > len(reasoning)


async def test_stream_sends_reasoning_deltas_then_text(backend: Any) -> None:
    body = {"thinking": {"type": "enabled", "budget_tokens": 6}, "temperature": 0, "max_tokens": 16}
    whole = await backend.chat(chat(**body))
    chunks = [c async for c in backend.chat_stream(chat(**body, stream=True))]
    deltas = [c["choices"][0] for c in chunks if c["choices"]]
    assert deltas[0]["delta"]["role"] == "assistant"
    thought, text, seen_text = "", "", False
    for d in deltas:
        content = d["delta"]["content"]
        if isinstance(content, list):
            [part] = content
            assert part["type"] == "reasoning" and not seen_text  # all reasoning comes first
            [item] = part["summary"]
            assert item["type"] == "summary_text"
            thought += item["text"]
        else:
            seen_text = seen_text or bool(content)
            text += content
    assert (thought, text) == blocks(whole["choices"][0])
    assert deltas[-1]["finish_reason"] == "length" and all(d["finish_reason"] is None for d in deltas[:-1])
    assert chunks[-1]["usage"] == whole["usage"]


@pytest.mark.parametrize("off", [{"thinking": {"type": "disabled"}}, {"reasoning_effort": "none"}])
async def test_thinking_off_answers_in_plain_text(backend: Any, off: dict[str, Any]) -> None:
    on = await backend.chat(chat(temperature=0, max_tokens=5))
    result = await backend.chat(chat(temperature=0, max_tokens=5, **off))
    [choice] = result["choices"]
    assert isinstance(choice["message"]["content"], str) and choice["message"]["content"]
    assert result["usage"]["prompt_tokens"] > on["usage"]["prompt_tokens"]  # the prompt ends with an empty block


async def test_reasoning_then_a_schema_answer(backend: Any) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["n"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
    result = await backend.chat(chat(thinking={"type": "enabled", "budget_tokens": 4}, response_format=fmt,
                                     temperature=1.0, n=3, seed=8, max_tokens=60))  # fmt: skip
    for choice in result["choices"]:
        reasoning, text = blocks(choice)
        assert reasoning and choice["finish_reason"] == "stop"
        check(json.loads(text), schema)


async def test_reasoning_then_a_forced_tool_call(backend: Any) -> None:
    tool = {"type": "function", "function": {"name": "pick", "parameters": {
        "type": "object", "properties": {"k": {"enum": ["a", "b"]}}, "required": ["k"]}}}  # fmt: skip
    result = await backend.chat(chat(thinking={"type": "enabled", "budget_tokens": 3}, tools=[tool],
                                     tool_choice="required", seed=3, max_tokens=80))  # fmt: skip
    [choice] = result["choices"]
    assert choice["finish_reason"] == "tool_calls"
    reasoning, text = blocks(choice)
    assert reasoning and text == ""
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) in ({"k": "a"}, {"k": "b"})


async def test_reasoning_in_history_is_accepted(backend: Any) -> None:
    history = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "reasoning", "summary": [{"type": "summary_text", "text": "hm"}]},
                                          {"type": "text", "text": "hello"}]},
        {"role": "user", "content": "the cat"},
    ]  # fmt: skip
    result = await backend.chat(chat(history, temperature=0, max_tokens=3))
    assert result["choices"][0]["finish_reason"] == "length"


async def test_thinking_on_a_model_that_does_not_reason_is_400(plain_engine: Any) -> None:
    backend = serve_engine(plain_engine)
    with pytest.raises(BadRequest, match="is not a reasoning model; remove 'thinking'"):
        await backend.chat(chat(thinking={"type": "enabled", "budget_tokens": 4}, max_tokens=8))
    with pytest.raises(BadRequest, match="remove 'reasoning_effort'"):
        await backend.chat(chat(reasoning_effort="low"))
    result = await backend.chat(chat(reasoning_effort="none", temperature=0, max_tokens=2))
    assert isinstance(result["choices"][0]["message"]["content"], str)


def test_reasoning_delimiters_can_be_set_or_turned_off(tiny_thinker: Path) -> None:
    off = TransformersEngine(str(tiny_thinker), reasoning_delimiters=None)
    assert off.reasoning_delimiters is None
    custom = TransformersEngine(str(tiny_thinker), reasoning_delimiters=("<reason>", "</reason>"))
    prompt = custom.tokenizer.decode(custom.encode_chat([{"role": "user", "content": "x"}], thinking=True))
    assert prompt.endswith("<reason>\n")


def test_catalog_entry_sets_the_reasoning_delimiters(tiny_thinker: Path, tmp_path: Path) -> None:
    from modelgate.engines.catalog import ENGINES, parse_entries

    base = {"name": "t", "task": "llm/v1/chat", "engine": "transformers", "path": str(tiny_thinker)}
    custom, off, auto = parse_entries(
        [{**base, "reasoning": ["<reason>", "</reason>"]}, {**base, "reasoning": "none"}, base]
    )
    create = ENGINES["transformers"].create
    assert create(custom, str(tiny_thinker), tmp_path).reasoning_delimiters == ("<reason>", "</reason>")  # type: ignore[attr-defined]
    assert create(off, str(tiny_thinker), tmp_path).reasoning_delimiters is None  # type: ignore[attr-defined]
    assert create(auto, str(tiny_thinker), tmp_path).reasoning_delimiters == ("<think>", "</think>")  # type: ignore[attr-defined]
    with pytest.raises(InvalidParameterValue, match="reasoning"):
        parse_entries([{**base, "reasoning": ["<only-one>"]}])
