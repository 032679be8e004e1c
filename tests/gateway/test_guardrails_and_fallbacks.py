"""Guardrails and fallbacks switched on through PUT .../ai-gateway, against live servers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer, create_endpoint, external_chat_config


def _chat(client: httpx.Client, name: str, text: str) -> httpx.Response:
    return client.post(f"/serving-endpoints/{name}/invocations", json={"messages": [{"role": "user", "content": text}]})


def _gateway(client: httpx.Client, name: str, config: dict[str, object]) -> None:
    resp = client.put(f"/api/2.0/serving-endpoints/{name}/ai-gateway", json=config)
    assert resp.status_code == 200, resp.text


def test_input_pii_block_and_mask(server: LiveServer, upstream: FakeUpstreamThread) -> None:
    with server.client() as c:
        create_endpoint(c, "gr-block", external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
        create_endpoint(c, "gr-mask", external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
        _gateway(
            c,
            "gr-block",
            {
                "guardrails": {"input": {"pii": {"behavior": "BLOCK"}, "invalid_keywords": ["forbidden"]}},
                "inference_table_config": {"catalog_name": "main", "schema_name": "gr", "enabled": True},
            },
        )
        _gateway(
            c,
            "gr-mask",
            {
                "guardrails": {"input": {"pii": {"behavior": "MASK"}}},
                "inference_table_config": {"catalog_name": "main", "schema_name": "gr", "enabled": True},
            },
        )
        upstream.reset()
        blocked = _chat(c, "gr-block", "my mail is bob@example.com")
        assert blocked.status_code == 400
        assert blocked.json()["error_code"] == "BAD_REQUEST"
        assert "input guardrail 'pii'" in blocked.json()["message"]
        assert "EMAIL_ADDRESS" in blocked.json()["message"]
        assert "bob@example.com" not in blocked.text
        assert upstream.requests == []  # nothing reached the model
        # A refused request is still logged (status 400), but the table never holds the PII that was caught,
        # whichever guardrail refused it.
        keyword = _chat(c, "gr-block", "forbidden words from bob@example.com")
        assert keyword.status_code == 400 and "'invalid_keywords'" in keyword.json()["message"]
        refused = _inference_rows(c, "gr-block", 2)
        assert [row["status_code"] for row in refused] == [400, 400]
        for row in refused:
            assert "bob@example.com" not in str(row["request"]) and "[EMAIL_ADDRESS]" in str(row["request"])
        masked = _chat(c, "gr-mask", "card 4111 1111 1111 1111 please")
        assert masked.status_code == 200
        assert upstream.requests[-1].json["messages"][0]["content"] == "card [CREDIT_CARD] please"
        # The inference table keeps what the model was sent, not the card number.
        rows = _inference_rows(c, "gr-mask", 1)
        assert "4111" not in str(rows[0]["request"]) and "[CREDIT_CARD]" in str(rows[0]["request"])
        assert _chat(c, "gr-block", "nothing personal here").status_code == 200
        metrics = c.get("/api/2.0/serving-endpoints/gr-block/metrics").text
    assert 'modelgate_guardrail_blocks_total{endpoint="gr-block",side="input"} 2.0' in metrics  # pii, keyword


def test_invalid_keywords_and_output_masking(server: LiveServer, upstream: FakeUpstreamThread) -> None:
    with server.client() as c:
        create_endpoint(c, "gr-out", external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
        _gateway(
            c,
            "gr-out",
            {
                "guardrails": {
                    "input": {"invalid_keywords": ["Project Falcon"]},
                    "output": {"pii": {"behavior": "MASK"}},
                },
                "inference_table_config": {"catalog_name": "main", "schema_name": "gr", "enabled": True},
            },
        )
        refused = _chat(c, "gr-out", "tell me about project falcon")
        assert refused.status_code == 400
        assert "'invalid_keywords'" in refused.json()["message"]
        # The fake echoes the question, so the answer carries the email; the output guardrail masks it.
        answer = _chat(c, "gr-out", "write to ops@example.com")
        assert answer.status_code == 200
        assert answer.json()["choices"][0]["message"]["content"] == "echo: write to [EMAIL_ADDRESS]"
        # The inference table keeps the answer as the client got it: byte for byte, masked.
        rows = _inference_rows(c, "gr-out", 2)
        kept = next(row for row in rows if row["status_code"] == 200)
        assert kept["response"] == answer.text
        assert "ops@example.com" not in str(kept["response"])  # (the request, unguarded on input, has it)


def test_output_block_keeps_the_refused_answer_out_of_the_table(
    server: LiveServer, upstream: FakeUpstreamThread
) -> None:
    with server.client() as c:
        create_endpoint(c, "gr-out-block", external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
        _gateway(
            c,
            "gr-out-block",
            {
                "guardrails": {"output": {"pii": {"behavior": "BLOCK"}}},
                "inference_table_config": {"catalog_name": "main", "schema_name": "gr", "enabled": True},
            },
        )
        # The fake echoes the question, so the answer carries the phone number and the guardrail refuses it.
        refused = _chat(c, "gr-out-block", "call me on +1 415 555 0100")
        assert refused.status_code == 400
        assert "output guardrail 'pii'" in refused.json()["message"]
        (row,) = _inference_rows(c, "gr-out-block", 1)
        assert row["status_code"] == 400
        assert row["response"] is None  # the refused answer is not kept


def _inference_rows(client: httpx.Client, name: str, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 15
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline and len(rows) < count:
        rows = client.get(f"/api/2.0/serving-endpoints/{name}/inference-table").json()["rows"]
        time.sleep(0.2)
    assert len(rows) == count, rows
    return rows


def test_topics_and_safety_need_their_endpoints(server: LiveServer, upstream: FakeUpstreamThread) -> None:
    with server.client() as c:
        create_endpoint(c, "gr-cfg", external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
        resp = c.put(
            "/api/2.0/serving-endpoints/gr-cfg/ai-gateway",
            json={"guardrails": {"input": {"valid_topics": ["cooking"]}}},
        )
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "MODELGATE_GUARDRAIL_EMBEDDING_ENDPOINT" in resp.json()["message"]


@pytest.fixture(scope="module")
def judged_server(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstreamThread) -> Iterator[LiveServer]:
    env = {"MODELGATE_GUARDRAIL_EMBEDDING_ENDPOINT": "gr-embed", "MODELGATE_GUARDRAIL_SAFETY_ENDPOINT": "gr-judge"}
    with LiveServer(tmp_path_factory.mktemp("mg-guard"), env=env) as live, live.client() as c:
        create_endpoint(
            c,
            "gr-embed",
            external_chat_config(
                upstream.base_url, "text-embedding-3-small", task="llm/v1/embeddings", api_key=UPSTREAM_KEY
            ),
        )
        create_endpoint(c, "gr-judge", external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
        yield live


def test_valid_topics_by_embedding_similarity(judged_server: LiveServer, upstream: FakeUpstreamThread) -> None:
    with judged_server.client() as c:
        create_endpoint(c, "gr-topics", external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
        _gateway(c, "gr-topics", {"guardrails": {"input": {"valid_topics": ["baking bread at home"]}}})
        # The fake embeds text deterministically: the same text is similarity 1, unrelated text is low.
        assert _chat(c, "gr-topics", "baking bread at home").status_code == 200
        off_topic = _chat(c, "gr-topics", "quarterly tax filing deadlines for corporations")
        assert off_topic.status_code == 400
        assert "'valid_topics'" in off_topic.json()["message"]


def test_safety_judge(judged_server: LiveServer, upstream: FakeUpstreamThread) -> None:
    with judged_server.client() as c:
        create_endpoint(c, "gr-safe", external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
        _gateway(c, "gr-safe", {"guardrails": {"input": {"safety": True}}})
        upstream.reset()
        assert _chat(c, "gr-safe", "a friendly question").status_code == 200
        judge_call = next(r for r in upstream.requests if "safety classifier" in str(r.json))
        assert judge_call.json["messages"][1] == {"role": "user", "content": "a friendly question"}
        # The fake judge echoes its input, so text containing the verdict word is judged unsafe.
        refused = _chat(c, "gr-safe", "this is UNSAFE content")
        assert refused.status_code == 400
        assert "'safety'" in refused.json()["message"]


def test_fallback_moves_to_the_next_entity(server: LiveServer, upstream: FakeUpstreamThread) -> None:
    failing = external_chat_config(upstream.base_url, "fail-503", api_key=UPSTREAM_KEY, entity_name="primary")
    healthy = external_chat_config(upstream.base_url, "gpt-4o", api_key=UPSTREAM_KEY, entity_name="backup")
    routes = {
        "routes": [
            {"served_entity_name": "primary", "traffic_percentage": 100},
            {"served_entity_name": "backup", "traffic_percentage": 0},
        ]
    }
    with server.client() as c:
        resp = c.post(
            "/api/2.0/serving-endpoints",
            json={"name": "gr-fallback", "config": {"served_entities": [failing, healthy], "traffic_config": routes}},
        )
        assert resp.status_code == 200, resp.text
        without = _chat(c, "gr-fallback", "hi")
        assert without.status_code == 503
        _gateway(c, "gr-fallback", {"fallback_config": {"enabled": True}})
        with_fallback = _chat(c, "gr-fallback", "hi")
        assert with_fallback.status_code == 200
        assert with_fallback.headers["served-model-name"] == "backup"
        streamed = c.post(
            "/serving-endpoints/gr-fallback/invocations",
            json={"messages": [{"role": "user", "content": "hi"}], "stream": True},
        )
        assert streamed.status_code == 200
        assert streamed.headers["served-model-name"] == "backup"
        # All entities failing: the last error comes back.
        resp = c.put(
            "/api/2.0/serving-endpoints/gr-fallback/config",
            json={
                "served_entities": [
                    failing,
                    external_chat_config(upstream.base_url, "fail-429", api_key=UPSTREAM_KEY, entity_name="backup"),
                ],
                "traffic_config": routes,
            },
        )
        assert resp.status_code == 200
        both_fail = _chat(c, "gr-fallback", "hi")
        assert both_fail.status_code == 429
        assert both_fail.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"


def test_fallback_does_not_wait_for_the_retry_budget(server: LiveServer, upstream: FakeUpstreamThread) -> None:
    """A failing entity with a long retry budget hands over at once when another entity can answer."""
    failing = external_chat_config(upstream.base_url, "fail-503", api_key=UPSTREAM_KEY, entity_name="slow-primary")
    failing["external_model"]["openai_config"]["retry_budget_s"] = 20
    healthy = external_chat_config(upstream.base_url, "gpt-4o", api_key=UPSTREAM_KEY, entity_name="backup")
    routes = {
        "routes": [
            {"served_entity_name": "slow-primary", "traffic_percentage": 100},
            {"served_entity_name": "backup", "traffic_percentage": 0},
        ]
    }
    with server.client() as c:
        body = {"name": "gr-fallback-fast", "config": {"served_entities": [failing, healthy], "traffic_config": routes}}
        assert c.post("/api/2.0/serving-endpoints", json=body).status_code == 200
        _gateway(c, "gr-fallback-fast", {"fallback_config": {"enabled": True}})
        started = time.monotonic()
        resp = _chat(c, "gr-fallback-fast", "hi")
        elapsed = time.monotonic() - started
    assert resp.status_code == 200
    assert resp.headers["served-model-name"] == "backup"
    assert elapsed < 3, f"fell back only after {elapsed:.1f} s"
