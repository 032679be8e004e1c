"""An upstream that echoes the credentials it received gets none of them to the caller, the log or the store.

Every provider's way of sending a key (OpenAI's Bearer, Azure's api-key, Anthropic's x-api-key, a custom
provider's own header or bearer token), each kind of secret value (`*_plaintext`, a secrets-API string and
bytes value, an environment reference), on every query route: the invocations route (plain, streamed with
the error before the stream, streamed with the error after it began, the served-model route) and the
OpenAI routes (chat, completions, embeddings).
"""

from __future__ import annotations

import base64
import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import ENV_SECRET_NAME, ENV_SECRET_VALUE
from tests.fakes.echo_upstream import MIDSTREAM, EchoUpstreamThread
from tests.serving.support import endpoint_name, sse_events
from tests.support.live import LiveServer

MASK = "[REDACTED]"
CHAT, COMPLETIONS, EMBEDDINGS = "llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings"
KINDS = ("plaintext", "string_value", "bytes_value", "env")
AUTHS = ("openai", "azure", "anthropic", "custom_header", "custom_bearer")
Json = dict[str, Any]


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoUpstreamThread]:
    with EchoUpstreamThread() as fake:
        yield fake


def _secret(field_name: str, kind: str, value: str, scope: str, key: str) -> Json:
    """The config fields that give `value` as this kind of secret."""
    if kind == "plaintext":
        return {field_name + "_plaintext": value}
    if kind == "env":
        return {field_name: "{{env/" + ENV_SECRET_NAME + "}}"}
    return {field_name: "{{secrets/" + scope + "/" + key + "}}"}


def _entity(auth: str, task: str, base: str, secret: Any) -> Json:
    """A served entity named `e` on the echoing fake, sending its key the way `auth` says."""
    if auth in ("openai", "azure"):
        config: Json = {"openai_api_base": base + "/v1", **secret("openai_api_key")}
        if auth == "azure":
            config |= {"openai_api_type": "azure", "openai_api_base": base, "openai_api_version": "2024-02-01"}
        provider = {"provider": "openai", "openai_config": config}
    elif auth == "anthropic":
        provider = {
            "provider": "anthropic",
            "anthropic_config": {"anthropic_api_base": base, **secret("anthropic_api_key")},
        }
    else:
        auth_config = (
            {"api_key_auth": {"key": "X-Proxy-Key", **secret("value")}}
            if auth == "custom_header"
            else {"bearer_token_auth": secret("token")}
        )
        provider = {"provider": "custom", "custom_provider_config": {"custom_provider_url": base, **auth_config}}
    return {"name": "e", "external_model": {"name": "m", "task": task, **provider}}


@dataclass
class Scan:
    """Everything the server said, to be searched for secrets at the end."""

    texts: list[str] = field(default_factory=list)
    answers: int = 0  # error answers to queries
    masked: int = 0  # those that show the mask: the echo did come back, scrubbed

    def refused(self, resp: httpx.Response) -> None:
        """An error before any answer: a JSON error body (the upstream's 401 is the endpoint's 400)."""
        self.texts.append(resp.text + str(resp.headers))
        self.answers += 1
        assert resp.status_code == 400, resp.text
        assert resp.headers["content-type"] == "application/json"
        assert resp.json()["external_model_message"], resp.text
        self.masked += MASK in resp.text

    def broke_off(self, resp: httpx.Response) -> None:
        """A stream that began, then ended with an error event."""
        self.texts.append(resp.text + str(resp.headers))
        self.answers += 1
        assert resp.status_code == 200, resp.text
        *chunks, error = sse_events(resp.text)
        assert chunks and all(c.get("choices") for c in chunks), resp.text
        assert error["error_code"] and error["error"]["message"] and error["external_model_message"], error
        self.masked += MASK in resp.text


def _query(c: httpx.Client, scan: Scan, name: str, task: str) -> int:
    """Every route for an endpoint serving `task`; returns how many queries were made."""
    if task == EMBEDDINGS:
        scan.refused(c.post(f"/serving-endpoints/{name}/invocations", json={"input": ["x"]}))
        scan.refused(c.post("/serving-endpoints/embeddings", json={"model": name, "input": "x"}))
        return 2
    field_name, route = ("messages", "chat/completions") if task == CHAT else ("prompt", "completions")

    def body(text: str, **extra: Any) -> Json:
        return {field_name: [{"role": "user", "content": text}] if task == CHAT else text, **extra}

    invocations = f"/serving-endpoints/{name}/invocations"
    scan.refused(c.post(invocations, json=body("hi")))
    scan.refused(c.post(invocations, json=body("hi", stream=True)))
    scan.broke_off(c.post(invocations, json=body(MIDSTREAM, stream=True)))
    scan.refused(c.post(f"/serving-endpoints/{name}/served-models/e/invocations", json=body("hi")))
    scan.refused(c.post(f"/serving-endpoints/{route}", json={"model": name, **body("hi")}))
    scan.broke_off(c.post(f"/serving-endpoints/{route}", json={"model": name, **body(MIDSTREAM, stream=True)}))
    return 6


