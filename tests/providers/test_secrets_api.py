"""The Databricks secrets API: scopes, secrets and scope ACLs; values encrypted, never returned."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable

import httpx

from tests.support.live import LiveServer

VALUE = "sk-very-secret-value-42"
SCIM = "/api/2.0/preview/scim/v2"


def test_scope_and_secret_lifecycle(any_server: LiveServer, ep_name: Callable[..., str]) -> None:
    server = any_server
    scope = ep_name()
    with server.client() as c:
        assert c.post("/api/2.0/secrets/scopes/create", json={"scope": scope}).json() == {}
        again = c.post("/api/2.0/secrets/scopes/create", json={"scope": scope})
        assert again.status_code == 400
        assert again.json() == {"error_code": "RESOURCE_ALREADY_EXISTS", "message": f"Scope {scope} already exists!"}
        scopes = c.get("/api/2.0/secrets/scopes/list").json()["scopes"]
        assert {"name": scope, "backend_type": "DATABRICKS"} in scopes

        assert c.post("/api/2.0/secrets/put", json={"scope": scope, "key": "k1", "string_value": VALUE}).json() == {}
        as_bytes = base64.b64encode(b"second").decode()
        assert c.post("/api/2.0/secrets/put", json={"scope": scope, "key": "k2", "bytes_value": as_bytes}).json() == {}
        listed = c.get("/api/2.0/secrets/list", params={"scope": scope})
        assert listed.status_code == 200
        assert [s["key"] for s in listed.json()["secrets"]] == ["k1", "k2"]
        assert all(set(s) == {"key", "last_updated_timestamp"} for s in listed.json()["secrets"])
        assert VALUE not in listed.text
        assert c.get("/api/2.0/secrets/get", params={"scope": scope, "key": "k1"}).status_code == 404

        assert c.post("/api/2.0/secrets/delete", json={"scope": scope, "key": "k1"}).json() == {}
        gone = c.post("/api/2.0/secrets/delete", json={"scope": scope, "key": "k1"})
        assert gone.status_code == 404
        assert gone.json() == {
            "error_code": "RESOURCE_DOES_NOT_EXIST",
            "message": f"Secret k1 does not exist in scope {scope}!",
        }
        assert c.post("/api/2.0/secrets/scopes/delete", json={"scope": scope}).json() == {}
        missing = c.get("/api/2.0/secrets/list", params={"scope": scope})
        assert missing.status_code == 404
        assert missing.json() == {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Scope {scope} does not exist!"}
        put_missing = c.post("/api/2.0/secrets/put", json={"scope": scope, "key": "k", "string_value": "v"})
        assert put_missing.status_code == 404
    assert VALUE not in server.log()


def test_values_encrypted_at_rest(server: LiveServer, ep_name: Callable[..., str]) -> None:
    scope = ep_name()
    with server.client() as c:
        c.post("/api/2.0/secrets/scopes/create", json={"scope": scope})
        c.post("/api/2.0/secrets/put", json={"scope": scope, "key": "k", "string_value": VALUE})
    with sqlite3.connect(server.data_dir / "modelgate.db") as db:
        (stored,) = db.execute("SELECT value_encrypted FROM secrets WHERE scope = ?", (scope,)).fetchone()
    assert VALUE not in stored
    assert stored.startswith("gAAAA")  # a Fernet token


def test_bad_input(server: LiveServer, ep_name: Callable[..., str]) -> None:
    scope = ep_name()
    with server.client() as c:
        bad_name = c.post("/api/2.0/secrets/scopes/create", json={"scope": "has space"})
        assert bad_name.status_code == 400
        assert bad_name.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        unknown = c.post("/api/2.0/secrets/scopes/create", json={"scope": scope, "bogus": 1})
        assert unknown.status_code == 400
        assert unknown.json() == {"error_code": "INVALID_PARAMETER_VALUE", "message": "unknown field 'bogus'"}
        vault = c.post("/api/2.0/secrets/scopes/create", json={"scope": scope, "scope_backend_type": "AZURE_KEYVAULT"})
        assert vault.status_code == 400
        c.post("/api/2.0/secrets/scopes/create", json={"scope": scope})
        both = c.post(
            "/api/2.0/secrets/put", json={"scope": scope, "key": "k", "string_value": "a", "bytes_value": "YQ=="}
        )
        assert both.status_code == 400
        assert both.json()["message"] == "Give exactly one of 'string_value' and 'bytes_value'."
        not_b64 = c.post("/api/2.0/secrets/put", json={"scope": scope, "key": "k", "bytes_value": "%%%"})
        assert not_b64.status_code == 400
        bad_key = c.post("/api/2.0/secrets/put", json={"scope": scope, "key": "a/b", "string_value": "v"})
        assert bad_key.status_code == 400
        no_scope = c.get("/api/2.0/secrets/list")
        assert no_scope.status_code == 400
        assert no_scope.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def _error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error_code", "message"} and body["error_code"] == code, body
    message: str = body["message"]
    return message


def test_secret_acls_as_databricks_documents_them(any_server: LiveServer, ep_name: Callable[..., str]) -> None:
    """Any user creates a scope and holds MANAGE; others need READ to list, WRITE to put, MANAGE for ACLs."""
    server, scope = any_server, ep_name()
    alice, bob = f"alice-{scope}@example.com", f"bob-{scope}@example.com"
    alice_token, bob_token = server.create_token(alice), server.create_token(bob)
    with server.client(alice_token) as a, server.client(bob_token) as b, server.client() as admin:
        assert a.post("/api/2.0/secrets/scopes/create", json={"scope": scope}).json() == {}
        assert a.get("/api/2.0/secrets/acls/list", params={"scope": scope}).json() == {
            "items": [{"principal": alice, "permission": "MANAGE"}]
        }
        assert a.post("/api/2.0/secrets/put", json={"scope": scope, "key": "k", "string_value": VALUE}).json() == {}

        # Bob holds nothing: every call on the scope is refused, and the scope list (names only) is public.
        refused = {
            ("GET", "/api/2.0/secrets/list", (("scope", scope),)): None,
            ("GET", "/api/2.0/secrets/acls/list", (("scope", scope),)): None,
            ("GET", "/api/2.0/secrets/acls/get", (("scope", scope), ("principal", alice))): None,
        }
        for method, path, params in refused:
            message = _error(b.request(method, path, params=dict(params)), 403, "PERMISSION_DENIED")
            assert scope in message and bob in message
        for path, body in [
            ("/api/2.0/secrets/put", {"scope": scope, "key": "k", "string_value": "stolen"}),
            ("/api/2.0/secrets/delete", {"scope": scope, "key": "k"}),
            ("/api/2.0/secrets/acls/put", {"scope": scope, "principal": bob, "permission": "MANAGE"}),
            ("/api/2.0/secrets/acls/delete", {"scope": scope, "principal": alice}),
            ("/api/2.0/secrets/scopes/delete", {"scope": scope}),
        ]:
            _error(b.post(path, json=body), 403, "PERMISSION_DENIED")
        assert scope in [s["name"] for s in b.get("/api/2.0/secrets/scopes/list").json()["scopes"]]

        def grant(permission: str) -> None:
            body = {"scope": scope, "principal": bob, "permission": permission}
            assert a.post("/api/2.0/secrets/acls/put", json=body).json() == {}

        grant("READ")  # READ: list, but not write
        assert [s["key"] for s in b.get("/api/2.0/secrets/list", params={"scope": scope}).json()["secrets"]] == ["k"]
        _error(b.post("/api/2.0/secrets/put", json={"scope": scope, "key": "k2", "string_value": "v"}), 403,
               "PERMISSION_DENIED")  # fmt: skip
        grant("WRITE")  # overwrites: WRITE puts and deletes, but does not manage
        assert b.post("/api/2.0/secrets/put", json={"scope": scope, "key": "k2", "string_value": "v"}).json() == {}
        assert b.post("/api/2.0/secrets/delete", json={"scope": scope, "key": "k2"}).json() == {}
        _error(b.get("/api/2.0/secrets/acls/list", params={"scope": scope}), 403, "PERMISSION_DENIED")
        assert a.get("/api/2.0/secrets/acls/get", params={"scope": scope, "principal": bob}).json() == {
            "principal": bob,
            "permission": "WRITE",
        }
        grant("MANAGE")
        assert b.get("/api/2.0/secrets/acls/list", params={"scope": scope}).json() == {
            "items": [{"principal": alice, "permission": "MANAGE"}, {"principal": bob, "permission": "MANAGE"}]
        }
        assert b.post("/api/2.0/secrets/acls/delete", json={"scope": scope, "principal": bob}).json() == {}
        _error(b.get("/api/2.0/secrets/list", params={"scope": scope}), 403, "PERMISSION_DENIED")

        # Refusals with their documented codes.
        bad = {"scope": scope, "principal": bob, "permission": "OWNER"}
        _error(a.post("/api/2.0/secrets/acls/put", json=bad), 400, "INVALID_PARAMETER_VALUE")
        nobody = {"scope": scope, "principal": "nobody@example.com", "permission": "READ"}
        _error(a.post("/api/2.0/secrets/acls/put", json=nobody), 400, "INVALID_PARAMETER_VALUE")
        _error(a.get("/api/2.0/secrets/acls/get", params={"scope": scope, "principal": bob}), 404,
               "RESOURCE_DOES_NOT_EXIST")  # fmt: skip
        _error(a.post("/api/2.0/secrets/acls/delete", json={"scope": scope, "principal": bob}), 404,
               "RESOURCE_DOES_NOT_EXIST")  # fmt: skip
        for resp in (
            a.get("/api/2.0/secrets/acls/list", params={"scope": scope + "-none"}),
            a.post("/api/2.0/secrets/acls/put", json={**nobody, "scope": scope + "-none"}),
            b.get("/api/2.0/secrets/acls/get", params={"scope": scope + "-none", "principal": bob}),
        ):
            assert _error(resp, 404, "RESOURCE_DOES_NOT_EXIST") == f"Scope {scope}-none does not exist!"
        _error(a.get("/api/2.0/secrets/acls/get", params={"scope": scope}), 400, "INVALID_PARAMETER_VALUE")

        # The group `users` grants everyone; admins hold everything without an entry.
        everyone = {"scope": scope, "principal": "users", "permission": "READ"}
        assert a.post("/api/2.0/secrets/acls/put", json=everyone).json() == {}
        assert b.get("/api/2.0/secrets/list", params={"scope": scope}).status_code == 200
        assert admin.get("/api/2.0/secrets/acls/list", params={"scope": scope}).status_code == 200
        assert admin.post("/api/2.0/secrets/acls/delete", json={"scope": scope, "principal": "users"}).json() == {}
        _error(b.get("/api/2.0/secrets/list", params={"scope": scope}), 403, "PERMISSION_DENIED")

        # Scope deletion needs MANAGE and takes the ACLs with it.
        assert a.post("/api/2.0/secrets/scopes/delete", json={"scope": scope}).json() == {}
        assert a.post("/api/2.0/secrets/scopes/create", json={"scope": scope}).json() == {}
        assert a.get("/api/2.0/secrets/acls/list", params={"scope": scope}).json() == {
            "items": [{"principal": alice, "permission": "MANAGE"}]
        }
    with server.client("dapi" + "0" * 32) as anon:
        assert anon.get("/api/2.0/secrets/scopes/list").status_code == 401
        assert anon.get("/api/2.0/secrets/acls/list", params={"scope": scope}).status_code == 401


def test_group_grants_and_initial_manage_principal(server: LiveServer, ep_name: Callable[..., str]) -> None:
    scope = ep_name()
    carol = f"carol-{scope}@example.com"
    carol_token = server.create_token(carol)
    with server.client() as admin, server.client(carol_token) as c:
        users = admin.get(f"{SCIM}/Users", params={"filter": f'userName eq "{carol}"'}).json()
        group = f"team-{scope}"
        members = [{"value": users["Resources"][0]["id"]}]
        assert admin.post(f"{SCIM}/Groups", json={"displayName": group, "members": members}).status_code == 201
        assert admin.post("/api/2.0/secrets/scopes/create", json={"scope": scope}).json() == {}
        _error(c.get("/api/2.0/secrets/list", params={"scope": scope}), 403, "PERMISSION_DENIED")
        grant = {"scope": scope, "principal": group, "permission": "READ"}
        assert admin.post("/api/2.0/secrets/acls/put", json=grant).json() == {}
        assert c.get("/api/2.0/secrets/list", params={"scope": scope}).json() == {"secrets": []}

        # initial_manage_principal takes MANAGE instead of the creator (Databricks: `users` for everyone).
        shared = scope + "-shared"
        body = {"scope": shared, "initial_manage_principal": "users"}
        assert c.post("/api/2.0/secrets/scopes/create", json=body).json() == {}
        assert c.get("/api/2.0/secrets/acls/list", params={"scope": shared}).json() == {
            "items": [{"principal": "users", "permission": "MANAGE"}]
        }
        bad = {"scope": scope + "-bad", "initial_manage_principal": "nobody@example.com"}
        _error(c.post("/api/2.0/secrets/scopes/create", json=bad), 400, "INVALID_PARAMETER_VALUE")
        assert c.get("/api/2.0/secrets/acls/list", params={"scope": scope + "-bad"}).status_code == 404
