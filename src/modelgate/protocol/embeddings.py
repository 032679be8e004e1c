"""Embeddings request wire model (reference §4)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from modelgate.protocol.common import GatewayFields

MAX_EMBEDDING_INPUTS = 2048


class EmbeddingRequest(GatewayFields):
    input: str | list[str]
    # Databricks: an instruction prefix some embedding models take (BGE query prefix, for example).
    instruction: str | None = None
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _non_empty(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list):
            if not v:
                raise ValueError("'input' must not be an empty list")
            if len(v) > MAX_EMBEDDING_INPUTS:
                raise ValueError(f"at most {MAX_EMBEDDING_INPUTS} inputs per request, got {len(v)}")
        return v

    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)
