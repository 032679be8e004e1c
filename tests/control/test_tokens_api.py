"""Personal access tokens: the /api/2.0/token API, the `modelgate tokens` CLI, expiry, revocation, storage."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.control.checks import UserTokens, assert_error
from tests.support.live import LiveServer

ME = "/api/2.0/preview/scim/v2/Me"
# The authenticator caches a verdict for 5 s (auth.authenticator.CACHE_TTL_SECONDS); give it a margin.
CACHE_WAIT_S = 6.0


def _status_as(live: LiveServer, token: str) -> int:
    resp = httpx.get(live.url + ME, headers={"Authorization": f"Bearer {token}"})
    return resp.status_code


def _rejected_within(live: LiveServer, token: str, seconds: float) -> None:
    """Poll until the token is refused; fail if it is still accepted after `seconds`."""
    start = time.monotonic()
    while True:
        resp = httpx.get(live.url + ME, headers={"Authorization": f"Bearer {token}"})
        if resp.status_code == 401:
            assert_error(resp, 401, "UNAUTHENTICATED", contains="Invalid access token")
            return
        assert resp.status_code == 200, resp.text
        assert time.monotonic() - start < seconds, f"token still accepted after {seconds}s"
        time.sleep(0.2)


def _cli(live: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "modelgate", "tokens", *args, "--data-dir", str(live.data_dir)]
    return subprocess.run(cmd, env=live.env, capture_output=True, text=True, timeout=60)


def test_create_list_delete(any_server: LiveServer) -> None:
    comment = "ci " + secrets.token_hex(4)
    with any_server.client() as c:
        resp = c.post("/api/2.0/token/create", json={"lifetime_seconds": 3600, "comment": comment})
        assert resp.status_code == 200, resp.text
        created = resp.json()
        assert set(created) == {"token_value", "token_info"}
        value = created["token_value"]
        assert re.fullmatch(r"dapi[0-9a-f]{32}", value)
        info = created["token_info"]
        assert info["comment"] == comment
        assert info["created_by_username"] == "admin"
        assert info["expiry_time"] == info["creation_time"] + 3600 * 1000
        assert abs(info["creation_time"] - time.time() * 1000) < 120_000

        # The new token works and is the admin's.
        assert (
            httpx.get(any_server.url + ME, headers={"Authorization": f"Bearer {value}"}).json()["userName"] == "admin"
        )

        listed = c.get("/api/2.0/token/list")
        assert listed.status_code == 200
        infos = {t["token_id"]: t for t in listed.json()["token_infos"]}
        assert infos[info["token_id"]] == info
        assert value not in listed.text  # the value is shown once, at creation

        deleted = c.post("/api/2.0/token/delete", json={"token_id": info["token_id"]})
        assert deleted.status_code == 200
        assert deleted.json() == {}
        _rejected_within(any_server, value, CACHE_WAIT_S)
        assert info["token_id"] not in {t["token_id"] for t in c.get("/api/2.0/token/list").json()["token_infos"]}
        assert_error(
            c.post("/api/2.0/token/delete", json={"token_id": info["token_id"]}), 404, "RESOURCE_DOES_NOT_EXIST"
        )


def test_create_without_body_makes_a_token_that_never_expires(any_server: LiveServer) -> None:
    with any_server.client() as c:
        resp = c.post("/api/2.0/token/create")
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_info"]["expiry_time"] == -1
    assert resp.json()["token_info"]["comment"] == ""


def test_token_api_bad_input(server: LiveServer) -> None:
    with server.client() as c:
        for body in ({"lifetime_seconds": "soon"}, {"comment": 5}, {"lifetime_seconds": 1, "scope": "all"}):
            assert_error(c.post("/api/2.0/token/create", json=body), 400, "INVALID_PARAMETER_VALUE")
        assert_error(c.post("/api/2.0/token/delete", json={}), 400, "INVALID_PARAMETER_VALUE", contains="token_id")
        assert_error(c.post("/api/2.0/token/delete", json={"token_id": "nope"}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_users_manage_only_their_own_tokens(any_server: LiveServer, user_tokens: UserTokens) -> None:
    alice = any_server.client(user_tokens.get(any_server, "alice@example.com"))
    bob = any_server.client(user_tokens.get(any_server, "bob@example.com"))
    with alice, bob, any_server.client() as admin:
        made = alice.post("/api/2.0/token/create", json={"comment": "alice's laptop"}).json()
        token_id = made["token_info"]["token_id"]
        assert made["token_info"]["created_by_username"] == "alice@example.com"
        assert _status_as(any_server, made["token_value"]) == 200

        owners = {t["created_by_username"] for t in alice.get("/api/2.0/token/list").json()["token_infos"]}
        assert owners == {"alice@example.com"}
        assert token_id not in {t["token_id"] for t in bob.get("/api/2.0/token/list").json()["token_infos"]}

        # Bob cannot revoke it (and is not told that it exists); the token keeps working.
        resp = bob.post("/api/2.0/token/delete", json={"token_id": token_id})
        assert_error(resp, 404, "RESOURCE_DOES_NOT_EXIST")
        assert _status_as(any_server, made["token_value"]) == 200
        # An admin can.
        assert admin.post("/api/2.0/token/delete", json={"token_id": token_id}).json() == {}
        _rejected_within(any_server, made["token_value"], CACHE_WAIT_S)


def test_short_lifetime_token_expires(any_server: LiveServer) -> None:
    with any_server.client() as c:
        start = time.monotonic()
        created = c.post("/api/2.0/token/create", json={"lifetime_seconds": 1}).json()
    info = created["token_info"]
    assert info["expiry_time"] == info["creation_time"] + 1000
    first = _status_as(any_server, created["token_value"])
    if time.monotonic() - start < 0.8:  # only meaningful while the token is certainly still valid
        assert first == 200
    _rejected_within(any_server, created["token_value"], CACHE_WAIT_S)
    assert time.monotonic() - start >= 0.95  # refused because it expired, not from the start


def test_cli_create_list_revoke(any_server: LiveServer) -> None:
    comment = "cli-" + secrets.token_hex(4)
    out = _cli(any_server, "create", "--user", "carol@example.com", "--comment", comment)
    assert out.returncode == 0, out.stderr
    value = out.stdout.strip()
    assert re.fullmatch(r"dapi[0-9a-f]{32}", value)
    database = any_server.env.get("MODELGATE_DATABASE_URL") or str((any_server.data_dir / "modelgate.db").resolve())
    assert out.stderr.strip() == f"token for carol@example.com written to {database}"
    resp = httpx.get(any_server.url + ME, headers={"Authorization": f"Bearer {value}"})
    assert resp.json()["userName"] == "carol@example.com"  # now cached by the server

    listing = _cli(any_server, "list")
    assert listing.returncode == 0, listing.stderr
    assert value not in listing.stdout
    lines = [ln for ln in listing.stdout.splitlines() if ln.endswith("\t" + comment)]
    assert len(lines) == 1, listing.stdout
    token_id, owner, expires, _comment = lines[0].split("\t")
    assert owner == "carol@example.com"
    assert expires == "expires=never"

    revoked = _cli(any_server, "revoke", token_id)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == f"revoked {token_id}"
    # Another process revoked it: the server notices once its cached verdict runs out.
    _rejected_within(any_server, value, CACHE_WAIT_S)

    again = _cli(any_server, "revoke", token_id)
    assert again.returncode == 1
    assert f"no active token with id {token_id}" in again.stderr


def test_tokens_are_stored_only_as_hashes(server: LiveServer) -> None:
    with server.client() as c:
        value = c.post("/api/2.0/token/create", json={"comment": "hash check"}).json()["token_value"]
    assert _status_as(server, value) == 200
    stored = b"".join(p.read_bytes() for p in sorted(server.data_dir.rglob("*")) if p.is_file())
    assert hashlib.sha256(value.encode()).hexdigest().encode() in stored  # we are reading the right files
    assert value.encode() not in stored
    assert value[4:].encode() not in stored
    assert server.admin_token.encode() not in stored


def test_cli_refuses_a_database_that_does_not_exist(tmp_path: Path) -> None:
    """Run outside the data dir, the CLI would make a new, empty ./.modelgate that no server reads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
    for args in (
        ["tokens", "create", "--user", "alice@example.com"],
        ["tokens", "list"],
        ["export", "usage", "my-chat", "--out", "usage.parquet"],
    ):
        cmd = [sys.executable, "-m", "modelgate", *args]
        out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode != 0, args
        assert f"no modelgate database at {tmp_path.resolve() / '.modelgate' / 'modelgate.db'}" in out.stderr
        assert not out.stdout
    assert list(tmp_path.iterdir()) == []  # nothing was created

    made = subprocess.run(
        [sys.executable, "-m", "modelgate", "tokens", "create", "--create-database", "--data-dir", "new"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert re.fullmatch(r"dapi[0-9a-f]{32}", made.stdout.strip())
    assert made.stderr.strip() == f"token for admin written to {(tmp_path / 'new' / 'modelgate.db').resolve()}"
