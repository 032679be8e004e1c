"""Endpoint permissions (reference §1.2 notes): CAN_VIEW < CAN_QUERY < CAN_MANAGE, by endpoint id.

The server's policy, asserted below on every route: a caller with no level at all on an endpoint gets
404 RESOURCE_DOES_NOT_EXIST, with the same message as for an endpoint that does not exist (the control
plane, the data plane and the OpenAI-compatible routes alike), so nobody learns which endpoints exist.
A caller who can see the endpoint but lacks the level an action needs gets 403 PERMISSION_DENIED.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.control.checks import API, PERMS, UserTokens, assert_error, chat_body, unique_name
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer, create_endpoint, external_chat_config

ALICE = "alice@example.com"
BOB = "bob@example.com"


def _entity(upstream: FakeUpstreamThread) -> dict[str, Any]:
    return external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY)


def _grant(admin: httpx.Client, endpoint_id: str, method: str = "PATCH", **entry: str) -> dict[str, Any]:
    resp = admin.request(method, f"{PERMS}/{endpoint_id}", json={"access_control_list": [entry]})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _levels(acl_view: dict[str, Any]) -> dict[tuple[str, str], str]:
    out = {}
    for entry in acl_view["access_control_list"]:
        kind = next(k for k in ("user_name", "group_name", "service_principal_name") if k in entry)
        out[(kind, entry[kind])] = entry["all_permissions"][0]["permission_level"]
    return out


def _query(client: httpx.Client, name: str) -> httpx.Response:
    return client.post(f"/serving-endpoints/{name}/invocations", json=chat_body("who am i"))


def _openai_query(client: httpx.Client, name: str) -> httpx.Response:
    return client.post("/serving-endpoints/chat/completions", json={"model": name, **chat_body("who am i")})


def _assert_hidden(client: httpx.Client, name: str, endpoint_id: str, entity: dict[str, Any]) -> None:
    """Every route answers as if the endpoint did not exist."""
    hidden = f"Endpoint with name '{name}' does not exist."
    assert_error(client.get(f"{API}/{name}"), 404, "RESOURCE_DOES_NOT_EXIST", contains=hidden)
    assert_error(_query(client, name), 404, "RESOURCE_DOES_NOT_EXIST", contains=hidden)
    assert_error(_openai_query(client, name), 404, "RESOURCE_DOES_NOT_EXIST", contains=hidden)
    assert_error(
        client.post(f"/serving-endpoints/{name}/served-models/gpt-4o-mini/invocations", json=chat_body()),
        404,
        "RESOURCE_DOES_NOT_EXIST",
        contains=hidden,
    )
    assert_error(client.delete(f"{API}/{name}"), 404, "RESOURCE_DOES_NOT_EXIST", contains=hidden)
    assert_error(client.put(f"{API}/{name}/config", json={"served_entities": [entity]}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(client.get(f"{API}/{name}/metrics"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(client.get(f"{PERMS}/{endpoint_id}"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(client.get(f"{PERMS}/{endpoint_id}/permissionLevels"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert name not in {e["name"] for e in client.get(API).json()["endpoints"]}
    # Exactly what a never-created endpoint answers.
    ghost = f"ghost-{name}"
    assert_error(_query(client, ghost), 404, "RESOURCE_DOES_NOT_EXIST", contains=f"Endpoint with name '{ghost}'")


@pytest.fixture
def alice(any_server: LiveServer, user_tokens: UserTokens) -> httpx.Client:
    return any_server.client(user_tokens.get(any_server, ALICE))


@pytest.fixture
def bob(any_server: LiveServer, user_tokens: UserTokens) -> httpx.Client:
    return any_server.client(user_tokens.get(any_server, BOB))


def test_permission_routes(any_server: LiveServer, upstream: FakeUpstreamThread) -> None:
    name = unique_name("perm-api")
    with any_server.client() as admin:
        ep = create_endpoint(admin, name, _entity(upstream))
        for slash in ("", "/"):
            resp = admin.get(f"{PERMS}/{ep['id']}{slash}")
            assert resp.status_code == 200, resp.text
            view = resp.json()
            assert view["object_id"] == f"/serving-endpoints/{ep['id']}"
            assert view["object_type"] == "serving-endpoint"
            assert _levels(view) == {("user_name", "admin"): "CAN_MANAGE", ("group_name", "admins"): "CAN_MANAGE"}
            admins = next(e for e in view["access_control_list"] if e.get("group_name") == "admins")
            assert admins["all_permissions"][0]["inherited"] is True

            levels = admin.get(f"{PERMS}/{ep['id']}/permissionLevels{slash}")
            assert levels.status_code == 200, levels.text
            assert [lv["permission_level"] for lv in levels.json()["permission_levels"]] == [
                "CAN_MANAGE",
                "CAN_QUERY",
                "CAN_VIEW",
            ]
            assert all(lv["description"] for lv in levels.json()["permission_levels"])

        # PATCH merges, PUT replaces.
        view = _grant(admin, ep["id"], user_name=ALICE, permission_level="CAN_VIEW")
        assert _levels(view)[("user_name", ALICE)] == "CAN_VIEW"
        view = _grant(admin, ep["id"], group_name="ml-team", permission_level="CAN_QUERY")
        assert _levels(view)[("user_name", ALICE)] == "CAN_VIEW"
        assert _levels(view)[("group_name", "ml-team")] == "CAN_QUERY"
        view = _grant(admin, ep["id"], "PUT", service_principal_name="sp-app-1", permission_level="CAN_MANAGE")
        assert _levels(view) == {
            ("service_principal_name", "sp-app-1"): "CAN_MANAGE",
            ("group_name", "admins"): "CAN_MANAGE",
        }
        assert admin.get(f"{PERMS}/{ep['id']}").json() == view

        # Permissions take the id, not the name.
        assert_error(admin.get(f"{PERMS}/{name}"), 404, "RESOURCE_DOES_NOT_EXIST", contains="id")
        bad_entries: list[dict[str, Any]] = [
            {"user_name": ALICE, "permission_level": "CAN_OWN"},
            {"permission_level": "CAN_VIEW"},
            {"user_name": ALICE, "group_name": "g", "permission_level": "CAN_VIEW"},
        ]
        for entry in bad_entries:
            resp = admin.patch(f"{PERMS}/{ep['id']}", json={"access_control_list": [entry]})
            assert_error(resp, 400, "INVALID_PARAMETER_VALUE")


def test_no_grant_hides_the_endpoint(any_server: LiveServer, upstream: FakeUpstreamThread, alice: httpx.Client) -> None:
    name = unique_name("perm-none")
    with any_server.client() as admin:
        ep = create_endpoint(admin, name, _entity(upstream))
    with alice:
        _assert_hidden(alice, name, ep["id"], _entity(upstream))


def test_can_query_queries_but_cannot_manage(
    any_server: LiveServer, upstream: FakeUpstreamThread, alice: httpx.Client
) -> None:
    name = unique_name("perm-query")
    with any_server.client() as admin, alice:
        ep = create_endpoint(admin, name, _entity(upstream))
        _grant(admin, ep["id"], user_name=ALICE, permission_level="CAN_QUERY")

        resp = _query(alice, name)
        assert resp.status_code == 200, resp.text
        assert resp.json()["choices"][0]["message"]["content"] == "echo: who am i"
        assert _openai_query(alice, name).status_code == 200

        got = alice.get(f"{API}/{name}")
        assert got.status_code == 200
        assert got.json()["permission_level"] == "CAN_QUERY"
        assert name in {e["name"] for e in alice.get(API).json()["endpoints"]}
        assert alice.get(f"{PERMS}/{ep['id']}").status_code == 200

        denied = f"{ALICE} does not have CAN_MANAGE permission"
        assert_error(
            alice.put(f"{API}/{name}/config", json={"served_entities": [_entity(upstream)]}),
            403,
            "PERMISSION_DENIED",
            contains=denied,
        )
        assert_error(alice.delete(f"{API}/{name}"), 403, "PERMISSION_DENIED", contains=denied)
        assert_error(alice.patch(f"{API}/{name}/tags", json={"add_tags": [{"key": "k"}]}), 403, "PERMISSION_DENIED")
        assert_error(alice.put(f"{API}/{name}/ai-gateway", json={}), 403, "PERMISSION_DENIED")
        assert_error(alice.put(f"{API}/{name}/rate-limits", json={"rate_limits": []}), 403, "PERMISSION_DENIED")
        grant_self = {"access_control_list": [{"user_name": ALICE, "permission_level": "CAN_MANAGE"}]}
        assert_error(alice.patch(f"{PERMS}/{ep['id']}", json=grant_self), 403, "PERMISSION_DENIED")
        # Nothing changed.
        after = admin.get(f"{API}/{name}").json()
        assert after["config"]["config_version"] == 1
        assert after["tags"] == []


def test_can_view_sees_but_cannot_query(
    any_server: LiveServer, upstream: FakeUpstreamThread, alice: httpx.Client
) -> None:
    name = unique_name("perm-view")
    with any_server.client() as admin, alice:
        ep = create_endpoint(admin, name, _entity(upstream))
        _grant(admin, ep["id"], user_name=ALICE, permission_level="CAN_VIEW")
        got = alice.get(f"{API}/{name}")
        assert got.status_code == 200
        assert got.json()["permission_level"] == "CAN_VIEW"
        assert alice.get(f"{API}/{name}/metrics").status_code == 200
        denied = f"{ALICE} does not have CAN_QUERY permission on serving endpoint '{name}'"
        assert_error(_query(alice, name), 403, "PERMISSION_DENIED", contains=denied)
        assert_error(_openai_query(alice, name), 403, "PERMISSION_DENIED", contains=denied)
        assert_error(alice.get(f"{API}/{name}/openapi"), 403, "PERMISSION_DENIED")

        # Raising the grant takes effect on the very next query (the runtime's ACL is rebuilt).
        _grant(admin, ep["id"], user_name=ALICE, permission_level="CAN_QUERY")
        assert _query(alice, name).status_code == 200
        # And revoking it (PUT replaces the list) hides the endpoint again.
        _grant(admin, ep["id"], "PUT", user_name=BOB, permission_level="CAN_VIEW")
        _assert_hidden(alice, name, ep["id"], _entity(upstream))


def test_can_manage_updates_and_deletes(
    any_server: LiveServer, upstream: FakeUpstreamThread, alice: httpx.Client
) -> None:
    name = unique_name("perm-manage")
    with any_server.client() as admin, alice:
        ep = create_endpoint(admin, name, _entity(upstream))
        _grant(admin, ep["id"], user_name=ALICE, permission_level="CAN_MANAGE")
        resp = alice.put(f"{API}/{name}/config", json={"served_entities": [_entity(upstream)]})
        assert resp.status_code == 200, resp.text
        assert resp.json()["config"]["config_version"] == 2
        assert resp.json()["permission_level"] == "CAN_MANAGE"
        view = _grant(alice, ep["id"], user_name=BOB, permission_level="CAN_QUERY")
        assert _levels(view)[("user_name", BOB)] == "CAN_QUERY"
        assert alice.delete(f"{API}/{name}").json() == {}
        assert_error(admin.get(f"{API}/{name}"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_group_users_grants_everyone(
    any_server: LiveServer, upstream: FakeUpstreamThread, alice: httpx.Client, bob: httpx.Client
) -> None:
    name = unique_name("perm-users")
    with any_server.client() as admin, alice, bob:
        ep = create_endpoint(admin, name, _entity(upstream))
        try:
            _grant(admin, ep["id"], group_name="users", permission_level="CAN_QUERY")
            for who in (alice, bob):
                assert _query(who, name).status_code == 200
                assert who.get(f"{API}/{name}").json()["permission_level"] == "CAN_QUERY"
                assert_error(who.delete(f"{API}/{name}"), 403, "PERMISSION_DENIED")
            # A personal grant above the group's wins; the group's still applies to the others.
            _grant(admin, ep["id"], user_name=ALICE, permission_level="CAN_MANAGE")
            assert alice.get(f"{API}/{name}").json()["permission_level"] == "CAN_MANAGE"
            assert bob.get(f"{API}/{name}").json()["permission_level"] == "CAN_QUERY"
        finally:
            # The grant reaches every user of this shared server; do not leave it behind.
            admin.delete(f"{API}/{name}")


def test_own_endpoints_are_private(
    any_server: LiveServer, upstream: FakeUpstreamThread, alice: httpx.Client, bob: httpx.Client
) -> None:
    name = unique_name("perm-own")
    with alice, bob, any_server.client() as admin:
        ep = create_endpoint(alice, name, _entity(upstream))
        assert ep["creator"] == ALICE
        assert ep["permission_level"] == "CAN_MANAGE"
        assert _query(alice, name).status_code == 200
        assert alice.patch(f"{API}/{name}/tags", json={"add_tags": [{"key": "mine"}]}).status_code == 200
        assert name in {e["name"] for e in alice.get(API).json()["endpoints"]}

        _assert_hidden(bob, name, ep["id"], _entity(upstream))

        # Admins see and manage everything.
        assert admin.get(f"{API}/{name}").json()["permission_level"] == "CAN_MANAGE"
        assert name in {e["name"] for e in admin.get(API).json()["endpoints"]}
        # The creator keeps CAN_MANAGE even when the ACL is replaced without her.
        _grant(admin, ep["id"], "PUT", user_name=BOB, permission_level="CAN_VIEW")
        assert alice.get(f"{API}/{name}").json()["permission_level"] == "CAN_MANAGE"
        assert bob.get(f"{API}/{name}").json()["permission_level"] == "CAN_VIEW"
