"""`*_plaintext` secrets reach the upstream and nowhere else: not the API, not the log, not the store."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.serving.support import endpoint_name, requests_with
from tests.support.live import LiveServer


@pytest.fixture(scope="module")
def open_upstream() -> Iterator[FakeUpstreamThread]:
    """A fake that takes any credentials and records them, so the test can see each secret was used."""
    with FakeUpstreamThread() as fake:
        yield fake


def _openai(base: str, key: str, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "external_model": {
            "name": "gpt-4o-mini",
            "provider": "openai",
            "task": "llm/v1/chat",
            "openai_config": {"openai_api_base": base, "openai_api_key_plaintext": key},
        },
    }


def _custom(base: str, auth: dict[str, Any], name: str) -> dict[str, Any]:
    return {
        "name": name,
        "external_model": {
            "name": "custom-model",
            "provider": "custom",
            "task": "llm/v1/chat",
            "custom_provider_config": {"custom_provider_url": base, **auth},
        },
    }


def _seen(responses: list[str], secret_values: list[str]) -> list[str]:
    return [s for s in secret_values if any(s in text for text in responses)]


def use_secrets(live: LiveServer, fake: FakeUpstreamThread, upstream: FakeUpstreamThread, name: str) -> list[str]:
    """Create, query, update and read endpoints holding fresh secrets; return the secrets.

    Asserts along the way that every API response is free of them and that the upstream did receive them.
    """
    values = {k: f"{k}-{secrets.token_hex(12)}" for k in ("openai", "bearer", "header", "updated", "wrong")}
    entities = [
        _openai(fake.base_url, values["openai"], "oai"),
        _custom(fake.base_url, {"bearer_token_auth": {"token_plaintext": values["bearer"]}}, "bearer"),
        _custom(fake.base_url, {"api_key_auth": {"key": "x-api-key", "value_plaintext": values["header"]}}, "hdr"),
    ]
    texts: list[str] = []
    with live.client() as c:
        created = c.post("/api/2.0/serving-endpoints", json={"name": name, "config": {"served_entities": entities}})
        assert created.status_code == 200, created.text
        texts.append(created.text)
        assert created.json()["config"]["served_entities"][0]["external_model"]["openai_config"] == {
            "openai_api_base": fake.base_url
        }
        for entity in ("oai", "bearer", "hdr"):
            marker = f"{name} via {entity}"
            body = {"messages": [{"role": "user", "content": marker}]}
            resp = c.post(f"/serving-endpoints/{name}/served-models/{entity}/invocations", json=body)
            assert resp.status_code == 200, resp.text
            texts.append(resp.text)
            [sent] = requests_with(fake, marker)
            expected = {
                "oai": ("authorization", f"Bearer {values['openai']}"),
                "bearer": ("authorization", f"Bearer {values['bearer']}"),
                "hdr": ("x-api-key", values["header"]),
            }[entity]
            assert sent.headers[expected[0]] == expected[1]
        updated = c.put(
            f"/api/2.0/serving-endpoints/{name}/config",
            json={"served_entities": [_openai(fake.base_url, values["updated"], "oai")]},
        )
        assert updated.status_code == 200, updated.text
        texts.append(updated.text)
        resp = c.post(f"/serving-endpoints/{name}/invocations", json={"messages": [{"role": "user", "content": name}]})
        assert resp.status_code == 200, resp.text
        assert requests_with(fake, name)[-1].headers["authorization"] == f"Bearer {values['updated']}"
        # A key the upstream refuses goes through the error path (401 upstream), which must not echo it either.
        wrong = name + "-wrong"
        wrong_entity = _openai(upstream.base_url, values["wrong"], "w")
        created = c.post(
            "/api/2.0/serving-endpoints", json={"name": wrong, "config": {"served_entities": [wrong_entity]}}
        )
        assert created.status_code == 200, created.text
        failed = c.post(
            f"/serving-endpoints/{wrong}/invocations", json={"messages": [{"role": "user", "content": "x"}]}
        )
        assert failed.status_code == 400
        texts += [created.text, failed.text]
        for path in (
            f"/api/2.0/serving-endpoints/{name}",
            f"/api/2.0/serving-endpoints/{wrong}",
            "/api/2.0/serving-endpoints",
            f"/api/2.0/serving-endpoints/{name}/openapi",
            "/metrics",
        ):
            resp = c.get(path)
            assert resp.status_code == 200, (path, resp.text)
            texts.append(resp.text + str(resp.headers))
    secret_values = list(values.values())
    assert _seen(texts, secret_values) == []
    assert UPSTREAM_KEY not in "".join(texts)
    return secret_values


def test_api_responses_and_log_never_show_secrets(
    any_server: LiveServer,
    open_upstream: FakeUpstreamThread,
    upstream: FakeUpstreamThread,
    request: pytest.FixtureRequest,
) -> None:
    name = endpoint_name(request.node.nodeid, request.node.name)
    secret_values = use_secrets(any_server, open_upstream, upstream, name)
    log = any_server.log()
    assert _seen([log], secret_values) == []


def test_sqlite_files_never_hold_secrets(
    server: LiveServer,
    open_upstream: FakeUpstreamThread,
    upstream: FakeUpstreamThread,
    request: pytest.FixtureRequest,
) -> None:
    name = endpoint_name(request.node.nodeid, request.node.name)
    secret_values = use_secrets(server, open_upstream, upstream, name)
    db = server.data_dir / "modelgate.db"
    assert db.exists()
    stored = b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())
    assert name.encode() in stored  # the endpoint is in these bytes, so the check below looks at the right files
    assert b"$encrypted" in stored
    for value in secret_values:
        assert value.encode() not in stored
    # Nothing else in the data dir (server log, key file, anything added later) holds them either.
    for path in server.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert [v for v in secret_values if v.encode() in data] == [], path


@pytest.mark.postgres
def test_postgres_rows_never_hold_secrets(
    pg_server: LiveServer,
    pg_url: str,
    open_upstream: FakeUpstreamThread,
    upstream: FakeUpstreamThread,
    request: pytest.FixtureRequest,
) -> None:
    name = endpoint_name(request.node.nodeid, request.node.name)
    secret_values = use_secrets(pg_server, open_upstream, upstream, name)
    with psycopg.connect(pg_url) as conn:
        endpoint_rows = [str(row) for row in conn.execute("SELECT * FROM endpoints").fetchall()]
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        all_rows = [str(row) for t in tables for row in conn.execute(f'SELECT * FROM "{t}"').fetchall()]
    mine = [row for row in endpoint_rows if name in row]
    assert len(mine) == 2 and all("$encrypted" in row for row in mine)
    assert _seen(endpoint_rows, secret_values) == []
    assert _seen(all_rows, secret_values) == []
