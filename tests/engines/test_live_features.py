"""Structured outputs, function calling and reasoning on local models, through a running server and the
official OpenAI client; and the examples of docs/local_models.md, run as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import openai
import pytest
from pydantic import BaseModel, Field

from tests.control.checks import assert_error
from tests.engines.schema_subset import check
from tests.engines.test_live import wait_deployment
from tests.support.live import LiveServer

ROOT = Path(__file__).resolve().parents[2]
TOOLS_MODEL, THINKER = "databricks-my-llama", "databricks-my-qwen3"  # the names docs/local_models.md uses


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_tools: Path, tiny_thinker: Path) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("mg-local-features")
    models = [
        {"name": "my-llama", "task": "llm/v1/chat", "engine": "transformers", "path": str(tiny_tools),
         "endpoint": TOOLS_MODEL},
        {"name": "my-qwen3", "task": "llm/v1/chat", "engine": "transformers", "path": str(tiny_thinker),
         "endpoint": THINKER},
    ]  # fmt: skip
    config = data_dir / "modelgate.yaml"
    config.write_text(json.dumps({"models": models}))
    with LiveServer(data_dir, config_file=config, env={"HF_HUB_OFFLINE": "1"}, start_timeout=60) as live:
        with live.client() as c:
            for name in (TOOLS_MODEL, THINKER):
                assert wait_deployment(c, name) == {"deployment": "DEPLOYMENT_READY"}
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/serving-endpoints", api_key=server.admin_token, max_retries=0)


class Pet(BaseModel):
    kind: Literal["cat", "dog", "bird"]
    age: int = Field(ge=0, le=30)
    name: str = Field(max_length=6)


class GetWeather(BaseModel):
    city: str = Field(max_length=10)
    unit: Literal["c", "f"]


def test_parse_with_a_pydantic_model(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model=TOOLS_MODEL, messages=[{"role": "user", "content": "a pet"}], response_format=Pet, max_tokens=120, n=3
    )
    for choice in completion.choices:
        assert choice.finish_reason == "stop"
        assert isinstance(choice.message.parsed, Pet)


def test_json_schema_stream_over_http(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": 2,
              "maximum": 4}}, "required": ["ok", "n"]}  # fmt: skip
    stream = client.chat.completions.create(
        model=TOOLS_MODEL,
        messages=[{"role": "user", "content": "x"}],
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
        max_tokens=60,
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    check(json.loads(text), schema)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_bad_schema_is_a_databricks_400(server: LiveServer) -> None:
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "integr"}}},
    }
    with server.client() as c:
        resp = c.post(f"/serving-endpoints/{TOOLS_MODEL}/invocations", json=body)
    assert_error(resp, 400, "INVALID_PARAMETER_VALUE", contains='Unsupported type "integr"')


def test_forced_tool_call_and_the_round_trip(client: openai.OpenAI) -> None:
    tools = [openai.pydantic_function_tool(GetWeather)]
    messages: list[Any] = [{"role": "user", "content": "weather in Oslo?"}]
    first = client.chat.completions.create(model=TOOLS_MODEL, messages=messages, tools=tools, tool_choice="required",
                                           max_tokens=100)  # fmt: skip
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.id.startswith("call_") and call.type == "function" and call.function.name == "GetWeather"
    GetWeather.model_validate_json(call.function.arguments)
    messages += [choice.message, {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    second = client.chat.completions.create(model=TOOLS_MODEL, messages=messages, tools=tools, max_tokens=5,
                                            temperature=0)  # fmt: skip
    assert second.choices[0].finish_reason in ("length", "stop", "tool_calls")
    assert second.usage is not None and second.usage.prompt_tokens > first.usage.prompt_tokens  # type: ignore[union-attr]


def test_the_stream_helper_assembles_tool_calls(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model=TOOLS_MODEL,
        messages=[{"role": "user", "content": "weather?"}],
        tools=[openai.pydantic_function_tool(GetWeather)],
        tool_choice={"type": "function", "function": {"name": "GetWeather"}},
        max_tokens=100,
    ) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.done" in events
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert isinstance(call.function.parsed_arguments, GetWeather)


def test_reasoning_over_http(server: LiveServer) -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 12, "temperature": 0,
            "thinking": {"type": "enabled", "budget_tokens": 4}}  # fmt: skip
    with server.client() as c:
        resp = c.post(f"/serving-endpoints/{THINKER}/invocations", json=body)
        assert resp.status_code == 200, resp.text
        reasoning, text = resp.json()["choices"][0]["message"]["content"]
        assert reasoning["type"] == "reasoning" and reasoning["summary"][0]["type"] == "summary_text"
        assert reasoning["summary"][0]["text"] and text["type"] == "text" and text["text"]
        with c.stream("POST", f"/serving-endpoints/{THINKER}/invocations", json={**body, "stream": True}) as s:
            events = [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: {")]
    contents = [e["choices"][0]["delta"].get("content") for e in events if e["choices"]]
    thought = "".join(c[0]["summary"][0]["text"] for c in contents if isinstance(c, list))
    answer = "".join(c for c in contents if isinstance(c, str))
    assert (thought, answer) == (reasoning["summary"][0]["text"], text["text"])
    bad = {"messages": [{"role": "user", "content": "x"}], "thinking": {"type": "enabled", "budget_tokens": 4}}
    with server.client() as c:
        resp = c.post(f"/serving-endpoints/{TOOLS_MODEL}/invocations", json=bad)
    assert_error(resp, 400, "BAD_REQUEST", contains="is not a reasoning model")


def doc_examples() -> list[str]:
    text = (ROOT / "docs" / "local_models.md").read_text()
    return [code for lang, code in re.findall(r"^```(\w+)\n(.*?)^```", text, re.S | re.M) if lang == "python"]


def test_docs_examples_run(server: LiveServer) -> None:
    examples = doc_examples()
    assert len(examples) >= 4
    env = {**os.environ, "DATABRICKS_HOST": server.url, "DATABRICKS_TOKEN": server.admin_token}
    for i, code in enumerate(examples):
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        where = f"example {i + 1}:\n{code}\n--- stdout\n{out.stdout}\n--- stderr\n{out.stderr}"
        assert out.returncode == 0, where
        assert out.stdout.strip() and "error_code" not in out.stdout, where
