"""Microsoft Entra ID access tokens for Azure OpenAI (`openai_api_type: azuread`).

The OAuth2 client-credentials grant (RFC 6749 §4.4, learn.microsoft.com/entra/identity-platform/
v2-oauth2-client-creds-grant-flow): one form POST of client id, client secret and the scope
`https://cognitiveservices.azure.com/.default` to `{authority}/{tenant}/oauth2/v2.0/token`, answered with
`{"token_type": "Bearer", "expires_in": 3599, "access_token": "..."}`. The token is cached until shortly before
it expires and sent as `Authorization: Bearer`.

Written here on the shared upstream HTTP client rather than with msal or azure-identity: both refuse an authority
that is not https (msal `authority.py`, azure-identity `normalize_authority`), so pointing them at a local
fake token endpoint would need TLS and a test CA trusted by the server process, and msal is blocking
(`requests`). The flow itself is a single POST.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import orjson

from modelgate.errors import DeadlineExceeded, ExternalModelError, TemporarilyUnavailable
from modelgate.providers.http import TRANSPORT_ERRORS, HttpClient, post_form
from modelgate.redaction import SecretMask
from modelgate.secrets import SecretValue

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
PROVIDER = "openai"
# Refresh this long before the token's expiry (Entra tokens live 60-90 minutes).
_EARLY_REFRESH_S = 300.0
_TIMEOUT_S = 30.0


class EntraTokenSource:
    """Access tokens for one app registration: cached per client secret, one refresh at a time."""

    def __init__(
        self,
        http: HttpClient,
        tenant_id: str,
        client_id: str,
        client_secret: SecretValue,
        authority_host: str = DEFAULT_AUTHORITY_HOST,
        mask: SecretMask | None = None,
    ) -> None:
        self.http = http
        # The access tokens are credentials modelgate sends upstream: masked wherever an error echoes one.
        self.mask = mask if mask is not None else SecretMask()
        self.client_id = client_id
        self.client_secret = client_secret
        self.url = f"{authority_host.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"
        self._token: str | None = None
        self._expires_at = 0.0
        self._secret_digest = b""
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        async with self._lock:
            secret = self.client_secret.get()
            digest = hashlib.sha256(secret.encode()).digest()  # a rotated secret invalidates the cached token
            if self._token is None or digest != self._secret_digest or time.monotonic() >= self._expires_at:
                self._token, lifetime = await self._request(secret)
                self.mask.add(self._token, derived=True)
                self._secret_digest = digest
                self._expires_at = time.monotonic() + max(0.0, lifetime - min(_EARLY_REFRESH_S, lifetime / 2))
            return self._token

    async def _request(self, secret: str) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": secret,
            "scope": COGNITIVE_SERVICES_SCOPE,
        }
        try:
            status, raw = await post_form(self.http, self.url, form, _TIMEOUT_S)
        except TimeoutError:
            raise DeadlineExceeded("The Microsoft Entra ID token endpoint did not answer in time.") from None
        except TRANSPORT_ERRORS as exc:
            raise TemporarilyUnavailable(
                f"The Microsoft Entra ID token endpoint could not be reached ({type(exc).__name__}).", retry_after=1
            ) from None
        body = _json(raw, self.mask)
        token = body.get("access_token")
        if status == 200 and isinstance(token, str) and token:
            return token, _seconds(body.get("expires_in"))
        raise _token_error(status, body)


def _json(raw: bytes, mask: SecretMask) -> dict[str, Any]:
    try:
        parsed = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:  # cut after scrubbing: an echoed client secret must not leave a part behind
        return {"error_description": mask.clip(raw.decode("utf-8", "replace"), 500)}
    return parsed if isinstance(parsed, dict) else {}


def _seconds(value: Any) -> float:
    """`expires_in`: a number (v2.0 endpoint) or a numeric string (v1.0); an hour if missing or odd."""
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 3600.0


def _token_error(status: int, body: dict[str, Any]) -> ExternalModelError:
    """Entra's `{"error": "invalid_client", "error_description": "AADSTS7000215: ..."}` as our error. A bad
    secret or client id is the endpoint's misconfiguration (400); Entra's own trouble (429, 5xx) keeps its status."""
    error = str(body.get("error") or f"HTTP {status}")
    description = str(body.get("error_description") or "").split("\r\n")[0]
    message = {"message": f"Microsoft Entra ID token request failed: {error}: {description}".rstrip(": ")}
    if status == 429 or status >= 500:
        code = "REQUEST_LIMIT_EXCEEDED" if status == 429 else "TEMPORARILY_UNAVAILABLE"
        return ExternalModelError(PROVIDER, 429 if status == 429 else 503, code, message, retry_after=1)
    return ExternalModelError(PROVIDER, 400, "BAD_REQUEST", message)
