"""Provider `ai21labs`: AI21 Studio's Jamba chat API (POST {base}/chat/completions), chat only.

AI21's current API has no completions endpoint (Jamba merged completion into chat:
docs.ai21.com/docs/migrating-from-jurassic-to-jamba) and no embeddings endpoint, so those tasks answer a 400
that says what to use instead.

Config (reference §5.4): ai21labs_api_key (a secret reference) or ai21labs_api_key_plaintext, plus the
modelgate extension ai21labs_api_base (default https://api.ai21.com/studio/v1; for proxies and tests).
The API is OpenAI-shaped, so the shared OpenAI-compatible code does the work; fields Jamba does not document
are dropped. Example upstream call (docs.ai21.com/reference/jamba-1-6-api-ref):
    POST https://api.ai21.com/studio/v1/chat/completions  Authorization: Bearer <key>
    {"model": "jamba-large", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 64}
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic import Field

from modelgate.errors import BadRequest
from modelgate.protocol.completions import CompletionRequest
from modelgate.protocol.embeddings import EmbeddingRequest
from modelgate.providers.base import Json, ProviderConfig, ProviderDeps
from modelgate.providers.openai_compat import OpenAICompatibleProvider

AI21_DEFAULT_BASE = "https://api.ai21.com/studio/v1"
SecretField = str | dict[str, str] | None


class AI21LabsConfig(ProviderConfig):
    ai21labs_api_key: SecretField = None
    ai21labs_api_key_plaintext: SecretField = None
    # modelgate extension: the API base (with /studio/v1), for proxies and tests.
    ai21labs_api_base: str | None = Field(default=None, pattern=r"^https?://")


class AI21LabsProvider(OpenAICompatibleProvider):
    name = "ai21labs"
    config_key = "ai21labs_config"
    config_model = AI21LabsConfig
    secret_fields = (("ai21labs_api_key", True),)
    # Jamba documents model, messages, tools, n, max_tokens, temperature, top_p, stop, stream, response_format.
    unsupported_fields = frozenset(
        {
            "top_k",
            "thinking",
            "reasoning_effort",
            "logprobs",
            "top_logprobs",
            "presence_penalty",
            "frequency_penalty",
            "logit_bias",
            "seed",
            "user",
            "metadata",
            "parallel_tool_calls",
        }
    )

    def __init__(self, model_name: str, task: str, config: ProviderConfig, deps: ProviderDeps) -> None:
        super().__init__(model_name, task, config, deps)
        assert isinstance(config, AI21LabsConfig)
        self.api_key = self.secret(config.model_dump(), "ai21labs_api_key")
        self.base = (config.ai21labs_api_base or AI21_DEFAULT_BASE).rstrip("/")

    def url_for(self, route: str) -> str:
        return f"{self.base}/{route}"

    def headers(self) -> dict[str, str]:
        key = self.api_key.get() if self.api_key else ""
        return {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}

    async def completions(self, request: CompletionRequest) -> Json:
        raise BadRequest(_NO_COMPLETIONS)

    def completions_stream(self, request: CompletionRequest) -> AsyncIterator[Json]:
        raise BadRequest(_NO_COMPLETIONS)

    async def embeddings(self, request: EmbeddingRequest) -> Json:
        raise BadRequest(_NO_EMBEDDINGS)


_NO_COMPLETIONS = (
    "Provider 'ai21labs' does not support completions: AI21's Jamba API has only chat. Serve the model with "
    "task llm/v1/chat and send the prompt as a user message."
)
_NO_EMBEDDINGS = (
    "Provider 'ai21labs' does not support embeddings: AI21's API has no embeddings endpoint. Serve embeddings "
    "with another provider (openai, cohere, amazon-bedrock or google-cloud-vertex-ai)."
)
