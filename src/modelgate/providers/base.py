"""The provider interface: what a served entity needs from whatever answers its queries.

A provider is built once per served entity from its validated config. It takes our wire models and
returns OpenAI-shaped dicts (the unified format every route renders); streams yield OpenAI chunk dicts.
Calls a provider does not support fail with a clear 400 by default.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from modelgate.errors import BadRequest, InvalidParameterValue
from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.common import describe_validation_error
from modelgate.protocol.completions import CompletionRequest
from modelgate.protocol.embeddings import EmbeddingRequest
from modelgate.providers.http import HttpClient
from modelgate.providers.upstream import DEFAULT_RETRY_BUDGET_S, UpstreamClient
from modelgate.secrets import SecretResolver, SecretValue

Json = dict[str, Any]


def chat_chunk(meta: Json, delta: Json, finish: str | None = None, index: int = 0) -> Json:
    """One OpenAI `chat.completion.chunk` with a single choice; `meta` holds id, created and model."""
    return {
        **meta,
        "object": "chat.completion.chunk",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }


class ProviderConfig(BaseModel):
    """Base of `<provider>_config` models. Unknown keys are rejected so typos surface at create time."""

    model_config = ConfigDict(extra="forbid")
    # modelgate extension `retry_budget_s`, accepted in every `<provider>_config`: how long transient
    # upstream failures are retried for this endpoint (0 turns retries off). Set by `Provider.parse_config`.
    _retry_budget_s: float | None = PrivateAttr(default=None)


@dataclass
class ProviderDeps:
    """What the app lends every provider: the pooled HTTP client and the secret resolver."""

    http: HttpClient
    secrets: SecretResolver
    # Server default for retrying transient upstream failures; an endpoint's `retry_budget_s` overrides it.
    retry_budget_s: float = DEFAULT_RETRY_BUDGET_S


class Provider:
    name: ClassVar[str]
    config_key: ClassVar[str]
    config_model: ClassVar[type[ProviderConfig]]
    # Secret fields: (field, its _plaintext twin). Exactly one of each pair must be given, unless optional.
    secret_fields: ClassVar[tuple[tuple[str, bool], ...]] = ()  # (field, required)

    def __init__(self, model_name: str, task: str, config: ProviderConfig, deps: ProviderDeps) -> None:
        self.model_name = model_name
        self.task = task
        self.config = config
        self.deps = deps

    # -- config --------------------------------------------------------------------------------
    @classmethod
    def parse_config(cls, raw: Any) -> ProviderConfig:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise InvalidParameterValue(f"'{cls.config_key}' must be an object")
        fields = {k: v for k, v in raw.items() if k != RETRY_BUDGET_FIELD}
        try:
            config = cls.config_model.model_validate(fields)
        except ValidationError as exc:
            raise InvalidParameterValue(
                f"Invalid '{cls.config_key}' for provider '{cls.name}': {describe_validation_error(exc)}"
            ) from None
        config._retry_budget_s = _retry_budget(raw.get(RETRY_BUDGET_FIELD), cls.config_key)
        for field, required in cls.secret_fields:
            check_secret_pair(raw, field, cls.config_key, deps_required=required)
        return config

    def secret(self, raw_config: Json, field: str) -> SecretValue | None:
        """The secret in `field` or its `_plaintext` twin, as a lazily resolved value."""
        value = raw_config.get(field)
        if value is None:
            value = raw_config.get(field + "_plaintext")
        if value is None:
            return None
        return SecretValue(value, f"{self.config_key}.{field}", self.deps.secrets)

    def upstream_client(self) -> UpstreamClient:
        """The HTTP client for this provider's upstream, with this endpoint's retry budget."""
        budget = self.config._retry_budget_s
        return UpstreamClient(
            self.deps.http,
            self.name,
            retry_budget_s=self.deps.retry_budget_s if budget is None else budget,
            mask=self.deps.secrets.mask,
        )

    # -- calls -----------------------------------------------------------------------------------
    async def chat(self, request: ChatRequest) -> Json:
        raise self._unsupported("chat")

    def chat_stream(self, request: ChatRequest) -> AsyncIterator[Json]:
        raise self._unsupported("streaming chat")

    async def completions(self, request: CompletionRequest) -> Json:
        raise self._unsupported("completions")

    def completions_stream(self, request: CompletionRequest) -> AsyncIterator[Json]:
        raise self._unsupported("streaming completions")

    async def embeddings(self, request: EmbeddingRequest) -> Json:
        raise self._unsupported("embeddings")

    async def aclose(self) -> None:
        """Release anything the provider holds beyond the shared HTTP session."""

    def _unsupported(self, what: str) -> BadRequest:
        return BadRequest(f"Provider '{self.name}' does not support {what}.")


RETRY_BUDGET_FIELD = "retry_budget_s"
_MAX_RETRY_BUDGET_S = 600.0


def _retry_budget(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= _MAX_RETRY_BUDGET_S:
        raise InvalidParameterValue(
            f"{where}.{RETRY_BUDGET_FIELD} must be a number of seconds from 0 to {_MAX_RETRY_BUDGET_S:g}"
        )
    return float(value)


def check_secret_pair(raw: Json, field: str, where: str, *, deps_required: bool) -> None:
    """Exactly one of `field` (a reference) and `field_plaintext` (a literal) may be given."""
    ref, plain = raw.get(field), raw.get(field + "_plaintext")
    if ref is not None and plain is not None:
        raise InvalidParameterValue(f"{where}: give '{field}' or '{field}_plaintext', not both")
    if deps_required and ref is None and plain is None:
        raise InvalidParameterValue(
            f"{where}: '{field}' (a secret reference like '{{{{secrets/scope/key}}}}') or "
            f"'{field}_plaintext' is required"
        )
    if ref is not None and not (isinstance(ref, str) and ref.startswith("{{") and ref.endswith("}}")):
        raise InvalidParameterValue(
            f"{where}.{field} must be a secret reference like '{{{{secrets/scope/key}}}}'; to give the "
            f"value itself use '{field}_plaintext'"
        )
