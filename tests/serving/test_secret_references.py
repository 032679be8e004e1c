"""Who may reference what: a signed-in user without grants cannot make the server send a secret it cannot
read, or modelgate's own credentials, to a host of the user's choosing.

Each attempt points an endpoint at `listener`, a server the attacker controls, and checks that it got 403
with nothing stored and that the listener never saw the value.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer
from tests.support.services import live_server_on

ENV_KEY = "sk-env-" + secrets.token_hex(12)
OUTER_WORKSPACE_TOKEN = "dapi" + secrets.token_hex(16)
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def listener() -> Iterator[FakeUpstreamThread]:
    """The attacker's host: takes any credentials and records every request."""
    with FakeUpstreamThread() as fake:
        yield fake


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {
        "MG_REF_KEY": ENV_KEY,
        "MG_OTHER_KEY": "not-allowed-" + secrets.token_hex(8),
        "DATABRICKS_TOKEN": OUTER_WORKSPACE_TOKEN,
        "MODELGATE_ALLOWED_ENV_REFERENCES": "MG_REF_*",
    }
    with live_server_on(request.param, tmp_path_factory.mktemp(f"refs-{request.param}"), env) as server:
        yield server


def _entity(base: str, key_ref: str) -> dict[str, Any]:
    return {
        "name": "main",
        "external_model": {
            "name": "gpt-4o-mini",
            "provider": "openai",
            "task": "llm/v1/chat",
            "openai_config": {"openai_api_base": base, "openai_api_key": key_ref},
        },
    }


def _create(c: httpx.Client, name: str, base: str, key_ref: str) -> httpx.Response:
    return c.post(
        "/api/2.0/serving-endpoints", json={"name": name, "config": {"served_entities": [_entity(base, key_ref)]}}
    )


def _refused(resp: httpx.Response, *words: str) -> None:
    assert resp.status_code == 403, resp.text
    body = resp.json()
    assert body["error_code"] == "PERMISSION_DENIED", body
    for word in words:
        assert word in body["message"], body


def _delivered(listener: FakeUpstreamThread, value: str) -> int:
    return sum(value in " ".join(r.headers.values()) for r in list(listener.requests))


def _user(live: LiveServer, who: str) -> tuple[str, str]:
    name = f"{who}-{secrets.token_hex(4)}@example.com"
    return name, live.create_token(name)


def _grant_manage(admin: httpx.Client, endpoint: str, user: str) -> None:
    ep = admin.get(f"/api/2.0/serving-endpoints/{endpoint}").json()
    acl = {"access_control_list": [{"user_name": user, "permission_level": "CAN_MANAGE"}]}
    assert admin.patch(f"/api/2.0/permissions/serving-endpoints/{ep['id']}", json=acl).status_code == 200


def test_env_references_are_for_admins_and_never_name_modelgate_s_own(
    live: LiveServer, listener: FakeUpstreamThread, upstream: FakeUpstreamThread
) -> None:
    mallory, token = _user(live, "mallory")
    tag = secrets.token_hex(3)
    with live.client(token) as m, live.client() as admin:
        for ref in ("{{env/MODELGATE_ADMIN_TOKEN}}", "{{env/MG_REF_KEY}}", "{{env/DATABRICKS_TOKEN}}"):
            name = f"env-{tag}-{len(ref)}"
            _refused(_create(m, name, listener.base_url, ref), ref[6:-2])
            assert m.get(f"/api/2.0/serving-endpoints/{name}").status_code == 404  # nothing stored
        # Admins may name the environment, but never modelgate's own credentials, and only allowed names.
        for ref in ("{{env/MODELGATE_ADMIN_TOKEN}}", "{{env/DATABRICKS_TOKEN}}", "{{env/MODELGATE_SECRET_KEY}}"):
            _refused(_create(admin, f"env-admin-{tag}", listener.base_url, ref), "can never be referenced")
        _refused(_create(admin, f"env-admin-{tag}", listener.base_url, "{{env/MG_OTHER_KEY}}"),
                 "MODELGATE_ALLOWED_ENV_REFERENCES")  # fmt: skip
        assert admin.get(f"/api/2.0/serving-endpoints/env-admin-{tag}").status_code == 404

        # An admin's endpoint with an allowed reference works; a plain user with CAN_MANAGE on it cannot
        # re-point it at their own host while keeping the reference.
        good = f"env-good-{tag}"
        assert _create(admin, good, upstream.base_url, "{{env/MG_REF_KEY}}").status_code == 200
        _grant_manage(admin, good, mallory)
        moved = {"served_entities": [_entity(listener.base_url, "{{env/MG_REF_KEY}}")]}
        _refused(m.put(f"/api/2.0/serving-endpoints/{good}/config", json=moved), "MG_REF_KEY")
        config = admin.get(f"/api/2.0/serving-endpoints/{good}").json()["config"]
        assert config["served_entities"][0]["external_model"]["openai_config"]["openai_api_base"] == upstream.base_url
        # Still the admin's endpoint, on the admin's upstream (which refuses this key: 400, its own answer).
        still = m.post(f"/serving-endpoints/{good}/invocations", json=CHAT)
        assert still.status_code == 400 and still.json()["error_code"] == "BAD_REQUEST", still.text
    assert _delivered(listener, ENV_KEY) == 0
    assert _delivered(listener, live.admin_token) == 0
    assert _delivered(listener, OUTER_WORKSPACE_TOKEN) == 0


