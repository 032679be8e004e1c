"""Traffic split between served entities, and the served-model route that bypasses it."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.serving.support import external_entity, requests_with
from tests.support.live import LiveServer

SPLIT_REQUESTS = 200


def two_entity_endpoint(
    server: LiveServer, upstream: FakeUpstreamThread, name: str, small_pct: int, large_pct: int
) -> dict[str, Any]:
    """Endpoint `name` with entities `small` (gpt-4o-mini) and `large` (gpt-4o) at the given traffic split."""
    traffic = {
        "routes": [
            {"served_entity_name": "small", "traffic_percentage": small_pct},
            {"served_entity_name": "large", "traffic_percentage": large_pct},
        ]
    }
    entities = [
        external_entity(upstream.base_url, "gpt-4o-mini", name="small"),
        external_entity(upstream.base_url, "gpt-4o", name="large"),
    ]
    body = {"name": name, "config": {"served_entities": entities, "traffic_config": traffic}}
    with server.client() as c:
        resp = c.post("/api/2.0/serving-endpoints", json=body)
    assert resp.status_code == 200, resp.text
    config: dict[str, Any] = resp.json()["config"]
    return config


def chat_body(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def test_traffic_split_80_20(server: LiveServer, upstream: FakeUpstreamThread, ep_name: Callable[..., str]) -> None:
    name = ep_name()
    two_entity_endpoint(server, upstream, name, 80, 20)
    marker = f"split marker {name}"
    served: Counter[str] = Counter()
    with server.client() as c:
        for _ in range(SPLIT_REQUESTS):
            resp = c.post(f"/serving-endpoints/{name}/invocations", json=chat_body(marker))
            assert resp.status_code == 200, resp.text
            served[resp.headers["served-model-name"]] += 1
            model = resp.json()["model"]
            assert model == {"small": "gpt-4o-mini", "large": "gpt-4o"}[resp.headers["served-model-name"]]
    assert set(served) == {"small", "large"}
    # 4.5 standard deviations of Binomial(200, 0.8): about 12.7 points; a false alarm is a one-in-100,000 event.
    tolerance = 4.5 * math.sqrt(SPLIT_REQUESTS * 0.8 * 0.2)
    assert abs(served["small"] - 0.8 * SPLIT_REQUESTS) <= tolerance, served
    # What the upstream saw agrees with the headers, request for request.
    upstream_models = Counter(r.json["model"] for r in requests_with(upstream, marker))
    assert upstream_models == Counter({"gpt-4o-mini": served["small"], "gpt-4o": served["large"]})


def test_traffic_100_0_sends_everything_to_one(
    any_server: LiveServer, upstream: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    name = ep_name()
    config = two_entity_endpoint(any_server, upstream, name, 0, 100)
    assert config["traffic_config"]["routes"] == [
        {"served_entity_name": "small", "traffic_percentage": 0},
        {"served_entity_name": "large", "traffic_percentage": 100},
    ]
    marker = f"all to large {name}"
    with any_server.client() as c:
        served = Counter(
            c.post(f"/serving-endpoints/{name}/invocations", json=chat_body(marker)).headers["served-model-name"]
            for _ in range(30)
        )
    assert served == Counter({"large": 30})
    assert {r.json["model"] for r in requests_with(upstream, marker)} == {"gpt-4o"}


def test_served_model_route_bypasses_the_split(
    any_server: LiveServer, upstream: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    name = ep_name()
    two_entity_endpoint(any_server, upstream, name, 100, 0)
    marker = f"pinned to large {name}"
    with any_server.client() as c:
        for _ in range(20):
            resp = c.post(f"/serving-endpoints/{name}/served-models/large/invocations", json=chat_body(marker))
            assert resp.status_code == 200, resp.text
            assert resp.headers["served-model-name"] == "large"
            assert resp.json()["choices"][0]["message"]["content"] == "echo: " + marker
        resp = c.post(f"/serving-endpoints/{name}/served-models/small/invocations", json=chat_body(marker))
        assert resp.headers["served-model-name"] == "small"
    models = [r.json["model"] for r in requests_with(upstream, marker)]
    assert Counter(models) == Counter({"gpt-4o": 20, "gpt-4o-mini": 1})


def test_served_model_route_streams(
    server: LiveServer, upstream: FakeUpstreamThread, ep_name: Callable[..., str]
) -> None:
    name = ep_name()
    two_entity_endpoint(server, upstream, name, 100, 0)
    with server.client() as c:
        resp = c.post(
            f"/serving-endpoints/{name}/served-models/large/invocations",
            json={**chat_body("pinned stream"), "stream": True},
        )
    assert resp.status_code == 200, resp.text
    assert resp.headers["served-model-name"] == "large"
    assert '"model":"gpt-4o"' in resp.text


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_served_model_is_404(
    server: LiveServer, upstream: FakeUpstreamThread, ep_name: Callable[..., str], stream: bool
) -> None:
    name = ep_name()
    two_entity_endpoint(server, upstream, name, 50, 50)
    with server.client() as c:
        resp = c.post(
            f"/serving-endpoints/{name}/served-models/medium/invocations",
            json={**chat_body(f"nobody home {name}"), "stream": stream},
        )
    assert resp.status_code == 404
    body = resp.json()
    assert body["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert "medium" in body["message"]
    assert requests_with(upstream, f"nobody home {name}") == []


def test_unknown_endpoint_on_served_model_route_is_404(server: LiveServer) -> None:
    with server.client() as c:
        resp = c.post("/serving-endpoints/routing-no-such-endpoint/served-models/x/invocations", json=chat_body("x"))
    assert resp.status_code == 404
    assert resp.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
