"""Provider `amazon-bedrock`: chat through Converse (POST /model/{modelId}/converse), streaming through
ConverseStream (/model/{modelId}/converse-stream, AWS event-stream framing decoded with botocore's own
parser) and embeddings through InvokeModel (/model/{modelId}/invoke).

Config (reference §5.4): aws_region (required), bedrock_provider (anthropic, cohere, ai21labs, amazon, grok;
case-insensitive), aws_access_key_id / aws_secret_access_key (secret references or `_plaintext`) or
instance_profile_arn (no keys: botocore's default credential chain), and the modelgate extensions
aws_session_token (temporary credentials) and bedrock_endpoint_url (default
https://bedrock-runtime.{region}.amazonaws.com) for proxies and tests. Every request is signed with botocore's
SigV4 (service "bedrock", see `bedrock_auth.py`). Translation lives in `bedrock_translate.py`. Converse has no
`n`: n > 1 fans out into n concurrent calls (`fanout.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import orjson
from botocore.eventstream import EventStreamBuffer, EventStreamError
from pydantic import Field, field_validator

from modelgate.errors import ExternalModelError, InvalidParameterValue
from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.embeddings import EmbeddingRequest
from modelgate.providers import bedrock_translate as t
from modelgate.providers.base import Json, Provider, ProviderConfig, ProviderDeps
from modelgate.providers.bedrock_auth import BedrockCredentials, sign
from modelgate.providers.fanout import fanout_stream, merge_choices
from modelgate.providers.http import TRANSPORT_ERRORS
from modelgate.providers.upstream import upstream_error

SecretField = str | dict[str, str] | None
BEDROCK_PROVIDERS = ("anthropic", "cohere", "ai21labs", "amazon", "grok")
# ConverseStream exception events (`:exception-type`) and the HTTP status each stands for.
_STREAM_EXCEPTIONS = {
    "throttlingException": 429,
    "validationException": 400,
    "serviceUnavailableException": 503,
    "internalServerException": 500,
    "modelStreamErrorException": 502,
}


class BedrockConfig(ProviderConfig):
    aws_region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    bedrock_provider: str
    aws_access_key_id: SecretField = None
    aws_access_key_id_plaintext: SecretField = None
    aws_secret_access_key: SecretField = None
    aws_secret_access_key_plaintext: SecretField = None
    # modelgate extension: the session token of temporary credentials (STS), alongside the two keys.
    aws_session_token: SecretField = None
    aws_session_token_plaintext: SecretField = None
    # No keys: credentials come from botocore's default chain on the host (its instance profile included).
    instance_profile_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:iam::\d{12}:[a-z-]+/.+$")
    uc_service_credential_name: str | None = None
    bedrock_endpoint_url: str | None = Field(default=None, pattern=r"^https?://")

    @field_validator("bedrock_provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        value = value.lower()
        if value not in BEDROCK_PROVIDERS:
            raise ValueError(f"must be one of {', '.join(BEDROCK_PROVIDERS)}")
        return value


class BedrockProvider(Provider):
    name = "amazon-bedrock"
    config_key = "amazon_bedrock_config"
    config_model = BedrockConfig
    secret_fields = (("aws_access_key_id", False), ("aws_secret_access_key", False), ("aws_session_token", False))

    def __init__(self, model_name: str, task: str, config: ProviderConfig, deps: ProviderDeps) -> None:
        super().__init__(model_name, task, config, deps)
        assert isinstance(config, BedrockConfig)
        raw = config.model_dump()
        self.region = config.aws_region
        self.bedrock_provider = config.bedrock_provider
        self.credentials = BedrockCredentials(
            self.secret(raw, "aws_access_key_id"),
            self.secret(raw, "aws_secret_access_key"),
            self.secret(raw, "aws_session_token"),
            mask=deps.secrets.mask,
        )
        default = f"https://bedrock-runtime.{self.region}.amazonaws.com"
        self.base = (config.bedrock_endpoint_url or default).rstrip("/")
        self.client = self.upstream_client()

    @classmethod
    def parse_config(cls, raw: Any) -> ProviderConfig:
        config = super().parse_config(raw)
        assert isinstance(config, BedrockConfig)
        where = cls.config_key
        if config.uc_service_credential_name is not None:
            raise InvalidParameterValue(
                f"{where}.uc_service_credential_name (a Unity Catalog service credential) is not supported; give "
                "aws_access_key_id and aws_secret_access_key, or instance_profile_arn to use the host's AWS credentials"
            )
        given = {f for f in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token") if _has(config, f)}
        if given and not {"aws_access_key_id", "aws_secret_access_key"} <= given:
            raise InvalidParameterValue(
                f"{where}: give both aws_access_key_id and aws_secret_access_key (with aws_session_token for "
                "temporary credentials), or neither and instance_profile_arn"
            )
        if given and config.instance_profile_arn is not None:
            raise InvalidParameterValue(f"{where}: give AWS keys or instance_profile_arn, not both")
        if not given and config.instance_profile_arn is None:
            raise InvalidParameterValue(
                f"{where}: give aws_access_key_id and aws_secret_access_key (secret references or _plaintext), "
                "or instance_profile_arn to use the AWS credentials of the host modelgate runs on"
            )
        return config

    def _url(self, action: str) -> str:
        return f"{self.base}/model/{quote(self.model_name, safe=':')}/{action}"

    async def _signed_headers(self, url: str, body: Json, accept: str = "application/json") -> dict[str, str]:
        """SigV4 headers for POSTing `body`; UpstreamClient serializes it to the same bytes (orjson)."""
        return sign(url, orjson.dumps(body), accept, await self.credentials.current(), self.region)

    async def _post(self, action: str, body: Json) -> Json:
        url = self._url(action)
        return await self.client.post_json(url, body, await self._signed_headers(url, body))

    async def chat(self, request: ChatRequest) -> Json:
        body, format_tool = t.converse_body(request, self.bedrock_provider)
        n = request.n or 1
        answers = await asyncio.gather(*(self._post("converse", body) for _ in range(n)))
        responses = [t.chat_response(resp, self.model_name, format_tool) for resp in answers]
        return responses[0] if n == 1 else merge_choices(responses)

    def chat_stream(self, request: ChatRequest) -> AsyncIterator[Json]:
        body, format_tool = t.converse_body(request, self.bedrock_provider)  # a bad request fails before streaming
        n = request.n or 1
        if n == 1:
            return self._one_stream(body, format_tool)
        return fanout_stream(lambda _: self._one_stream(body, format_tool), n)

    async def _one_stream(self, body: Json, format_tool: str | None) -> AsyncIterator[Json]:
        url = self._url("converse-stream")
        headers = await self._signed_headers(url, body, "application/vnd.amazon.eventstream")
        translator = t.StreamTranslator(self.model_name, format_tool)
        async for kind, event in self._events(url, body, headers):
            for chunk in translator.feed(kind, event):
                yield chunk

    async def _events(self, url: str, body: Json, headers: dict[str, str]) -> AsyncIterator[tuple[str, Json]]:
        """(event type, payload) of each event-stream message; exception messages raise."""
        # Retried while opening, like SSE streams.
        resp = await self.client.open(url, body, headers, stream=True)
        buffer = EventStreamBuffer()
        try:
            async with resp:
                async for data in resp.chunks():
                    buffer.add_data(data)
                    for message in buffer:
                        yield self._decode(message.headers, message.payload)
        except TRANSPORT_ERRORS as exc:
            raise self.client.transport_failure(exc) from None
        except EventStreamError:
            raise ExternalModelError(
                self.name, 502, "TEMPORARILY_UNAVAILABLE", "upstream sent a malformed event-stream frame"
            ) from None

    def _decode(self, headers: dict[str, Any], payload: bytes) -> tuple[str, Json]:
        try:
            event = orjson.loads(payload) if payload else {}
        except orjson.JSONDecodeError:
            event = {"message": payload[:2000].decode("utf-8", "replace")}
        if headers.get(":message-type") == "exception":
            status = _STREAM_EXCEPTIONS.get(str(headers.get(":exception-type")), 502)
            raise upstream_error(self.name, status, payload, None, self.client.mask)
        if headers.get(":message-type") == "error":
            message = orjson.dumps({"message": headers.get(":error-message")})
            raise upstream_error(self.name, 502, message, None, self.client.mask)
        return str(headers.get(":event-type")), event if isinstance(event, dict) else {}

    async def embeddings(self, request: EmbeddingRequest) -> Json:
        bodies = t.embed_bodies(request, self.bedrock_provider)
        answers = await asyncio.gather(*(self._post("invoke", body) for body in bodies))
        return t.embed_response(list(answers), request.inputs(), self.model_name)


def _has(config: BedrockConfig, field: str) -> bool:
    return getattr(config, field) is not None or getattr(config, field + "_plaintext") is not None
