"""OAuth endpoints: discovery, JWKS and the token endpoint (client credentials, HTTP Basic or form auth).

Token errors use the OAuth shape `{"error", "error_description"}` with a JSON Content-Type, which the
Databricks SDK reads (clients.md §0.4); every other route keeps the Databricks error shape.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qs, unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelgate.auth.oauth import OAuthError, OAuthIssuer
from modelgate.routes.common import JSONResponse, services

MAX_FORM_BYTES = 64 * 1024


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _issuer(request: Request) -> OAuthIssuer:
    issuer = services(request).oauth
    assert issuer is not None, "OAuth issuer not started"
    return issuer


async def authorization_server(request: Request) -> Response:
    oidc = _base(request) + "/oidc"
    return JSONResponse(
        {
            "issuer": oidc,
            "authorization_endpoint": oidc + "/v1/authorize",
            "token_endpoint": oidc + "/v1/token",
            "jwks_uri": oidc + "/v1/keys",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "response_types_supported": ["code"],
            "scopes_supported": ["all-apis"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }
    )


async def keys(request: Request) -> Response:
    return JSONResponse(_issuer(request).jwks())


def _oauth_error(exc: OAuthError) -> Response:
    headers = {"Cache-Control": "no-store"}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="modelgate"'
    return JSONResponse({"error": exc.error, "error_description": exc.description}, exc.status, headers=headers)


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "basic":
        raise OAuthError("invalid_client", "Client authentication must use HTTP Basic.", status=401)
    try:
        decoded = base64.b64decode(rest.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "Malformed Basic credentials.", status=401) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "Basic credentials need the form client_id:client_secret.", status=401)
    # RFC 6749 §2.3.1: both parts are form-urlencoded before encoding.
    return unquote(client_id), unquote(secret)


async def _form(request: Request) -> dict[str, str]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "The token request must be application/x-www-form-urlencoded.")
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        raise OAuthError("invalid_request", "The token request is too large.")
    try:
        parsed = parse_qs(raw.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "The token request is not valid UTF-8.") from None
    form: dict[str, str] = {}
    for key, values in parsed.items():
        if len(values) > 1:
            raise OAuthError("invalid_request", f"Parameter '{key}' was given more than once.")
        form[key] = values[0]
    return form


async def token(request: Request) -> Response:
    try:
        form = await _form(request)
        grant = form.get("grant_type")
        if not grant:
            raise OAuthError("invalid_request", "Missing 'grant_type'.")
        if grant != "client_credentials":
            raise OAuthError(
                "unsupported_grant_type", f"Grant type '{grant}' is not supported; use client_credentials."
            )
        creds = _basic_credentials(request.headers.get("authorization"))
        if creds is None:
            client_id, secret = form.get("client_id"), form.get("client_secret")
            if not client_id or not secret:
                raise OAuthError("invalid_client", "Send client credentials with HTTP Basic auth.", status=401)
            creds = (client_id, secret)
        issued = await _issuer(request).client_credentials(
            creds[0], creds[1], form.get("scope"), _base(request) + "/oidc"
        )
    except OAuthError as exc:
        return _oauth_error(exc)
    return JSONResponse(issued.as_json(), headers={"Cache-Control": "no-store"})


routes = [
    Route("/oidc/.well-known/oauth-authorization-server", authorization_server, methods=["GET"]),
    Route("/oidc/v1/keys", keys, methods=["GET"]),
    Route("/oidc/v1/token", token, methods=["POST"]),
]
