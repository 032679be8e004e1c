"""Guaranteed structured output on the transformers engine: response_format json_schema and json_object."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from modelgate.engines.token_bytes import TokenByteRules
from modelgate.errors import BadRequest, InvalidParameterValue
from modelgate.protocol.chat import ChatRequest
from tests.engines.conftest import serve_engine
from tests.engines.schema_subset import check

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "color": {"enum": ["red", "green", "blue"]},
        "count": {"type": "integer", "minimum": 1, "maximum": 9},
        "name": {"type": "string", "maxLength": 5},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}, "maxItems": 2},
        "box": {
            "type": "object",
            "properties": {"w": {"type": "integer", "minimum": -3, "maximum": 3}, "ok": {"type": "boolean"}},
            "required": ["w", "ok"],
        },
    },
    "required": ["color", "count", "name", "box"],
}


def chat(**extra: Any) -> ChatRequest:
    return ChatRequest.model_validate({"messages": [{"role": "user", "content": "the cat jumps"}], **extra})


def schema_format(schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "thing", "schema": schema, **extra}}


@pytest.fixture(scope="module")
def backend(plain_engine: Any) -> Any:
    return serve_engine(plain_engine)


@pytest.mark.parametrize("seed", [1, 2])
async def test_sampled_answers_always_follow_the_schema(backend: Any, seed: int) -> None:
    result = await backend.chat(chat(response_format=schema_format(SCHEMA), temperature=1.0, n=5, seed=seed,
                                      max_tokens=160))  # fmt: skip
    assert len(result["choices"]) == 5
    for choice in result["choices"]:
        assert choice["finish_reason"] == "stop", choice
        assert "\ufffd" not in choice["message"]["content"]  # valid UTF-8 all along
        value = json.loads(choice["message"]["content"])
        check(value, SCHEMA)
    assert result["usage"]["completion_tokens"] < 5 * 160


async def test_property_order_and_compact_whitespace(backend: Any) -> None:
    result = await backend.chat(chat(response_format=schema_format(SCHEMA), temperature=0, max_tokens=160))
    text = result["choices"][0]["message"]["content"]
    value = json.loads(text)
    assert list(value)[:3] == ["color", "count", "name"]  # the schema's order, not sorted
    assert text == json.dumps(value, ensure_ascii=False)  # one line, json.dumps spacing, no padding


async def test_json_object_answers_are_objects(backend: Any) -> None:
    result = await backend.chat(chat(response_format={"type": "json_object"}, temperature=1.0, n=4, seed=3,
                                      max_tokens=60))  # fmt: skip
    finished = [c for c in result["choices"] if c["finish_reason"] == "stop"]
    assert finished, result["choices"]
    for choice in finished:
        assert isinstance(json.loads(choice["message"]["content"]), dict)
    for choice in result["choices"]:
        assert choice["message"]["content"].startswith("{")


async def test_too_few_tokens_ends_with_length(backend: Any) -> None:
    result = await backend.chat(chat(response_format=schema_format(SCHEMA), temperature=0, max_tokens=4))
    [choice] = result["choices"]
    assert choice["finish_reason"] == "length"
    assert result["usage"]["completion_tokens"] == 4
    assert choice["message"]["content"].startswith('{"co')
    with pytest.raises(ValueError):
        json.loads(choice["message"]["content"])


async def test_stream_follows_the_schema(backend: Any) -> None:
    request = chat(response_format=schema_format(SCHEMA), temperature=1.0, seed=5, n=2, max_tokens=160, stream=True)
    chunks = [c async for c in backend.chat_stream(request)]
    texts = {0: "", 1: ""}
    reasons: dict[int, str] = {}
    for chunk in chunks[:-1]:
        [choice] = chunk["choices"]
        texts[choice["index"]] += choice["delta"]["content"]
        if choice["finish_reason"]:
            reasons[choice["index"]] = choice["finish_reason"]
    assert reasons == {0: "stop", 1: "stop"}
    for text in texts.values():
        check(json.loads(text), SCHEMA)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize(
    ("response_format", "message"),
    [
        (schema_format({"type": "objec"}), 'Unsupported type "objec"'),
        (schema_format({"type": "integer", "minimum": 5, "maximum": 1}), "minimum greater than maximum"),
        (schema_format({"$ref": "#/$defs/nope"}), "nope"),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, "needs 'schema'"),
        (schema_format({"type": "object", "properties": {"a": {"type": "string"}}}, strict=True),
         "every object needs \"additionalProperties\": false"),
        (schema_format({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False},
                       strict=True), "every property must be required; missing: a"),
        (schema_format({"type": "array"}, strict=True), "root must be"),
    ],
)  # fmt: skip
async def test_bad_schemas_are_400(backend: Any, response_format: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameterValue) as info:
        await backend.chat(chat(response_format=response_format, max_tokens=8))
    assert info.value.status == 400 and info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert message in info.value.message
    assert "/project/" not in info.value.message and ".cc:" not in info.value.message  # no C++ source locations


async def test_strict_schema_is_followed(backend: Any) -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 5}, "b": {"enum": ["x", "y"]}},
        "required": ["a", "b"],
        "additionalProperties": False,
    }
    result = await backend.chat(chat(response_format=schema_format(schema, strict=True), max_tokens=40, seed=9))
    check(json.loads(result["choices"][0]["message"]["content"]), schema)


async def test_requests_with_different_grammars_share_a_batch(backend: Any, plain_engine: Any) -> None:
    """While the worker is busy, queued greedy requests with different schemas (and none) run as one batch."""
    busy = backend.chat_stream(chat(max_tokens=60, temperature=0, seed=1, stream=True))
    await anext(busy)  # the worker is now generating for it (its generate() call is already counted)
    before = plain_engine.generate_calls
    small = {"type": "object", "properties": {"k": {"enum": ["a", "b"]}}, "required": ["k"]}
    requests = [
        chat(response_format=schema_format(SCHEMA), temperature=0, max_tokens=160),
        chat(response_format=schema_format(small), temperature=0, max_tokens=160),
        chat(response_format={"type": "json_object"}, temperature=0, max_tokens=160),
        chat(temperature=0, max_tokens=10),
    ]
    tasks = [asyncio.ensure_future(backend.chat(r)) for r in requests]
    async for _ in busy:
        pass
    results = await asyncio.gather(*tasks)
    assert plain_engine.generate_calls - before == 1  # one generate() for all four
    check(json.loads(results[0]["choices"][0]["message"]["content"]), SCHEMA)
    check(json.loads(results[1]["choices"][0]["message"]["content"]), small)
    assert results[2]["choices"][0]["message"]["content"].startswith("{")
    assert results[3]["choices"][0]["finish_reason"] == "length"
    assert results[3]["usage"]["completion_tokens"] == 10


async def test_text_format_and_completions_are_unconstrained(backend: Any) -> None:
    result = await backend.chat(chat(response_format={"type": "text"}, temperature=0, max_tokens=5))
    assert result["choices"][0]["finish_reason"] == "length"
    with pytest.raises(BadRequest, match="does not support completions"):
        from modelgate.protocol.completions import CompletionRequest

        await backend.completions(CompletionRequest.model_validate({"prompt": "x"}))


def test_byte_rules_mask_what_is_not_valid_json_text() -> None:
    vocab = [b"a", b"\x02", b"\n", b"\xed", b"\xa9\xa1", b"\x9f\x80", b"\xc0", b"\xed\xa0\x80", b"\xe0\x80",
             b"\xff", b""]  # fmt: skip
    rules = TokenByteRules(vocab)
    assert rules.banned == [1, 6, 7, 8, 9]  # a control byte, bytes UTF-8 never has, surrogate / overlong inside
    assert rules.banned_after(b'"\xed') == [4]  # ED A9 would encode a surrogate; ED 9F is fine
    assert rules.banned_after(b'"\xe0') == [5]  # E0 9F would be overlong
    assert rules.banned_after(b'"a') == [] and rules.banned_after(b"") == []
    base, after = rules.keep_masks(1)  # as xgrammar bitmask words: a set bit allows the token
    allowed = [i for i in range(len(vocab)) if int(base[0]) >> i & 1]
    assert allowed == [0, 2, 3, 4, 5, 10]
    assert [i for i in range(len(vocab)) if int(after[0xED][0]) >> i & 1] == [0, 2, 3, 5, 10]


async def test_many_sampled_strings_are_valid_utf8_within_max_length(backend: Any) -> None:
    schema = {"type": "object", "properties": {"s": {"type": "string", "maxLength": 12},
              "t": {"type": "string", "maxLength": 12}}, "required": ["s", "t"]}  # fmt: skip
    for seed in (21, 22):
        result = await backend.chat(chat(response_format=schema_format(schema), n=5, seed=seed, max_tokens=120))
        for choice in result["choices"]:
            text = choice["message"]["content"]
            assert choice["finish_reason"] == "stop" and "\ufffd" not in text, text
            check(json.loads(text), schema)


def test_compiled_grammars_are_cached_per_schema(plain_engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelgate.engines import structured
    from modelgate.engines.engine import Constraint

    monkeypatch.setattr(structured, "GRAMMAR_CACHE_SIZE", 2)
    shared = plain_engine.grammars  # a cache of its own: the engine's may be in use by another test's request
    cache = type(shared)(shared.tokenizer, shared.vocab_size, shared.stop_ids, shared.tool_tags)
    schemas = [Constraint("json_schema", json.dumps({"type": "object", "properties": {f"p{i}": {"type": "integer"}}}))
               for i in range(3)]  # fmt: skip
    first = cache.compiled(schemas[0])
    assert cache.compiled(schemas[0]) is first  # compiled once
    cache.compiled(schemas[1])
    cache.compiled(schemas[2])  # the least recently used one goes
    assert schemas[0] not in cache._compiled and cache.compiled(schemas[0]) is not first
