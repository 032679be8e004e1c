"""dtype "auto" on the transformers engine, and the context limits of prompts and max_tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from modelgate.engines import device
from modelgate.engines.engine import GenerationParams, GenerationUsage
from modelgate.engines.transformers_chat import TransformersEngine
from modelgate.errors import BadRequest

CONTEXT = 256  # the tiny model's max_position_embeddings


def test_auto_dtype_is_bfloat16_only_on_a_cpu_with_native_bfloat16(tiny_llama: Path) -> None:
    where, dtype = device.pick_device_dtype("auto")
    assert where == ("cuda" if torch.cuda.is_available() else "cpu")
    if where == "cpu":
        assert dtype == (torch.bfloat16 if device.cpu_has_fast_bfloat16() else torch.float32)
    engine = TransformersEngine(str(tiny_llama), dtype="auto")
    assert engine.model.dtype == dtype and engine.dtype == str(dtype).removeprefix("torch.")
    assert TransformersEngine(str(tiny_llama), dtype="float32").model.dtype == torch.float32
    assert TransformersEngine(str(tiny_llama), dtype="bfloat16").model.dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("capability", "flags", "fast"),
    [
        ("AVX512", {"avx512f", "avx512_bf16"}, True),
        ("AVX512", {"avx512f", "amx_bf16"}, True),
        ("AVX512", {"avx512f"}, False),  # bfloat16 would be emulated
        ("AVX2", {"avx2", "avx512_bf16"}, False),
        ("DEFAULT", set(), False),
    ],
)
def test_fast_bfloat16_check(monkeypatch: pytest.MonkeyPatch, capability: str, flags: set[str], fast: bool) -> None:
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(device, "_cpu_flags", lambda: flags)
    assert device.cpu_has_fast_bfloat16() is fast


async def run(engine: Any, prompts: list[list[int]], **params: Any) -> tuple[int, list[str | None]]:
    """(completion tokens of all rows, finish_reason of each row)."""
    usage = GenerationUsage()
    reasons: dict[int, str | None] = {}
    async for delta in engine.generate(prompts, GenerationParams(temperature=0, **params), usage):
        reasons[delta.index] = delta.finish_reason
    return usage.completion_tokens, [reasons[i] for i in sorted(reasons)]


@pytest.fixture(scope="module")
def engine(tiny_llama: Path) -> TransformersEngine:
    return TransformersEngine(str(tiny_llama), dtype="float32")


async def test_a_prompt_that_fills_the_context_is_400(engine: TransformersEngine) -> None:
    with pytest.raises(BadRequest) as info:
        await run(engine, [[5] * CONTEXT], max_tokens=4)
    assert info.value.status == 400
    assert info.value.message.startswith(f"The prompt has {CONTEXT} tokens; this model's context is {CONTEXT} tokens")
    tokens, reasons = await run(engine, [[5] * (CONTEXT - 1)], max_tokens=4)
    assert tokens == 1 and reasons == ["length"]  # one token of room


async def test_max_tokens_defaults_to_what_the_context_leaves(engine: TransformersEngine) -> None:
    tokens, reasons = await run(engine, [[5] * (CONTEXT - 6)])  # no max_tokens: 512, capped at 6
    assert tokens == 6 and reasons == ["length"]


async def test_the_longest_prompt_of_a_batch_sets_the_room(engine: TransformersEngine) -> None:
    tokens, reasons = await run(engine, [[5] * 10, [5] * (CONTEXT - 3)], max_tokens=50)
    assert tokens == 2 * 3 and reasons == ["length", "length"]
    with pytest.raises(BadRequest, match=f"The prompt has {CONTEXT + 4} tokens"):
        await run(engine, [[5] * 10, [5] * (CONTEXT + 4)], max_tokens=5)
