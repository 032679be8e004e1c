"""A local fake of Azure OpenAI and of Microsoft Entra ID's token endpoint, in place of
<resource>.openai.azure.com and login.microsoftonline.com.

Built from the published references (learn.microsoft.com/azure/ai-services/openai/reference: data-plane
inference; learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow: the client-credentials
grant and its error responses). It checks:

* ``POST /{tenant}/oauth2/v2.0/token``: a form with ``grant_type=client_credentials``, the registered
  ``client_id`` and ``client_secret`` and ``scope=https://cognitiveservices.azure.com/.default``, for the
  registered tenant; answers ``{"token_type": "Bearer", "expires_in", "ext_expires_in", "access_token"}``, or
  Entra's errors (``invalid_client`` AADSTS7000215 for a wrong secret with status 401, ``unauthorized_client``
  AADSTS700016 for an unknown app, ``invalid_scope`` AADSTS70011, ``invalid_request`` AADSTS90002 for an unknown
  tenant, all 400);
* ``POST /openai/deployments/{deployment}/chat/completions|completions|embeddings?api-version=...``: the
  ``api-version`` query parameter, and either ``api-key: <key>`` or ``Authorization: Bearer <a token this fake
  issued and that has not expired>`` (401 otherwise); answers as the fake OpenAI server does for a model named
  after the deployment (Azure takes the model from the deployment, not the body).

``token_lifetime_s`` sets ``expires_in``; every token request is recorded in ``.token_requests`` (the form),
every API request in ``.requests``.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from aiohttp import web

from tests.fakes.openai_upstream import FakeOpenAIUpstream, Handler, RecordedRequest, error_response
from tests.fakes.threaded import ThreadedFake

SCOPE = "https://cognitiveservices.azure.com/.default"
API_VERSION = "2024-10-21"


def _entra_error(status: int, error: str, code: int, description: str) -> web.Response:
    trace = "\r\nTrace ID: 0000aaaa-11bb-cccc-dd22-eeeeee333333\r\nTimestamp: 2026-01-01 00:00:00Z"
    body = {"error": error, "error_description": f"AADSTS{code}: {description}{trace}", "error_codes": [code]}
    return web.json_response(body, status=status)


class FakeAzureOpenAIUpstream(FakeOpenAIUpstream):
    def __init__(self, *, tenant_id: str, client_id: str, client_secret: str, api_key: str) -> None:
        super().__init__(base_path="/openai/deployments/{deployment}")
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.azure_api_key = api_key
        self.token_lifetime_s = 3599
        self.token_requests: list[dict[str, str]] = []
        self.tokens: dict[str, float] = {}  # issued token → when it expires
        self._token_ids = itertools.count(1)

    def make_app(self) -> web.Application:
        app = super().make_app()
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        return app

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append(form)
        if request.match_info["tenant"] != self.tenant_id:
            return _entra_error(400, "invalid_request", 90002, f"Tenant '{request.match_info['tenant']}' not found.")
        if form.get("grant_type") != "client_credentials":
            return _entra_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        if form.get("client_id") != self.client_id:
            return _entra_error(
                400, "unauthorized_client", 700016, f"Application with identifier '{form.get('client_id')}' was not "
                f"found in the directory '{self.tenant_id}'."
            )  # fmt: skip
        if form.get("client_secret") != self.client_secret:
            return _entra_error(
                401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the "
                f"request is the client secret value, not the client secret ID, for a secret added to app "
                f"'{self.client_id}'."
            )  # fmt: skip
        if form.get("scope") != SCOPE:
            return _entra_error(
                400, "invalid_scope", 70011, f"The provided value for scope {form.get('scope')} is not valid."
            )
        token = f"eyJ0eXAiOiJKV1QifQ.fake-entra-{next(self._token_ids)}"
        self.tokens[token] = time.monotonic() + self.token_lifetime_s
        lifetime = self.token_lifetime_s
        return web.json_response(
            {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}
        )

    async def _respond(
        self, request: web.Request, rec: RecordedRequest, body: Any, handler: Handler
    ) -> web.StreamResponse:
        if not request.query.get("api-version"):
            return error_response(404, "Resource not found", code="404", retry_after=None)
        bearer = request.headers.get("Authorization", "")
        token_ok = bearer.startswith("Bearer ") and self.tokens.get(bearer[7:], 0) > time.monotonic()
        if not token_ok and request.headers.get("api-key") != self.azure_api_key:
            return error_response(
                401,
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
                "valid key for an active subscription and use a correct regional API endpoint for your resource.",
                code="401",
                retry_after=None,
            )
        if isinstance(body, dict):  # the recorded body stays as sent
            body = {**body, "model": request.match_info["deployment"]}
        return await super()._respond(request, rec, body, handler)


class FakeAzureOpenAIThread(ThreadedFake):
    """Runs a :class:`FakeAzureOpenAIUpstream` on its own event loop in a daemon thread."""

    def __init__(self, *, tenant_id: str, client_id: str, client_secret: str, api_key: str) -> None:
        server = FakeAzureOpenAIUpstream(
            tenant_id=tenant_id, client_id=client_id, client_secret=client_secret, api_key=api_key
        )
        super().__init__(server, "fake-azure-openai")
        self.server: FakeAzureOpenAIUpstream

    @property
    def token_requests(self) -> list[dict[str, str]]:
        return self.server.token_requests

    def set_token_lifetime(self, seconds: int) -> None:
        self.on_loop(setattr, self.server, "token_lifetime_s", seconds)