def _query_every_way(live: LiveServer, echo: EchoUpstreamThread, tag: str) -> tuple[Scan, list[str], dict[str, int]]:
    """Endpoints for every auth and kind of secret, queried on every route; (scan, secrets, queries per
    endpoint that records usage)."""
    scope = f"echo-{tag}"
    values = {
        "string_value": f"str-{secrets.token_hex(12)}",
        "bytes_value": f"bytes-{secrets.token_hex(12)}",
        "env": ENV_SECRET_VALUE,
    }
    scan, plaintexts, recorded = Scan(), [], {}
    with live.client() as c:
        assert c.post("/api/2.0/secrets/scopes/create", json={"scope": scope}).status_code == 200
        for key in ("string_value", "bytes_value"):
            value = values[key]
            given = value if key == "string_value" else base64.b64encode(value.encode()).decode()
            resp = c.post("/api/2.0/secrets/put", json={"scope": scope, "key": key, key: given})
            assert resp.status_code == 200, resp.text
        # Chat on every auth x kind; completions and embeddings (no Anthropic) with the kinds taken in turn.
        plan = [(auth, kind, CHAT) for auth in AUTHS for kind in KINDS]
        others = [a for a in AUTHS if a != "anthropic"]
        plan += [(a, KINDS[i % 4], COMPLETIONS) for i, a in enumerate(others)]
        plan += [(a, KINDS[(i + 1) % 4], EMBEDDINGS) for i, a in enumerate(others)]
        for auth, kind, task in plan:
            name = f"{tag}-{auth}-{kind}-{task.rsplit('/', 1)[1]}".replace("_", "-")
            value = values.get(kind) or f"plain-{secrets.token_hex(12)}"
            if kind == "plaintext":
                plaintexts.append(value)

            def secret(field_name: str, kind: str = kind, value: str = value) -> Json:
                return _secret(field_name, kind, value, scope, kind)

            body: Json = {"name": name, "config": {"served_entities": [_entity(auth, task, echo.url, secret)]}}
            if kind == "plaintext" and task == CHAT:  # usage rows and an inference table for these
                body["ai_gateway"] = {
                    "usage_tracking_config": {"enabled": True},
                    "inference_table_config": {"catalog_name": "main", "schema_name": "echo", "enabled": True},
                }
            created = c.post("/api/2.0/serving-endpoints", json=body)
            assert created.status_code == 200, created.text
            scan.texts.append(created.text)
            made = _query(c, scan, name, task)
            if "ai_gateway" in body:
                recorded[name] = made
    every = [*values.values(), *plaintexts]
    # The fake got each secret in its header (so the echoes held them), and each echo came back masked.
    sent = str([r.headers for r in echo.requests])
    assert [v for v in every if v not in sent] == []
    return scan, every, recorded


def _leaks(texts: list[str], values: list[str]) -> list[str]:
    return [v for v in values if any(v in t for t in texts)]


def _wait_usage(rows: Any, recorded: dict[str, int]) -> None:
    """Until the writer stored a usage row for every query of the recording endpoints."""
    names = ", ".join(f"'{n}'" for n in recorded)
    deadline = time.monotonic() + 15
    while len(rows(f"SELECT * FROM endpoint_usage WHERE endpoint_name IN ({names})")) < sum(recorded.values()):
        assert time.monotonic() < deadline, "usage rows were not written"
        time.sleep(0.1)


def test_echoed_secrets_on_sqlite(server: LiveServer, echo: EchoUpstreamThread, request: pytest.FixtureRequest) -> None:
    tag = endpoint_name(request.node.nodeid, "lite")
    scan, values, recorded = _query_every_way(server, echo, tag)
    assert _leaks(scan.texts, values) == []
    assert scan.masked == scan.answers
    assert _leaks([server.log()], values) == []

    db = server.data_dir / "modelgate.db"

    def rows(sql: str) -> list[Any]:
        con = sqlite3.connect(db)
        try:
            return list(con.execute(sql))
        finally:
            con.close()

    _wait_usage(rows, recorded)
    tables = [r[0] for r in rows("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert any(t.endswith("_payload") and t.startswith("main.echo.") for t in tables), tables
    stored = [str(row) for t in tables for row in rows(f'SELECT * FROM "{t}"')]
    assert any(tag in row for row in stored)  # the rows of these queries are among those searched
    assert _leaks(stored, values) == []


@pytest.mark.postgres
def test_echoed_secrets_on_postgres(
    pg_server: LiveServer, pg_url: str, echo: EchoUpstreamThread, request: pytest.FixtureRequest
) -> None:
    tag = endpoint_name(request.node.nodeid, "pg")
    scan, values, recorded = _query_every_way(pg_server, echo, tag)
    assert _leaks(scan.texts, values) == []
    assert scan.masked == scan.answers
    assert _leaks([pg_server.log()], values) == []

    def rows(sql: str) -> list[Any]:
        with psycopg.connect(pg_url) as conn:
            return list(conn.execute(sql).fetchall())

    _wait_usage(rows, recorded)
    tables = [r[0] for r in rows("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    assert any(t.endswith("_payload") and t.startswith("main.echo.") for t in tables), tables
    stored = [str(row) for t in tables for row in rows(f'SELECT * FROM "{t}"')]
    assert any(tag in row for row in stored)
    assert _leaks(stored, values) == []