def test_a_scope_the_user_cannot_read_is_refused_and_nothing_stored(
    live: LiveServer, listener: FakeUpstreamThread, upstream: FakeUpstreamThread
) -> None:
    mallory, token = _user(live, "mallory")
    scope, value = f"team-{secrets.token_hex(4)}", "sk-scoped-" + secrets.token_hex(12)
    ref = f"{{{{secrets/{scope}/openai}}}}"
    with live.client(token) as m, live.client() as admin:
        assert admin.post("/api/2.0/secrets/scopes/create", json={"scope": scope}).json() == {}
        assert (
            admin.post("/api/2.0/secrets/put", json={"scope": scope, "key": "openai", "string_value": value}).json()
            == {}
        )
        _error = m.get("/api/2.0/secrets/list", params={"scope": scope})
        assert _error.status_code == 403
        name = f"steal-{scope}"
        _refused(_create(m, name, listener.base_url, ref), scope, "READ")
        assert m.get(f"/api/2.0/serving-endpoints/{name}").status_code == 404
        missing_scope = ref.replace(scope, scope + "-nope")
        _refused(_create(m, name, listener.base_url, missing_scope), scope + "-nope")

        # Through another's endpoint: CAN_MANAGE on it does not lend its config's rights.
        owned = f"owned-{scope}"
        assert _create(admin, owned, upstream.base_url, ref).status_code == 200
        _grant_manage(admin, owned, mallory)
        moved = {"served_entities": [_entity(listener.base_url, ref)]}
        _refused(m.put(f"/api/2.0/serving-endpoints/{owned}/config", json=moved), scope)
        assert admin.get(f"/api/2.0/serving-endpoints/{owned}").json()["config"]["config_version"] == 1
        bad = m.post("/api/2.0/serving-endpoints", json={
            "name": name, "config": {"served_entities": [_entity(listener.base_url, f"{{{{secrets/{scope}}}}}")]}
        })  # fmt: skip
        assert bad.status_code == 400 and bad.json()["error_code"] == "INVALID_PARAMETER_VALUE", bad.text
    assert _delivered(listener, value) == 0


def test_losing_read_stops_the_secret(live: LiveServer, listener: FakeUpstreamThread) -> None:
    alice, token = _user(live, "alice")
    scope, value = f"shared-{secrets.token_hex(4)}", "sk-revoked-" + secrets.token_hex(12)
    ref = f"{{{{secrets/{scope}/key}}}}"
    name = f"revoke-{scope}"
    with live.client(token) as a, live.client() as admin:
        admin.post("/api/2.0/secrets/scopes/create", json={"scope": scope})
        admin.post("/api/2.0/secrets/put", json={"scope": scope, "key": "key", "string_value": value})
        grant = {"scope": scope, "principal": alice, "permission": "READ"}
        assert admin.post("/api/2.0/secrets/acls/put", json=grant).json() == {}
        assert _create(a, name, listener.base_url, ref).status_code == 200
        assert a.post(f"/serving-endpoints/{name}/invocations", json=CHAT).status_code == 200
        assert _delivered(listener, value) == 1

        assert admin.post("/api/2.0/secrets/acls/delete", json={"scope": scope, "principal": alice}).json() == {}
        revoked_at = time.monotonic()
        while True:  # the value may flow for at most the reference TTL (5 s) after the revocation
            resp = a.post(f"/serving-endpoints/{name}/invocations", json=CHAT)
            if resp.status_code == 403:
                break
            assert resp.status_code == 200, resp.text
            assert time.monotonic() - revoked_at < 7, "READ was revoked, but the secret still flows"
            time.sleep(0.2)
        delivered = _delivered(listener, value)
        for _ in range(3):
            _refused(a.post(f"/serving-endpoints/{name}/invocations", json=CHAT), scope, alice)
            _refused(admin.post(f"/serving-endpoints/{name}/invocations", json={**CHAT, "stream": True}), scope)
        assert _delivered(listener, value) == delivered

        # An admin setting the config again takes it over with the admin's rights: the endpoint works again.
        config = {"served_entities": [_entity(listener.base_url, ref)]}
        config["served_entities"][0]["external_model"]["name"] = "gpt-4o"
        assert admin.put(f"/api/2.0/serving-endpoints/{name}/config", json=config).status_code == 200
        assert admin.post(f"/serving-endpoints/{name}/invocations", json=CHAT).status_code == 200
    assert _delivered(listener, value) == delivered + 1


def test_a_client_cannot_hand_in_an_encrypted_value(live: LiveServer, listener: FakeUpstreamThread) -> None:
    """`*_plaintext` takes the value itself: a stored `{"$encrypted": ...}` token sent back in would be
    decrypted for the sender's endpoint, whoever's secret it was."""
    _, token = _user(live, "mallory")
    entity = _entity(listener.base_url, "")
    config = entity["external_model"]["openai_config"]
    del config["openai_api_key"]
    config["openai_api_key_plaintext"] = {"$encrypted": "gAAAAAB-anyone-elses-token"}
    with live.client(token) as m:
        resp = m.post("/api/2.0/serving-endpoints", json={"name": f"enc-{secrets.token_hex(3)}",
                                                          "config": {"served_entities": [entity]}})  # fmt: skip
    assert resp.status_code == 400, resp.text
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "openai_api_key_plaintext must be a string" in resp.json()["message"]
