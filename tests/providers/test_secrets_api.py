"""The Databricks secrets API: scopes and secrets managed by admins, values encrypted, never returned."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable

from tests.support.live import LiveServer

VALUE = "sk-very-secret-value-42"


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


def test_only_admins_manage_secrets(server: LiveServer, ep_name: Callable[..., str]) -> None:
    scope = ep_name()
    token = server.create_token(f"{scope}@example.com")
    with server.client() as admin:
        admin.post("/api/2.0/secrets/scopes/create", json={"scope": scope})
    with server.client(token) as c:
        for path, body in [
            ("/api/2.0/secrets/scopes/create", {"scope": scope + "-x"}),
            ("/api/2.0/secrets/scopes/delete", {"scope": scope}),
            ("/api/2.0/secrets/put", {"scope": scope, "key": "k", "string_value": "v"}),
            ("/api/2.0/secrets/delete", {"scope": scope, "key": "k"}),
        ]:
            resp = c.post(path, json=body)
            assert resp.status_code == 403, path
            assert resp.json()["error_code"] == "PERMISSION_DENIED"
        assert c.get("/api/2.0/secrets/list", params={"scope": scope}).status_code == 403
        assert c.get("/api/2.0/secrets/scopes/list").status_code == 200
    with server.client("dapi" + "0" * 32) as anon:
        assert anon.get("/api/2.0/secrets/scopes/list").status_code == 401
