"""Assertions and small helpers the control-plane, auth and bad-input tests share."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tests.support.live import LiveServer

API = "/api/2.0/serving-endpoints"
PERMS = "/api/2.0/permissions/serving-endpoints"


def unique_name(prefix: str) -> str:
    """An endpoint name no other test on the shared servers uses."""
    return f"{prefix}-{secrets.token_hex(4)}"


def assert_error(resp: httpx.Response, status: int, error_code: str | None = None, *, contains: str = "") -> str:
    """The response is a Databricks error: this status, a JSON body with error_code and message, no trace."""
    assert resp.status_code == status, f"{resp.status_code} != {status}: {resp.text[:500]}"
    assert resp.headers["content-type"].startswith("application/json"), resp.headers["content-type"]
    assert "Traceback" not in resp.text
    body = resp.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("error_code"), str) and body["error_code"], body
    assert isinstance(body.get("message"), str) and body["message"], body
    assert "error" not in body, "a top-level 'error' key makes the Databricks SDK use it as the message"
    if error_code is not None:
        assert body["error_code"] == error_code, body
    if contains:
        assert contains in body["message"], body
    message: str = body["message"]
    return message


def chat_body(text: str = "hello") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


class UserTokens:
    """Tokens for non-admin users, made once per (server, user) with the CLI (a subprocess each)."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], str] = {}

    def get(self, server: LiveServer, user: str) -> str:
        key = (server.url, user)
        if key not in self._tokens:
            self._tokens[key] = server.create_token(user)
        return self._tokens[key]
