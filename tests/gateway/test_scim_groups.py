"""SCIM users and groups, and what a group grants: endpoint permissions and per-group rate limits."""

from __future__ import annotations

import time

from tests.conftest import UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer, create_endpoint, external_chat_config

SCIM = "/api/2.0/preview/scim/v2"
BODY = {"messages": [{"role": "user", "content": "hi"}]}


def test_users_groups_and_membership(any_server: LiveServer, upstream: FakeUpstreamThread) -> None:
    carol_token = any_server.create_token("scim-carol@example.com")
    with any_server.client() as admin, any_server.client(carol_token) as carol:
        users = admin.get(f"{SCIM}/Users", params={"filter": 'userName eq "scim-carol@example.com"'}).json()
        assert users["totalResults"] == 1
        carol_id = users["Resources"][0]["id"]
        created = admin.post(f"{SCIM}/Groups", json={"displayName": "scim-team", "members": [{"value": carol_id}]})
        assert created.status_code == 201, created.text
        group = created.json()
        assert group["members"] == [{"value": carol_id, "display": "scim-carol@example.com"}]
        assert admin.post(f"{SCIM}/Groups", json={"displayName": "scim-team"}).status_code == 400
        assert carol.post(f"{SCIM}/Groups", json={"displayName": "nope"}).status_code == 403
        me = carol.get(f"{SCIM}/Me").json()
        assert me["userName"] == "scim-carol@example.com"
        assert [g["display"] for g in me["groups"]] == ["scim-team"]

        # A grant to the group lets its member query.
        create_endpoint(admin, "scim-ep", external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
        ep_id = admin.get("/api/2.0/serving-endpoints/scim-ep").json()["id"]
        assert carol.post("/serving-endpoints/scim-ep/invocations", json=BODY).status_code in (403, 404)
        grant = {"access_control_list": [{"group_name": "scim-team", "permission_level": "CAN_QUERY"}]}
        assert admin.patch(f"/api/2.0/permissions/serving-endpoints/{ep_id}", json=grant).status_code == 200
        assert carol.post("/serving-endpoints/scim-ep/invocations", json=BODY).status_code == 200

        # Removing her from the group takes the grant away (within the token cache's few seconds elsewhere).
        patch = {"Operations": [{"op": "remove", "path": f'members[value eq "{carol_id}"]'}]}
        assert admin.patch(f"{SCIM}/Groups/{group['id']}", json=patch).json()["members"] == []
        assert carol.post("/serving-endpoints/scim-ep/invocations", json=BODY).status_code in (403, 404)
        assert admin.delete(f"{SCIM}/Groups/{group['id']}").status_code == 204
        assert admin.get(f"{SCIM}/Groups/{group['id']}").status_code == 404


def test_user_group_rate_limit_is_shared_by_members(server: LiveServer, upstream: FakeUpstreamThread) -> None:
    tokens = [server.create_token(f"rlg-{n}@example.com") for n in ("dan", "eve")]
    with server.client() as admin:
        ids = [
            admin.get(f"{SCIM}/Users", params={"filter": f'userName eq "rlg-{n}@example.com"'}).json()["Resources"][0][
                "id"
            ]
            for n in ("dan", "eve")
        ]
        admin.post(f"{SCIM}/Groups", json={"displayName": "rlg-team", "members": [{"value": i} for i in ids]})
        create_endpoint(admin, "rlg-ep", external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
        ep_id = admin.get("/api/2.0/serving-endpoints/rlg-ep").json()["id"]
        admin.patch(
            f"/api/2.0/permissions/serving-endpoints/{ep_id}",
            json={"access_control_list": [{"group_name": "users", "permission_level": "CAN_QUERY"}]},
        )
        resp = admin.put(
            "/api/2.0/serving-endpoints/rlg-ep/ai-gateway",
            json={
                "rate_limits": [{"calls": 3, "key": "user_group", "principal": "rlg-team", "renewal_period": "minute"}]
            },
        )
        assert resp.status_code == 200
    if time.time() % 60 > 50:
        time.sleep(60 - time.time() % 60 + 0.05)
    with server.client(tokens[0]) as dan, server.client(tokens[1]) as eve:
        codes = [c.post("/serving-endpoints/rlg-ep/invocations", json=BODY).status_code for c in (dan, eve, dan, eve)]
    assert codes == [200, 200, 200, 429]
