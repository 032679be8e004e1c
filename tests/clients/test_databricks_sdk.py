"""databricks-sdk 0.156 (.venv-clients-new) and 0.94 (.venv-clients-lc): PAT, OAuth M2M, typed errors, retries."""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.clients.conftest import (
    SCRIPTS,
    Endpoints,
    client_env,
    grant,
    make_service_principal,
    run_script,
)
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer

SDK_VERSIONS = [("new", "0.156.0"), ("lc", "0.94.0")]


@pytest.mark.parametrize(("venv", "version"), SDK_VERSIONS)
def test_sdk_with_pat(
    venv: str, version: str, server: LiveServer, upstream: FakeUpstreamThread, endpoints: Endpoints
) -> None:
    new_name = f"sdk-{venv}-{secrets.token_hex(3)}"
    out = run_script(
        venv,
        SCRIPTS / "sdk_client.py",
        client_env(server, server.admin_token),
        endpoints.chat,
        endpoints.completions,
        endpoints.embeddings,
        upstream.base_url,
        new_name,
    )
    assert out["sdk_version"] == version
    assert out["auth_type"] == "pat"
    assert out["query_messages"] == {
        "content": "echo: hi sdk",
        "role": "assistant",
        "object": "chat.completion",
        "served_model_name": "chat",
        "total_tokens": 5,
    }
    assert out["query_prompt"] == "echo: Once upon"
    assert out["query_input"] == {"count": 2, "dims": 8, "object": "list"}
    assert out["open_ai_client"] == "echo: via get_open_ai_client"
    assert out["list_has_chat"] is True
    assert out["get"] == {"name": endpoints.chat, "ready": "READY", "config_update": "NOT_UPDATING"}
    assert out["resource_does_not_exist"] == {"type": "ResourceDoesNotExist", "error_code": "RESOURCE_DOES_NOT_EXIST"}
    assert out["bad_request"] == {"type": "BadRequest", "error_code": "BAD_REQUEST"}
    assert out["create_and_wait"] == {"name": new_name, "config_update": "NOT_UPDATING"}
    assert out["query_new"] == "echo: new"
    assert out["update_config_and_wait"] == {"config_update": "NOT_UPDATING", "model": "gpt-4o"}
    assert out["deleted"] is True


@pytest.mark.parametrize(("venv", "version"), SDK_VERSIONS)
def test_sdk_with_oauth_m2m(venv: str, version: str, server: LiveServer, endpoints: Endpoints) -> None:
    sp = make_service_principal(server, f"sdk-m2m-{venv}")
    grant(server, endpoints.chat, sp, "CAN_QUERY")
    grant(server, endpoints.completions, sp, "CAN_VIEW")
    env = client_env(server, DATABRICKS_CLIENT_ID=sp.client_id, DATABRICKS_CLIENT_SECRET=sp.secret)
    out = run_script(venv, SCRIPTS / "sdk_m2m.py", env, endpoints.chat, endpoints.completions)
    assert out["sdk_version"] == version
    assert out["auth_type"] == "oauth-m2m"
    assert out["query"] == out["query_again"] == "echo: hi from a service principal"
    # The service principal sees exactly the endpoints it was granted something on (other suites on the
    # shared server grant the `users` group, which every principal belongs to; leave theirs out).
    prefix = endpoints.chat.split("-")[0] + "-"
    assert [n for n in out["listed"] if n.startswith(prefix)] == sorted([endpoints.chat, endpoints.completions])
    assert out["permission_denied"] == {"type": "PermissionDenied", "error_code": "PERMISSION_DENIED"}


def test_429_carries_retry_after_and_the_sdk_retries(
    server: LiveServer, endpoints: Endpoints, clean_upstream: FakeUpstreamThread
) -> None:
    body = {"messages": [{"role": "user", "content": "rate limited"}]}
    clean_upstream.fail_next(429, count=1, retry_after=1)
    with server.client() as c:
        resp = c.post(f"/serving-endpoints/{endpoints.chat}/invocations", json=body)
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "1"
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"

    clean_upstream.reset()
    clean_upstream.fail_next(429, count=1, retry_after=1)
    out = run_script("new", SCRIPTS / "sdk_query.py", client_env(server, server.admin_token), endpoints.chat)
    assert out == {"content": "echo: retry me"}
    assert [r.status for r in clean_upstream.requests] == [429, 200]


def test_sdk_sees_host_metadata(server: LiveServer) -> None:
    """What SDK >= 0.99 probes, unauthenticated, on every client construction; M2M needs its oidc_endpoint."""
    resp = httpx.get(server.url + "/.well-known/databricks-config")
    assert resp.status_code == 200
    meta = resp.json()
    assert meta["oidc_endpoint"] == server.url + "/oidc"
    assert meta["workspace_id"].isdigit()
    disco = httpx.get(meta["oidc_endpoint"] + "/.well-known/oauth-authorization-server").json()
    assert disco["token_endpoint"] == server.url + "/oidc/v1/token"


def test_sdk_secret_acls(server: LiveServer) -> None:
    """databricks-sdk's own secrets calls (create_scope, put_acl, get_acl, list_acls, delete_acl) as documented."""
    scope = f"sdk-acl-{secrets.token_hex(3)}"
    owner, other = f"owner-{scope}@example.com", f"other-{scope}@example.com"
    owner_token, other_token = server.create_token(owner), server.create_token(other)
    out = run_script("new", SCRIPTS / "sdk_secrets.py", client_env(server, owner_token), scope, other, other_token)
    assert out == {
        "other_before": {"type": "PermissionDenied", "error_code": "PERMISSION_DENIED"},
        "other_keys": ["key"],
        "get_acl": {"principal": other, "permission": "READ"},
        "list_acls": sorted([[other, "READ"], [owner, "MANAGE"]]),
        "after_delete": {"type": "ResourceDoesNotExist", "error_code": "RESOURCE_DOES_NOT_EXIST"},
    }
