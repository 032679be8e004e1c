"""The engine interface: what a loaded local model offers the backend that serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from modelgate.errors import BadRequest


@dataclass
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int


@dataclass(frozen=True)
class Constraint:
    """What decoding must produce, independent of the engine; hashable so compiled grammars can be cached.

    `json_schema`: `spec` is the schema as canonical JSON. `json_object`: any JSON object (`spec` is "").
    `tool_call`: one tool call in the model's tool-call tags; `spec` is canonical JSON of
    [{"name": ..., "parameters": {...}}, ...], the tools the call may name. `answer_or_tool_call`: either an
    answer that follows a schema or such a call; `spec` is {"answer": schema, "tools": [...]}.
    """

    kind: Literal["json_schema", "json_object", "tool_call", "answer_or_tool_call"]
    spec: str = ""


@dataclass
class GenerationParams:
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    seed: int | None = None
    constraint: Constraint | None = None
    # The prompt ends inside the model's reasoning block (see Engine.encode_chat): rows start out thinking.
    thinking: bool = False
    # At most this many reasoning tokens; then the engine closes the reasoning block itself.
    thinking_budget: int | None = None


@dataclass
class Delta:
    """New text of one output row; `finish_reason` is set on the row's last delta.

    `reasoning` carries new text of the row's reasoning block (models with reasoning delimiters only).
    """

    index: int
    text: str
    finish_reason: str | None = None
    reasoning: str = ""


@dataclass
class GenerationUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Engine:
    """Base of the engines; each implements the calls of its tasks."""

    # (open, close) of the model's reasoning block, e.g. ("<think>", "</think>"); None: not a reasoning model.
    reasoning_delimiters: tuple[str, str] | None = None
    # (open, close) around one tool call in the model's output (Hermes / Qwen style by default).
    tool_call_tags: tuple[str, str] = ("<tool_call>", "</tool_call>")

    async def embed(self, texts: list[str]) -> Embeddings:
        raise NotImplementedError

    def encode_chat(
        self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None, thinking: bool = False
    ) -> list[int]:
        """The prompt for `messages` (and `tools`, OpenAI-shaped); with `thinking`, it ends inside the reasoning
        block; a reasoning model asked not to think gets an empty block."""
        raise NotImplementedError

    def encode_text(self, text: str) -> list[int]:
        raise NotImplementedError

    def generate(
        self, prompts: list[list[int]], params: GenerationParams, usage: GenerationUsage
    ) -> AsyncIterator[Delta]:
        """Yield deltas for len(prompts) * n rows (row = prompt_index * n + sample); fills `usage` as it goes."""
        raise NotImplementedError

    def check_constraint(self, constraint: Constraint) -> None:
        """Raise BadRequest when `constraint` cannot be followed (e.g. an invalid schema); engines that support
        constraints override it."""
        raise BadRequest("This model's engine does not support structured outputs or forced tool calls.")
