"""Provider `palm`: Google retired the PaLM API, so its endpoints are accepted but cannot answer.

The config (palm_config: palm_api_key / palm_api_key_plaintext) is validated and stored so existing
Databricks endpoint definitions still load; every query gets a 400 naming the replacement.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from modelgate.errors import BadRequest
from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.completions import CompletionRequest
from modelgate.protocol.embeddings import EmbeddingRequest
from modelgate.providers.base import Json, Provider, ProviderConfig

SecretField = str | dict[str, str] | None
RETIRED_MESSAGE = (
    "Provider 'palm' is retired: Google shut down the PaLM API. Serve Gemini through provider "
    "'google-cloud-vertex-ai' (google_cloud_vertex_ai_config with project_id, region and private_key) instead."
)


class PalmConfig(ProviderConfig):
    palm_api_key: SecretField = None
    palm_api_key_plaintext: SecretField = None


class PalmProvider(Provider):
    name = "palm"
    config_key = "palm_config"
    config_model = PalmConfig
    secret_fields = (("palm_api_key", True),)

    async def chat(self, request: ChatRequest) -> Json:
        raise BadRequest(RETIRED_MESSAGE)

    def chat_stream(self, request: ChatRequest) -> AsyncIterator[Json]:
        raise BadRequest(RETIRED_MESSAGE)

    async def completions(self, request: CompletionRequest) -> Json:
        raise BadRequest(RETIRED_MESSAGE)

    def completions_stream(self, request: CompletionRequest) -> AsyncIterator[Json]:
        raise BadRequest(RETIRED_MESSAGE)

    async def embeddings(self, request: EmbeddingRequest) -> Json:
        raise BadRequest(RETIRED_MESSAGE)
