"""The engine interface: what a loaded local model offers the backend that serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int


@dataclass
class GenerationParams:
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    seed: int | None = None


@dataclass
class Delta:
    """New text of one output row; `finish_reason` is set on the row's last delta."""

    index: int
    text: str
    finish_reason: str | None = None


@dataclass
class GenerationUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Engine:
    """Base of the engines; each implements the calls of its tasks."""

    async def embed(self, texts: list[str]) -> Embeddings:
        raise NotImplementedError

    def encode_chat(self, messages: list[dict[str, str]]) -> list[int]:
        raise NotImplementedError

    def encode_text(self, text: str) -> list[int]:
        raise NotImplementedError

    def generate(
        self, prompts: list[list[int]], params: GenerationParams, usage: GenerationUsage
    ) -> AsyncIterator[Delta]:
        """Yield deltas for len(prompts) * n rows (row = prompt_index * n + sample); fills `usage` as it goes."""
        raise NotImplementedError
