"""Provider `google-cloud-vertex-ai`: Gemini through generateContent / streamGenerateContent (chat, and
completions as single-turn chats), text embeddings through :predict, on https://{region}-aiplatform.googleapis.com/v1/projects/{project}/locations/{region}/
publishers/google/models/{model}:{method}.

Config (reference §5.4): project_id, region, private_key (a secret reference) or private_key_plaintext — the
service account's JSON key. modelgate extensions: `vertex_api_base` (replaces the regional host, for proxies
and tests) and `vertex_token_uri` (replaces the key's token_uri). The key is exchanged for an OAuth access
token by google-auth; the token is cached and refreshed in a worker thread, since google-auth is blocking.
Translation lives in `vertex_translate.py` and `vertex_completions.py`; Gemini's errors are mapped by their
status name in `vertex_errors.py`.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import Any

import google.auth.exceptions
import google.auth.transport
from google.oauth2 import service_account
from pydantic import Field

from modelgate.errors import ExternalModelError, InvalidParameterValue
from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.completions import CompletionRequest
from modelgate.protocol.embeddings import EmbeddingRequest
from modelgate.providers import vertex_completions as tc
from modelgate.providers import vertex_translate as t
from modelgate.providers.base import Json, Provider, ProviderConfig, ProviderDeps
from modelgate.providers.fanout import fanout_stream
from modelgate.providers.openai_compat import response_as_chunks
from modelgate.providers.vertex_errors import gemini_error
from modelgate.redaction import SecretMask
from modelgate.secrets import SecretValue

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
SecretField = str | dict[str, str] | None
_TOKEN_TIMEOUT_S = 30.0


class VertexConfig(ProviderConfig):
    project_id: str = Field(min_length=1, pattern=r"^[a-z0-9\-.:]+$")
    region: str = Field(min_length=1, pattern=r"^[a-z0-9\-]+$")
    private_key: SecretField = None
    private_key_plaintext: SecretField = None
    # modelgate extension: base URL instead of https://{region}-aiplatform.googleapis.com (proxies, tests).
    vertex_api_base: str | None = Field(default=None, pattern=r"^https?://")
    # modelgate extension: the OAuth token endpoint instead of the key's own token_uri (tests).
    vertex_token_uri: str | None = Field(default=None, pattern=r"^https?://")


class _Response(google.auth.transport.Response):
    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self._status, self._headers, self._data = status, dict(headers), data

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    @property
    def data(self) -> bytes:
        return self._data


class _UrllibRequest(google.auth.transport.Request):
    """google-auth's HTTP hook over the standard library (the `requests` package is not a dependency).

    The signed JWT it posts to the token endpoint (`assertion`) is a credential for as long as it is valid,
    so it goes in the mask before it leaves: a token endpoint that echoes it in an error is scrubbed."""

    def __init__(self, mask: SecretMask) -> None:
        self.mask = mask

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        if body:
            for assertion in urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("assertion", []):
                self.mask.add(assertion, derived=True)
        req = urllib.request.Request(url, data=body, headers=dict(headers or {}), method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout or _TOKEN_TIMEOUT_S) as resp:
                return _Response(resp.status, dict(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as exc:
            return _Response(exc.code, dict(exc.headers.items()), exc.read())
        except (urllib.error.URLError, OSError) as exc:
            reason = f"token endpoint unreachable: {type(exc).__name__}"
            raise google.auth.exceptions.TransportError(reason) from exc  # type: ignore[no-untyped-call]


class VertexTokenSource:
    """Access tokens for one service-account key: cached, refreshed off the event loop, one refresh at a time.

    The key is read through its SecretValue on every call, so a rotated secret builds new credentials.
    """

    def __init__(self, key: SecretValue, token_uri: str | None, mask: SecretMask | None = None) -> None:
        self.key = key
        self.token_uri = token_uri
        # The key's private key (the whole JSON is masked as its SecretValue resolves; an echo would show the
        # PEM alone) and every access token made from it are credentials: masked wherever an error echoes one.
        self.mask = mask if mask is not None else SecretMask()
        self._raw: str | None = None
        self._creds: service_account.Credentials | None = None
        self._lock = asyncio.Lock()

    def _credentials(self) -> service_account.Credentials:
        raw = self.key.get()
        if self._creds is None or raw != self._raw:
            try:
                info = json.loads(raw)
                if not isinstance(info, dict):
                    raise ValueError("not an object")
                if isinstance(info.get("private_key"), str):
                    self.mask.add(info["private_key"])
                if self.token_uri:
                    info["token_uri"] = self.token_uri
                self._creds = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                    info, scopes=SCOPES
                )
            except (ValueError, KeyError) as exc:
                raise InvalidParameterValue(
                    "google_cloud_vertex_ai_config.private_key must be a service account's JSON key "
                    f"(with client_email, private_key and token_uri): {type(exc).__name__}"
                ) from None
            self._raw = raw
        return self._creds

    async def token(self) -> str:
        async with self._lock:
            creds = self._credentials()
            if not creds.valid:
                try:
                    await asyncio.to_thread(creds.refresh, _UrllibRequest(self.mask))
                except google.auth.exceptions.RefreshError as exc:
                    message = {"message": f"service account token refresh failed: {exc.args[0] if exc.args else ''}"}
                    raise ExternalModelError("google-cloud-vertex-ai", 400, "BAD_REQUEST", message) from None
                except google.auth.exceptions.TransportError as exc:
                    message = {"message": f"service account token refresh failed: {exc}"}
                    raise ExternalModelError(
                        "google-cloud-vertex-ai", 503, "TEMPORARILY_UNAVAILABLE", message, retry_after=1
                    ) from None
                self.mask.add(str(creds.token), derived=True)
            return str(creds.token)


class VertexProvider(Provider):
    name = "google-cloud-vertex-ai"
    config_key = "google_cloud_vertex_ai_config"
    config_model = VertexConfig
    secret_fields = (("private_key", True),)

    def __init__(self, model_name: str, task: str, config: ProviderConfig, deps: ProviderDeps) -> None:
        super().__init__(model_name, task, config, deps)
        assert isinstance(config, VertexConfig)
        key = self.secret(config.model_dump(), "private_key")
        assert key is not None  # required by secret_fields
        self.tokens = VertexTokenSource(key, config.vertex_token_uri, deps.secrets.mask)
        base = (config.vertex_api_base or f"https://{config.region}-aiplatform.googleapis.com").rstrip("/")
        base = base.removesuffix("/v1")
        self.model_url = (
            f"{base}/v1/projects/{config.project_id}/locations/{config.region}/publishers/google/models/{model_name}"
        )
        self.client = self.upstream_client()

    async def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "Authorization": f"Bearer {await self.tokens.token()}"}

    async def _post(self, method: str, body: Json) -> Json:
        try:
            return await self.client.post_json(f"{self.model_url}:{method}", body, await self.headers())
        except ExternalModelError as exc:
            raise gemini_error(exc) from None

    async def _events(self, body: Json) -> AsyncIterator[Json]:
        """streamGenerateContent's SSE events; an error (also one sent mid-stream) mapped by its status."""
        url = f"{self.model_url}:streamGenerateContent?alt=sse"
        try:
            async for event in self.client.stream_sse(url, body, await self.headers()):
                yield event
        except ExternalModelError as exc:
            raise gemini_error(exc) from None

    async def chat(self, request: ChatRequest) -> Json:
        resp = await self._post("generateContent", t.chat_body(request))
        return t.chat_response(resp, self.model_name)

    async def chat_stream(self, request: ChatRequest) -> AsyncIterator[Json]:
        translator = t.StreamTranslator(self.model_name)
        async for event in self._events(t.chat_body(request)):
            whole = event.get("__whole_response__")
            if whole is not None:  # an upstream that answered with one JSON body
                for chunk in response_as_chunks(t.chat_response(whole, self.model_name)):
                    yield chunk
                return
            for chunk in translator.feed(event):
                yield chunk
        for chunk in translator.close():
            yield chunk

    async def completions(self, request: CompletionRequest) -> Json:
        bodies = [tc.completion_body(request, prompt) for prompt in request.prompts()]
        answers = await asyncio.gather(*(self._post("generateContent", body) for body in bodies))
        return tc.completion_response(list(answers), self.model_name, request.n or 1)

    def completions_stream(self, request: CompletionRequest) -> AsyncIterator[Json]:
        bodies = [tc.completion_body(request, prompt) for prompt in request.prompts()]  # bad requests fail here
        n = request.n or 1
        if len(bodies) == 1:
            return self._completion_stream(bodies[0], 0)
        return fanout_stream(lambda i: self._completion_stream(bodies[i], i * n), len(bodies), reindex=False)

    async def _completion_stream(self, body: Json, offset: int) -> AsyncIterator[Json]:
        translator = tc.CompletionStreamTranslator(self.model_name, offset)
        async for event in self._events(body):
            whole = event.get("__whole_response__")
            for chunk in translator.feed(whole if whole is not None else event):
                yield chunk
        for chunk in translator.close():
            yield chunk

    async def embeddings(self, request: EmbeddingRequest) -> Json:
        resp = await self._post("predict", t.embed_body(request))
        return t.embed_response(resp, self.model_name)
