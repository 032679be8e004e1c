"""Authentication: the Authorization header forms (reference §8.1) and the MODELGATE_ADMIN_TOKEN bootstrap."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from modelgate import cli
from tests.control.checks import API, assert_error
from tests.support.live import LiveServer, free_port, new_pat


def _basic(user_pass: str) -> str:
    return "Basic " + base64.b64encode(user_pass.encode()).decode()


# (Authorization header or None, what the message must contain)
REJECTED = [
    pytest.param(None, "Credential was not sent", id="missing"),
    pytest.param("", "Credential was not sent", id="empty"),
    pytest.param("Bearer", "Credential was not sent", id="bearer-without-token"),
    pytest.param("Token dapi0123", "Credential was not sent", id="unknown-scheme"),
    pytest.param("Bearer " + new_pat(), "Invalid access token", id="unknown-pat"),
    pytest.param("Bearer not-a-databricks-token", "Invalid access token", id="not-a-pat"),
    pytest.param("Basic !!!not-base64!!!", "Malformed Basic credentials", id="basic-not-base64"),
    pytest.param("Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(), "Malformed Basic", id="basic-not-utf8"),
    pytest.param(_basic("token"), "Basic credentials need the form 'token:", id="basic-no-colon"),
    pytest.param(_basic("token:"), "Basic credentials need the form 'token:", id="basic-no-password"),
    pytest.param(_basic("token:" + new_pat()), "Invalid access token", id="basic-unknown-pat"),
]

PROTECTED = [
    ("GET", API, None),
    ("POST", API, {"name": "x"}),
    ("GET", API + "/anything", None),
    ("POST", "/serving-endpoints/anything/invocations", {"messages": [{"role": "user", "content": "hi"}]}),
    ("POST", "/serving-endpoints/chat/completions", {"model": "anything", "messages": []}),
    ("POST", "/serving-endpoints/embeddings", {"model": "anything", "input": "x"}),
    ("GET", "/api/2.0/token/list", None),
    ("POST", "/api/2.0/token/create", {}),
    ("GET", "/api/2.0/permissions/serving-endpoints/0123", None),
    ("GET", "/api/2.0/preview/scim/v2/Me", None),
]


@pytest.mark.parametrize(("authorization", "message"), REJECTED)
def test_bad_credentials_are_401(server: LiveServer, authorization: str | None, message: str) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path, body in PROTECTED:
        resp = httpx.request(method, server.url + path, headers=headers, json=body)
        assert_error(resp, 401, "UNAUTHENTICATED", contains=message)


def test_auth_is_checked_before_the_body(server: LiveServer) -> None:
    """An anonymous caller learns nothing about the request it sent, not even that it was malformed."""
    for path in ("/serving-endpoints/x/invocations", "/serving-endpoints/chat/completions", API):
        resp = httpx.post(server.url + path, content=b"{not json")
        assert_error(resp, 401, "UNAUTHENTICATED")


def test_bearer_and_basic_token_auth(server: LiveServer) -> None:
    for header in (
        f"Bearer {server.admin_token}",
        f"bearer {server.admin_token}",
        _basic(f"token:{server.admin_token}"),
        # curl -u token:$DATABRICKS_TOKEN; the user part is not checked, only the token.
        _basic(f"someone:{server.admin_token}"),
    ):
        resp = httpx.get(server.url + "/api/2.0/preview/scim/v2/Me", headers={"Authorization": header})
        assert resp.status_code == 200, (header[:12], resp.text)
        assert resp.json()["userName"] == "admin"


def test_public_routes_need_no_token(server: LiveServer) -> None:
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    meta = httpx.get(server.url + "/.well-known/databricks-config")
    assert meta.status_code == 200
    assert meta.json()["oidc_endpoint"] == server.url + "/oidc"
    assert meta.json()["workspace_id"].isdigit()


def test_metrics_need_an_admin(server: LiveServer, tmp_path: Path) -> None:
    """/metrics names every endpoint, so it is the admins' unless the operator makes it public."""
    assert httpx.get(server.url + "/metrics").status_code == 401
    user = server.create_token("metrics-reader@example.com")
    refused = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {user}"})
    assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED"
    with server.client() as admin:
        assert admin.get("/metrics").text.startswith("# HELP")
    with LiveServer(tmp_path / "public", env={"MODELGATE_METRICS_PUBLIC": "1"}) as public:
        assert httpx.get(public.url + "/metrics").status_code == 200


def _admin_tokens(live: LiveServer) -> list[dict[str, object]]:
    with live.client() as c:
        resp = c.get("/api/2.0/token/list")
    assert resp.status_code == 200, resp.text
    infos: list[dict[str, object]] = resp.json()["token_infos"]
    return infos


def test_admin_token_registration_is_idempotent_across_restarts(tmp_path: Path) -> None:
    token = new_pat()
    data_dir = tmp_path / "data"
    with LiveServer(data_dir, admin_token=token) as first:
        before = _admin_tokens(first)
    with LiveServer(data_dir, admin_token=token) as second:
        after = _admin_tokens(second)
    registered = [t for t in after if t["comment"] == "MODELGATE_ADMIN_TOKEN"]
    assert len(registered) == 1, after
    assert after == before
    assert registered[0]["created_by_username"] == "admin"
    assert registered[0]["expiry_time"] == -1


def test_malformed_admin_token_refuses_to_start(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "data", admin_token="not-a-token")
    args = [sys.executable, "-m", "modelgate", "serve", "--port", str(free_port()), "--data-dir", str(live.data_dir)]
    try:
        out = subprocess.run(args, env=live.env, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("modelgate serve kept running with a malformed MODELGATE_ADMIN_TOKEN")
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "MODELGATE_ADMIN_TOKEN must be 'dapi' followed by 32 hex characters" in text
    assert "secrets.token_hex(16)" in text  # and how to make one
    assert "Traceback" not in text
    assert "not-a-token" not in text  # a token, even a broken one, is not echoed


@pytest.mark.parametrize("bad", ["dapiXYZ", "dapi" + "0" * 8, "DAPI" + "0" * 32, " dapi" + "0" * 32])
def test_other_malformed_admin_tokens(tmp_path: Path, bad: str) -> None:
    """More shapes, through the CLI in-process (no server starts)."""
    args = ["serve", "--port", "9", "--data-dir", str(tmp_path / "data")]
    result = CliRunner().invoke(cli.main, args, env={"MODELGATE_ADMIN_TOKEN": bad})
    assert result.exit_code == 2, result.output
    assert "'dapi' followed by 32 hex characters" in result.output
    assert not (tmp_path / "data").exists()
