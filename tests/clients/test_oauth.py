"""OAuth M2M on the wire: service principals over SCIM and the CLI, secrets, the token endpoint, and JWT checks."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.clients.conftest import ServicePrincipal, make_service_principal
from tests.support.live import LiveServer

SCIM = "/api/2.0/preview/scim/v2/ServicePrincipals"


def _token(server: LiveServer, sp: ServicePrincipal, **form: str) -> httpx.Response:
    data = {"grant_type": "client_credentials", "scope": "all-apis", **form}
    return httpx.post(server.url + "/oidc/v1/token", data=data, auth=(sp.client_id, sp.secret))


def _who(server: LiveServer, token: str) -> httpx.Response:
    return httpx.get(server.url + "/api/2.0/serving-endpoints", headers={"Authorization": f"Bearer {token}"})


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def test_token_endpoint_issues_a_databricks_shaped_jwt(server: LiveServer) -> None:
    sp = make_service_principal(server, "oauth-shape")
    resp = _token(server, sp)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 3600, "all-apis")
    header = jwt.get_unverified_header(body["access_token"])
    assert (header["alg"], header["typ"]) == ("RS256", "at+jwt")
    claims = _claims(body["access_token"])
    workspace_id = httpx.get(server.url + "/.well-known/databricks-config").json()["workspace_id"]
    assert claims["client_id"] == claims["sub"] == sp.client_id
    assert (claims["iss"], claims["aud"], claims["scope"]) == (server.url + "/oidc", workspace_id, "all-apis")
    assert claims["exp"] == claims["iat"] + 3600  # type: ignore[operator]
    assert _who(server, body["access_token"]).status_code == 200
    # The token verifies against the published key set.
    jwks = httpx.get(server.url + "/oidc/v1/keys").json()
    key = jwt.PyJWK(jwks["keys"][0]).key
    assert jwt.decode(body["access_token"], key, algorithms=["RS256"], audience=workspace_id)["sub"] == sp.client_id


@pytest.mark.parametrize(
    ("auth", "form", "content_type", "status", "error"),
    [
        ("wrong-secret", {"grant_type": "client_credentials"}, None, 401, "invalid_client"),
        ("none", {"grant_type": "client_credentials"}, None, 401, "invalid_client"),
        ("good", {"grant_type": "password"}, None, 400, "unsupported_grant_type"),
        ("good", {}, None, 400, "invalid_request"),
        ("good", {"grant_type": "client_credentials", "scope": "sql"}, None, 400, "invalid_scope"),
        ("good", {"grant_type": "client_credentials"}, "application/json", 400, "invalid_request"),
    ],
)
def test_token_endpoint_errors(
    server: LiveServer, auth: str, form: dict[str, str], content_type: str | None, status: int, error: str
) -> None:
    sp = make_service_principal(server, "oauth-errors")
    creds = {"good": (sp.client_id, sp.secret), "wrong-secret": (sp.client_id, "dose" + "0" * 64), "none": None}[auth]
    if content_type == "application/json":
        resp = httpx.post(server.url + "/oidc/v1/token", json=form, auth=creds)
    else:
        resp = httpx.post(server.url + "/oidc/v1/token", data=form, auth=creds)
    assert resp.status_code == status
    assert resp.headers["content-type"] == "application/json"
    assert resp.json()["error"] == error
    assert resp.json()["error_description"]


def test_client_secret_post_is_accepted(server: LiveServer) -> None:
    sp = make_service_principal(server, "oauth-post")
    form = {"grant_type": "client_credentials", "client_id": sp.client_id, "client_secret": sp.secret}
    resp = httpx.post(server.url + "/oidc/v1/token", data=form)
    assert resp.status_code == 200, resp.text


def _signed(claims: dict[str, object], key: object, kid: str = "x") -> str:
    return jwt.encode(claims, key, algorithm="RS256", headers={"typ": "at+jwt", "kid": kid})  # type: ignore[arg-type]


def test_expired_tampered_and_foreign_tokens_get_401(server: LiveServer) -> None:
    sp = make_service_principal(server, "oauth-bad-tokens")
    good = _token(server, sp).json()["access_token"]
    claims = _claims(good)
    header, _payload, signature = good.split(".")

    forged_claims = {**claims, "sub": "00000000-0000-0000-0000-000000000000"}
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).rstrip(b"=").decode()
    tampered = f"{header}.{forged_payload}.{signature}"
    foreign_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    foreign = _signed(claims, foreign_key)
    key_pem = (server.data_dir / "oauth_signing_key.pem").read_bytes()
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    own_key = load_pem_private_key(key_pem, password=None)
    now = int(time.time())
    expired = _signed({**claims, "iat": now - 7200, "exp": now - 3600}, own_key)
    wrong_audience = _signed({**claims, "aud": "123"}, own_key)
    unsigned = jwt.encode(claims, None, algorithm="none")

    for bad in (tampered, foreign, expired, wrong_audience, unsigned, good + "x"):
        resp = _who(server, bad)
        assert resp.status_code == 401, bad
        assert resp.json()["error_code"] == "UNAUTHENTICATED"
    assert _who(server, good).status_code == 200


def test_service_principals_over_scim_and_secrets(server: LiveServer) -> None:
    user_token = server.create_token("scim-user@example.com")
    with server.client() as admin, server.client(user_token) as user:
        _scim_round_trip(server, admin, user)


def _scim_round_trip(server: LiveServer, admin: httpx.Client, user: httpx.Client) -> None:
    created = admin.post(SCIM, json={"displayName": "scim-bot", "schemas": [SCIM_SCHEMA]})
    assert created.status_code == 201
    sp = created.json()
    assert sp["displayName"] == "scim-bot" and sp["active"] is True and len(sp["applicationId"]) == 36
    assert admin.get(f"{SCIM}/{sp['id']}").json() == sp
    listed = admin.get(SCIM, params={"filter": 'displayName eq "scim-bot"'}).json()
    assert [r["id"] for r in listed["Resources"]] == [sp["id"]] and listed["totalResults"] == 1
    page = admin.get(SCIM, params={"startIndex": 10_000, "count": 5}).json()
    assert page["Resources"] == []

    secrets_url = f"/api/2.0/accounts/servicePrincipals/{sp['id']}/credentials/secrets"
    made = admin.post(secrets_url, json={"lifetime": "3600s"})
    assert made.status_code == 200
    secret = made.json()
    assert secret["secret"].startswith("dose") and secret["status"] == "ACTIVE"
    infos = admin.get(secrets_url).json()["secrets"]
    assert [i["id"] for i in infos] == [secret["id"]]
    assert all("secret" not in i for i in infos)
    creds = ServicePrincipal(sp["id"], sp["applicationId"], secret["secret"])
    token = _token(server, creds).json()["access_token"]

    # Non-admins cannot manage service principals, and service principals cannot either.
    assert user.get(SCIM).status_code == 403
    assert user.post(SCIM, json={"displayName": "x"}).json()["error_code"] == "PERMISSION_DENIED"
    assert _who(server, token).status_code == 200
    as_sp = httpx.get(server.url + SCIM, headers={"Authorization": f"Bearer {token}"})
    assert as_sp.status_code == 403

    assert admin.delete(f"{secrets_url}/{secret['id']}").json() == {}
    assert _token(server, creds).status_code == 401
    assert admin.delete(f"{secrets_url}/{secret['id']}").status_code == 404
    assert admin.delete(f"{SCIM}/{sp['id']}").json() == {}
    assert admin.get(f"{SCIM}/{sp['id']}").json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert _who(server, token).status_code == 401  # its access tokens die with it


@pytest.mark.parametrize(
    "body",
    [{}, {"displayName": ""}, {"displayName": "x", "applicationId": "not-a-uuid"}, {"displayName": "x", "bogus": 1}],
)
def test_bad_service_principal_requests_are_400(server: LiveServer, body: dict[str, object]) -> None:
    with server.client() as admin:
        resp = admin.post(SCIM, json=body)
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"


SCIM_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "modelgate", "service-principals", *args, "--data-dir", str(data_dir)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def test_cli_and_signing_key_survive_a_restart(tmp_path: Path) -> None:
    with LiveServer(tmp_path / "data") as live:
        made = _cli(live.data_dir, "create", "cli-bot")
        assert made.returncode == 0, made.stderr
        values = dict(line.split("=", 1) for line in made.stdout.splitlines())
        sp = ServicePrincipal(values["id"], values["DATABRICKS_CLIENT_ID"], values["DATABRICKS_CLIENT_SECRET"])
        listed = _cli(live.data_dir, "list").stdout
        assert f"{sp.scim_id}\t{sp.client_id}\tcli-bot\tactive=true" in listed
        token = _token(live, sp).json()["access_token"]
        assert _who(live, token).status_code == 200
    with LiveServer(tmp_path / "data", admin_token=live.admin_token) as again:
        assert _who(again, token).status_code == 200  # same key after the restart
        deleted = _cli(again.data_dir, "delete", sp.client_id)
        assert deleted.returncode == 0 and deleted.stdout.strip() == f"deleted {sp.client_id}"
        assert _token(again, sp).status_code == 401
        assert _cli(again.data_dir, "delete", sp.client_id).returncode == 1


def test_a_service_principal_holds_its_groups_grants(server: LiveServer) -> None:
    """An OAuth token carries the service principal's groups: a group's READ on a secret scope lets it
    reference the scope, and the group's CAN_QUERY lets it query, as for a user."""
    sp = make_service_principal(server, "grouped-sp")
    scope, group = f"sp-scope-{sp.scim_id}", f"sp-group-{sp.scim_id}"
    with server.client() as admin:
        members = [{"value": sp.scim_id}]
        assert (
            admin.post("/api/2.0/preview/scim/v2/Groups", json={"displayName": group, "members": members}).status_code
            == 201
        )
        admin.post("/api/2.0/secrets/scopes/create", json={"scope": scope})
        admin.post("/api/2.0/secrets/put", json={"scope": scope, "key": "k", "string_value": "sk-sp"})
    token = _token(server, sp).json()["access_token"]
    ref = f"{{{{secrets/{scope}/k}}}}"
    openai_config = {"openai_api_base": "http://127.0.0.1:9/v1", "openai_api_key": ref}
    entity = {
        "external_model": {"name": "m", "provider": "openai", "task": "llm/v1/chat", "openai_config": openai_config}
    }
    body = {"name": f"sp-ref-{sp.scim_id}"[:60], "config": {"served_entities": [entity]}}
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as c:
        refused = c.post("/api/2.0/serving-endpoints", json=body)
        assert refused.status_code == 403, refused.text
        with server.client() as admin:
            grant = {"scope": scope, "principal": group, "permission": "READ"}
            assert admin.post("/api/2.0/secrets/acls/put", json=grant).json() == {}
        created = c.post("/api/2.0/serving-endpoints", json=body)
        assert created.status_code == 200, created.text
