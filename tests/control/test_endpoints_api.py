"""Control plane /api/2.0/serving-endpoints against live servers (reference §1.2, §5; clients.md §0, §2.2).

Every route is exercised with and without the trailing slash: mlflow's deployment client adds it, the
Databricks SDK does not (clients.md §0 item 2).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.control.checks import API, UserTokens, assert_error, chat_body, unique_name
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer, create_endpoint, external_chat_config

SLASHES = pytest.mark.parametrize("slash", ["", "/"], ids=["no-slash", "slash"])


def _entity(upstream: FakeUpstreamThread, name: str | None = None, model: str = "gpt-4o-mini") -> dict[str, Any]:
    return external_chat_config(upstream.base_url, model, api_key=UPSTREAM_KEY, entity_name=name)


def _sample_line(metrics_text: str, family: str, endpoint: str) -> str | None:
    for line in metrics_text.splitlines():
        if line.startswith(family + "{") and f'endpoint="{endpoint}"' in line:
            return line
    return None


@SLASHES
def test_create_returns_detailed_ready_endpoint(
    any_server: LiveServer, upstream: FakeUpstreamThread, slash: str
) -> None:
    name = unique_name("cp-create")
    body = {
        "name": name,
        "config": {"served_entities": [_entity(upstream, "primary")]},
        "tags": [{"key": "team", "value": "ml"}],
        "description": "made by a test",
    }
    with any_server.client() as c:
        resp = c.post(API + slash, json=body)
    assert resp.status_code == 200, resp.text
    ep = resp.json()
    assert ep["name"] == name
    assert re.fullmatch(r"[0-9a-f]{32}", ep["id"]), ep["id"]
    assert ep["state"] == {"ready": "READY", "config_update": "NOT_UPDATING"}
    assert ep["task"] == "llm/v1/chat"
    assert ep["permission_level"] == "CAN_MANAGE"
    assert ep["creator"] == "admin"
    assert ep["description"] == "made by a test"
    assert ep["tags"] == [{"key": "team", "value": "ml"}]
    assert ep["config"]["config_version"] == 1
    entities = ep["config"]["served_entities"]
    assert [e["name"] for e in entities] == ["primary"]
    assert entities[0]["state"]["deployment"] == "DEPLOYMENT_READY"
    assert entities[0]["external_model"]["name"] == "gpt-4o-mini"
    assert entities[0]["external_model"]["provider"] == "openai"
    routes = ep["config"]["traffic_config"]["routes"]
    assert routes == [{"served_entity_name": "primary", "traffic_percentage": 100}]
    assert sum(r["traffic_percentage"] for r in routes) == 100
    # The plaintext key is encrypted at rest and never echoed.
    assert UPSTREAM_KEY not in resp.text
    assert "openai_api_key_plaintext" not in entities[0]["external_model"]["openai_config"]


def test_create_duplicate_is_rejected(any_server: LiveServer, upstream: FakeUpstreamThread) -> None:
    name = unique_name("cp-dup")
    with any_server.client() as c:
        first = create_endpoint(c, name, _entity(upstream))
        resp = c.post(API, json={"name": name, "config": {"served_entities": [_entity(upstream)]}})
        assert_error(resp, 400, "RESOURCE_ALREADY_EXISTS", contains=name)
        # The first endpoint is untouched.
        assert c.get(f"{API}/{name}").json()["id"] == first["id"]


@SLASHES
def test_get_list_delete(any_server: LiveServer, upstream: FakeUpstreamThread, slash: str) -> None:
    name = unique_name("cp-gld")
    with any_server.client() as c:
        created = create_endpoint(c, name, _entity(upstream))
        got = c.get(f"{API}/{name}{slash}")
        assert got.status_code == 200, got.text
        assert got.json()["id"] == created["id"]
        assert got.json()["config"] == created["config"]

        listed = c.get(API + slash)
        assert listed.status_code == 200, listed.text
        items = {e["name"]: e for e in listed.json()["endpoints"]}
        assert name in items
        item = items[name]
        assert item["id"] == created["id"]
        assert item["state"] == {"ready": "READY", "config_update": "NOT_UPDATING"}
        assert item["task"] == "llm/v1/chat"
        # List items carry the summary config only (reference §5.1).
        assert "traffic_config" not in item["config"]
        assert "permission_level" not in item

        deleted = c.delete(f"{API}/{name}{slash}")
        assert deleted.status_code == 200
        assert deleted.headers["content-type"].startswith("application/json")
        assert deleted.content == b"{}"  # mlflow calls .json() on it (clients.md §0 item 6)

        assert_error(c.get(f"{API}/{name}"), 404, "RESOURCE_DOES_NOT_EXIST", contains=name)
        assert_error(c.delete(f"{API}/{name}"), 404, "RESOURCE_DOES_NOT_EXIST")
        assert name not in {e["name"] for e in c.get(API).json()["endpoints"]}
        # The data plane forgets it at once too.
        assert_error(c.post(f"/serving-endpoints/{name}/invocations", json=chat_body()), 404, "RESOURCE_DOES_NOT_EXIST")


@SLASHES
def test_list_is_an_object_with_endpoints_even_when_empty(
    small_server: LiveServer, user_tokens: UserTokens, slash: str
) -> None:
    with small_server.client() as admin:
        resp = admin.get(API + slash)
    assert resp.status_code == 200
    assert resp.json() == {"endpoints": []}
    with small_server.client(user_tokens.get(small_server, "nobody@example.com")) as nobody:
        resp = nobody.get(API + slash)
    assert resp.status_code == 200
    assert resp.json() == {"endpoints": []}


@SLASHES
def test_update_config_bumps_version_and_validates_traffic(
    any_server: LiveServer, upstream: FakeUpstreamThread, slash: str
) -> None:
    name = unique_name("cp-cfg")
    with any_server.client() as c:
        create_endpoint(c, name, _entity(upstream, "a"))
        url = f"{API}/{name}/config{slash}"
        two = [_entity(upstream, "a"), _entity(upstream, "b", model="gpt-4o")]
        split = {"routes": [{"served_entity_name": "a", "traffic_percentage": 70},
                            {"served_entity_name": "b", "traffic_percentage": 30}]}  # fmt: skip
        resp = c.put(url, json={"served_entities": two, "traffic_config": split})
        assert resp.status_code == 200, resp.text
        ep = resp.json()
        assert ep["name"] == name
        assert ep["config"]["config_version"] == 2
        assert [e["name"] for e in ep["config"]["served_entities"]] == ["a", "b"]
        assert ep["config"]["traffic_config"] == split
        assert ep["state"]["config_update"] == "NOT_UPDATING"

        bad_sum = {"routes": [{"served_entity_name": "a", "traffic_percentage": 70},
                              {"served_entity_name": "b", "traffic_percentage": 20}]}  # fmt: skip
        assert_error(
            c.put(url, json={"served_entities": two, "traffic_config": bad_sum}),
            400,
            "INVALID_PARAMETER_VALUE",
            contains="sum to 100",
        )
        unknown = {"routes": [{"served_entity_name": "nope", "traffic_percentage": 100}]}
        assert_error(
            c.put(url, json={"served_entities": two, "traffic_config": unknown}),
            400,
            "INVALID_PARAMETER_VALUE",
            contains="nope",
        )
        # Rejected updates change nothing.
        after = c.get(f"{API}/{name}").json()
        assert after["config"]["config_version"] == 2
        assert after["config"]["traffic_config"] == split

        # Without traffic_config a single entity takes everything again.
        resp = c.put(url, json={"served_entities": [_entity(upstream, "b", model="gpt-4o")]})
        assert resp.status_code == 200, resp.text
        assert resp.json()["config"]["config_version"] == 3
        assert resp.json()["config"]["traffic_config"] == {
            "routes": [{"served_entity_name": "b", "traffic_percentage": 100}]
        }
        assert_error(c.put(f"{API}/missing-{name}/config", json={"served_entities": two}), 404,
                     "RESOURCE_DOES_NOT_EXIST")  # fmt: skip


AI_GATEWAY = {
    "usage_tracking_config": {"enabled": True},
    "inference_table_config": {
        "catalog_name": "main",
        "schema_name": "serving",
        "table_name_prefix": "cp_gw",
        "enabled": False,
    },
    "rate_limits": [{"calls": 1000, "key": "user", "renewal_period": "minute"}],
    "guardrails": {"input": {"pii": {"behavior": "NONE"}}, "output": {"safety": False}},
    "fallback_config": {"enabled": True},
}


@SLASHES
def test_put_ai_gateway_echoes_and_get_shows_it(
    any_server: LiveServer, upstream: FakeUpstreamThread, slash: str
) -> None:
    name = unique_name("cp-gw")
    with any_server.client() as c:
        create_endpoint(c, name, _entity(upstream))
        resp = c.put(f"{API}/{name}/ai-gateway{slash}", json=AI_GATEWAY)
        assert resp.status_code == 200, resp.text
        assert resp.json() == AI_GATEWAY
        assert c.get(f"{API}/{name}").json()["ai_gateway"] == AI_GATEWAY
        assert_error(
            c.put(f"{API}/{name}/ai-gateway", json={"rate_limits": [{"calls": 1, "renewal_period": "hour"}]}),
            400,
            "INVALID_PARAMETER_VALUE",
            contains="renewal_period",
        )
        assert c.get(f"{API}/{name}").json()["ai_gateway"] == AI_GATEWAY


@SLASHES
def test_put_rate_limits(any_server: LiveServer, upstream: FakeUpstreamThread, slash: str) -> None:
    name = unique_name("cp-rl")
    limits = [{"calls": 500, "key": "endpoint", "renewal_period": "minute"}]
    with any_server.client() as c:
        create_endpoint(c, name, _entity(upstream))
        resp = c.put(f"{API}/{name}/rate-limits{slash}", json={"rate_limits": limits})
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"rate_limits": limits}
        assert c.get(f"{API}/{name}").json()["ai_gateway"]["rate_limits"] == limits
        assert_error(
            c.put(f"{API}/{name}/rate-limits", json={"rate_limits": [{"renewal_period": "minute"}]}),
            400,
            "INVALID_PARAMETER_VALUE",
        )


@SLASHES
def test_patch_tags_adds_and_deletes(any_server: LiveServer, upstream: FakeUpstreamThread, slash: str) -> None:
    name = unique_name("cp-tags")
    with any_server.client() as c:
        create_endpoint(c, name, _entity(upstream), tags=[{"key": "keep", "value": "1"}])
        url = f"{API}/{name}/tags{slash}"
        resp = c.patch(url, json={"add_tags": [{"key": "project", "value": "test"}, {"key": "flag"}]})
        assert resp.status_code == 200, resp.text
        assert resp.json() == {
            "tags": [{"key": "keep", "value": "1"}, {"key": "project", "value": "test"}, {"key": "flag"}]
        }
        resp = c.patch(url, json={"delete_tags": ["keep", "flag"], "add_tags": [{"key": "project", "value": "v2"}]})
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"tags": [{"key": "project", "value": "v2"}]}
        assert c.get(f"{API}/{name}").json()["tags"] == [{"key": "project", "value": "v2"}]


@SLASHES
def test_openapi_document(any_server: LiveServer, upstream: FakeUpstreamThread, slash: str) -> None:
    name = unique_name("cp-oa")
    with any_server.client() as c:
        create_endpoint(c, name, _entity(upstream))
        resp = c.get(f"{API}/{name}/openapi{slash}", headers={"Accept": "text/plain"})  # what the SDK sends
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] == name
    assert doc["servers"] == [{"url": f"{any_server.url}/serving-endpoints/{name}"}]
    schema = doc["paths"]["/invocations"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["messages"]


@SLASHES
def test_metrics_count_queries(any_server: LiveServer, upstream: FakeUpstreamThread, slash: str) -> None:
    name = unique_name("cp-met")
    with any_server.client() as c:
        create_endpoint(c, name, _entity(upstream, "only"))
        before = c.get(f"{API}/{name}/metrics{slash}")
        assert before.status_code == 200
        assert before.headers["content-type"].startswith("text/plain")
        assert _sample_line(before.text, "modelgate_requests_total", name) is None

        answer = c.post(f"/serving-endpoints/{name}/invocations", json=chat_body("count me"))
        assert answer.status_code == 200, answer.text

        per_endpoint = c.get(f"{API}/{name}/metrics{slash}").text
    line = _sample_line(per_endpoint, "modelgate_requests_total", name)
    assert line == f'modelgate_requests_total{{endpoint="{name}",served_entity="only",status="200"}} 1.0'
    # The per-endpoint export holds this endpoint's samples only.
    samples = [ln for ln in per_endpoint.splitlines() if ln and not ln.startswith("#")]
    assert samples and all(f'endpoint="{name}"' in ln for ln in samples)

    everything = httpx.get(any_server.url + "/metrics", headers={"Authorization": f"Bearer {any_server.admin_token}"})
    assert everything.status_code == 200
    assert everything.headers["content-type"].startswith("text/plain")
    assert _sample_line(everything.text, "modelgate_requests_total", name) == line


@SLASHES
def test_served_model_logs(any_server: LiveServer, upstream: FakeUpstreamThread, slash: str) -> None:
    name = unique_name("cp-logs")
    with any_server.client() as c:
        create_endpoint(c, name, _entity(upstream, "ent"))
        for kind in ("logs", "build-logs"):
            resp = c.get(f"{API}/{name}/served-models/ent/{kind}{slash}")
            assert resp.status_code == 200, resp.text
            logs = resp.json()
            assert list(logs) == ["logs"]
            assert isinstance(logs["logs"], str)
            assert_error(
                c.get(f"{API}/{name}/served-models/other/{kind}{slash}"),
                404,
                "RESOURCE_DOES_NOT_EXIST",
                contains="other",
            )


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("DELETE", ""),
        ("PUT", "/ai-gateway"),
        ("PUT", "/rate-limits"),
        ("PATCH", "/tags"),
        ("GET", "/openapi"),
        ("GET", "/metrics"),
        ("GET", "/served-models/x/logs"),
    ],
)
def test_routes_on_a_missing_endpoint(any_server: LiveServer, method: str, suffix: str) -> None:
    body: dict[str, Any] = {"add_tags": []} if suffix == "/tags" else {}
    with any_server.client() as c:
        resp = c.request(method, f"{API}/no-such-endpoint-{method.lower()}{suffix}", json=body)
    assert_error(resp, 404, "RESOURCE_DOES_NOT_EXIST", contains="no-such-endpoint")
