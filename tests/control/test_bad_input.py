"""Bad input on every route: a 4xx with a Databricks error body and a JSON content type, never a 5xx or a trace.

Tables hold (what is sent, status, error_code, a piece of the message); the piece names the field or rule,
so a 400 for the wrong reason fails too.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.control.checks import API, PERMS, assert_error, chat_body, unique_name
from tests.control.conftest import SMALL_BODY_LIMIT
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer, create_endpoint, external_chat_config

Json = dict[str, Any]


@pytest.fixture(scope="module")
def eps(server: LiveServer, upstream: FakeUpstreamThread) -> dict[str, str]:
    """One endpoint per task on the shared SQLite server; the values are their names."""
    names = {"chat": unique_name("bad-chat"), "emb": unique_name("bad-emb"), "cmpl": unique_name("bad-cmpl")}
    with server.client() as c:
        create_endpoint(c, names["chat"], external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
        emb = external_chat_config(
            upstream.base_url, "text-embedding-3-small", task="llm/v1/embeddings", api_key=UPSTREAM_KEY
        )
        create_endpoint(c, names["emb"], emb)
        cmpl = external_chat_config(
            upstream.base_url, "gpt-3.5-turbo-instruct", task="llm/v1/completions", api_key=UPSTREAM_KEY
        )
        create_endpoint(c, names["cmpl"], cmpl)
    return names


def _tools(n: int) -> list[Json]:
    return [{"type": "function", "function": {"name": f"f{i}", "parameters": {"type": "object"}}} for i in range(n)]


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


USER = {"role": "user", "content": "hi"}
SYSTEM = {"role": "system", "content": "be brief"}

# (raw body, piece of the message); all sent to /serving-endpoints/<chat>/invocations -> 400 BAD_REQUEST.
BAD_BODIES = [
    pytest.param(b'{"messages": [', "not valid JSON", id="malformed-json"),
    pytest.param(b"\xff\xfe\x00{", "not valid JSON", id="not-utf8"),
    pytest.param(b"[1, 2]", "JSON object", id="array"),
    pytest.param(b"42", "JSON object", id="number"),
    pytest.param(b'"messages"', "JSON object", id="string"),
    pytest.param(b"null", "JSON object", id="null"),
    pytest.param(b"", "empty", id="empty"),
    pytest.param(b"  \n ", "empty", id="whitespace"),
    pytest.param(b"[" * 5000 + b"]" * 5000, "not valid JSON", id="nested-too-deep"),
    pytest.param(b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', "not valid JSON", id="nan"),
]

BAD_CHAT = [
    pytest.param({"messages": [USER], "temperature": "hot"}, "temperature", id="temperature-string"),
    pytest.param({"messages": [USER], "temperature": 3}, "temperature", id="temperature-3"),
    pytest.param({"messages": "hi"}, "messages", id="messages-not-list"),
    pytest.param({"messages": []}, "messages", id="messages-empty"),
    pytest.param({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", id="bad-role"),
    pytest.param({"messages": [{"role": "user"}]}, "needs 'content'", id="no-content"),
    pytest.param({"messages": [USER], "max_tokens": 0}, "max_tokens", id="max-tokens-0"),
    pytest.param({"messages": [USER], "n": 9}, "n:", id="n-9"),
    pytest.param({"messages": [USER], "top_p": 0}, "top_p", id="top-p-0"),
    pytest.param({"messages": [USER], "foo_bar": 1}, "unknown field 'foo_bar'", id="unknown-field"),
    pytest.param({"messages": [SYSTEM, SYSTEM, USER]}, "system message may appear only once", id="two-systems"),
    pytest.param({"messages": [USER, SYSTEM]}, "system message may appear only once", id="system-not-first"),
    pytest.param(
        {"messages": [USER], "max_tokens": 100, "thinking": {"type": "enabled", "budget_tokens": 100}},
        "budget_tokens (100) must be less than max_tokens (100)",
        id="budget-equals-max",
    ),
    pytest.param({"messages": [USER], "tools": _tools(33)}, "at most 32 tools", id="33-tools"),
    pytest.param(
        {"messages": [USER], "tools": _tools(1), "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        "'nope', which is not among 'tools'",
        id="tool-choice-missing-tool",
    ),
    pytest.param(
        {"messages": [USER], "tools": [{"type": "function", "function": {"name": "f"}}]},
        "parameters",
        id="tool-without-parameters",
    ),
    pytest.param({"messages": [USER], "prompt": "x"}, "only one of", id="messages-and-prompt"),
    pytest.param({"temperature": 1}, "needs 'messages'", id="no-input-field"),
    pytest.param({"dataframe_records": [{"a": 1}]}, "custom-model input", id="custom-model-input"),
    pytest.param({"messages": [USER], "stop": ["x"] * 17}, "16 stop sequences", id="17-stops"),
]


# The OpenAI route knows the body is chat, so a completions field is simply unknown there.
OPENAI_PIECE = {"only one of": "unknown field 'prompt'"}


@pytest.mark.parametrize(("raw", "piece"), BAD_BODIES)
def test_unreadable_bodies(server: LiveServer, eps: dict[str, str], raw: bytes, piece: str) -> None:
    with server.client() as c:
        for path in (f"/serving-endpoints/{eps['chat']}/invocations", "/serving-endpoints/chat/completions", API):
            resp = c.post(path, content=raw, headers={"Content-Type": "application/json"})
            assert_error(resp, 400, "BAD_REQUEST", contains=piece)


@pytest.mark.parametrize(("body", "piece"), BAD_CHAT)
def test_invalid_chat_requests(server: LiveServer, eps: dict[str, str], body: Json, piece: str) -> None:
    with server.client() as c:
        resp = c.post(f"/serving-endpoints/{eps['chat']}/invocations", json=body)
        message = assert_error(resp, 400, "BAD_REQUEST", contains=piece)
        assert message.startswith("Bad request: ")
        if "messages" in body:
            # The OpenAI-compatible route validates the same way.
            resp = c.post("/serving-endpoints/chat/completions", json={"model": eps["chat"], **body})
            assert_error(resp, 400, "BAD_REQUEST", contains=OPENAI_PIECE.get(piece, piece))


def test_invalid_completion_and_embedding_requests(server: LiveServer, eps: dict[str, str]) -> None:
    with server.client() as c:
        completions: list[tuple[Json, str]] = [({"prompt": []}, "prompt"), ({"prompt": "x", "logprobs": 9}, "logprobs")]
        for body, piece in completions:
            assert_error(
                c.post(f"/serving-endpoints/{eps['cmpl']}/invocations", json=body), 400, "BAD_REQUEST", contains=piece
            )
        embeddings: list[tuple[Json, str]] = [
            ({"input": []}, "empty list"),
            ({"input": 5}, "input"),
            ({"input": ["x"] * 2049}, "at most 2048"),
            ({"input": "x", "encoding_format": "hex"}, "encoding_format"),
        ]
        for body, piece in embeddings:
            assert_error(
                c.post(f"/serving-endpoints/{eps['emb']}/invocations", json=body), 400, "BAD_REQUEST", contains=piece
            )


def test_openai_routes_need_model_and_input(server: LiveServer, eps: dict[str, str]) -> None:
    with server.client() as c:
        for route, field in (("chat/completions", "messages"), ("completions", "prompt"), ("embeddings", "input")):
            url = f"/serving-endpoints/{route}"
            assert_error(c.post(url, json={field: "x"}), 400, "BAD_REQUEST", contains="'model'")
            assert_error(c.post(url, json={"model": 7, field: "x"}), 400, "BAD_REQUEST", contains="'model'")
            assert_error(c.post(url, json={"model": ""}), 400, "BAD_REQUEST", contains="'model'")
            assert_error(c.post(url, json={"model": eps["chat"]}), 400, "BAD_REQUEST", contains=f"'{field}'")


WRONG_TASK = [
    pytest.param("chat", "invocations", {"prompt": "x"}, "llm/v1/chat", id="prompt-to-chat"),
    pytest.param("chat", "invocations", {"input": "x"}, "llm/v1/chat", id="input-to-chat"),
    pytest.param("emb", "invocations", chat_body(), "llm/v1/embeddings", id="messages-to-embeddings"),
    pytest.param("cmpl", "invocations", chat_body(), "llm/v1/completions", id="messages-to-completions"),
    pytest.param("chat", "embeddings", {"input": "x"}, "llm/v1/chat", id="openai-embeddings-on-chat"),
    pytest.param("chat", "completions", {"prompt": "x"}, "llm/v1/chat", id="openai-completions-on-chat"),
    pytest.param("emb", "chat/completions", chat_body(), "llm/v1/embeddings", id="openai-chat-on-embeddings"),
]


@pytest.mark.parametrize(("ep", "route", "body", "task"), WRONG_TASK)
def test_wrong_task(server: LiveServer, eps: dict[str, str], ep: str, route: str, body: Json, task: str) -> None:
    name = eps[ep]
    if route == "invocations":
        url, sent = f"/serving-endpoints/{name}/invocations", body
    else:
        url, sent = f"/serving-endpoints/{route}", {"model": name, **body}
    with server.client() as c:
        resp = c.post(url, json=sent)
    assert_error(resp, 400, "BAD_REQUEST", contains=f"Endpoint '{name}' serves {task}")


def test_unknown_endpoints_paths_and_methods(server: LiveServer, eps: dict[str, str]) -> None:
    with server.client() as c:
        for resp in (
            c.post("/serving-endpoints/no-such-ep/invocations", json=chat_body()),
            c.post("/serving-endpoints/chat/completions", json={"model": "no-such-ep", **chat_body()}),
            c.post("/serving-endpoints/embeddings", json={"model": "no-such-ep", "input": "x"}),
            c.get(f"{API}/no-such-ep"),
        ):
            assert_error(resp, 404, "RESOURCE_DOES_NOT_EXIST", contains="'no-such-ep' does not exist")
        resp = c.post(f"/serving-endpoints/{eps['chat']}/served-models/nope/invocations", json=chat_body())
        assert_error(resp, 404, "RESOURCE_DOES_NOT_EXIST", contains="'nope'")

        for method, path in (
            ("GET", "/nope"),
            ("POST", "/api/2.0/jobs/list"),
            ("GET", f"{API}/{eps['chat']}/unknown-sub-resource"),
            ("POST", "/serving-endpoints/a/b/c/invocations"),
            ("GET", "/api/2.1/serving-endpoints"),
        ):
            assert_error(c.request(method, path), 404, "ENDPOINT_NOT_FOUND", contains=path)

        for method, path in (
            ("GET", f"/serving-endpoints/{eps['chat']}/invocations"),
            ("PUT", "/serving-endpoints/chat/completions"),
            ("DELETE", API),
            ("POST", f"{API}/{eps['chat']}"),
            ("GET", f"{API}/{eps['chat']}/config"),
            ("DELETE", "/api/2.0/token/create"),
            ("POST", "/health"),
        ):
            assert_error(c.request(method, path), 405, contains=method)


def test_oversize_bodies_are_413(small_server: LiveServer) -> None:
    big = {"messages": [{"role": "user", "content": "x" * (SMALL_BODY_LIMIT + 1)}]}
    raw = json.dumps(big).encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(raw), 1000):
            yield raw[i : i + 1000]

    with small_server.client() as c:
        for path in ("/serving-endpoints/anything/invocations", "/serving-endpoints/chat/completions", API):
            assert_error(c.post(path, content=raw), 413, "BAD_REQUEST", contains=str(SMALL_BODY_LIMIT))
            # Without Content-Length (chunked) the limit holds while reading.
            assert_error(c.post(path, content=chunks()), 413, "BAD_REQUEST", contains=str(SMALL_BODY_LIMIT))
        # Just under the limit is read (and then judged on its content).
        fits = json.dumps({"model": "nope", "messages": [{"role": "user", "content": "x" * 3000}]}).encode()
        assert len(fits) < SMALL_BODY_LIMIT
        assert_error(c.post("/serving-endpoints/chat/completions", content=fits), 404, "RESOURCE_DOES_NOT_EXIST")


def _ext(upstream: FakeUpstreamThread, **openai_config: Any) -> Json:
    config = {"openai_api_base": upstream.base_url, **openai_config}
    return _model("openai", openai_config=config)


def _model(provider: str, task: str = "llm/v1/chat", **extra: Any) -> Json:
    return {"external_model": {"name": "gpt-4o-mini", "provider": provider, "task": task, **extra}}


def _key(upstream: FakeUpstreamThread, name: str | None = None, task: str = "llm/v1/chat") -> Json:
    model = "text-embedding-3-small" if task == "llm/v1/embeddings" else "gpt-4o-mini"
    return external_chat_config(upstream.base_url, model, task=task, api_key=UPSTREAM_KEY, entity_name=name)


def _cfg(*entities: Json, routes: list[Json] | None = None, **top: Any) -> Json:
    """A create body (without the name) serving `entities`."""
    config: Json = {"served_entities": list(entities)}
    if routes is not None:
        config["traffic_config"] = {"routes": routes}
    return {"config": config, **top}


def _create_cases(up: FakeUpstreamThread) -> list[tuple[str, Json, str]]:
    """(case id, create body without name, piece of the message)."""
    ok = _key(up)
    both_keys = _ext(up, openai_api_key="{{secrets/s/k}}", openai_api_key_plaintext="sk-x")
    return [
        ("unknown-top-level-field", _cfg(ok, colour="red"), "unknown field 'colour'"),
        ("no-config", {}, "'config'"),
        ("empty-served-entities", _cfg(), "at least one served entity"),
        ("served-entities-not-list", {"config": {"served_entities": {"a": 1}}}, "served_entities"),
        ("unknown-provider", _cfg(_model("acme", acme_config={})), "Unknown external model provider 'acme'"),
        ("bad-task", _cfg(_model("openai", task="llm/v1/dance")), "task"),
        ("missing-openai-api-key", _cfg(_ext(up)), "openai_api_key"),
        ("key-and-plaintext", _cfg(both_keys), "not both"),
        ("key-not-a-reference", _cfg(_ext(up, openai_api_key="sk-live-abc123")), "secret reference"),
        ("unknown-config-key", _cfg(_ext(up, openai_api_key_plaintext="sk-x", openai_api_kee="x")), "openai_api_kee"),
        ("wrong-config-key", _cfg(_model("openai", anthropic_config={})), "anthropic_config"),
        ("duplicate-entity-names", _cfg(_key(up, "same"), _key(up, "same")), "repeated: same"),
        ("mixed-tasks", _cfg(_key(up, "a"), _key(up, "b", task="llm/v1/embeddings")), "share one task"),
        ("external-and-entity-name", _cfg({**ok, "entity_name": "system.ai.x"}), "not both"),
        ("neither-external-nor-entity", _cfg({"name": "x"}), "entity_name"),
        ("bad-entity-name", _cfg({**ok, "name": "has space"}), "name"),
        (
            "traffic-over-100",
            _cfg(ok, routes=[{"served_entity_name": "gpt-4o-mini", "traffic_percentage": 101}]),
            "traffic_percentage",
        ),
        ("traffic-to-unknown", _cfg(ok, routes=[{"served_entity_name": "ghost", "traffic_percentage": 100}]), "ghost"),
        ("tag-without-key", _cfg(ok, tags=[{"value": "v"}]), "tags[0].key"),
        ("rate-limit-without-limit", _cfg(ok, rate_limits=[{"renewal_period": "minute"}]), "calls"),
    ]


def test_create_rejects_bad_configs(server: LiveServer, upstream: FakeUpstreamThread) -> None:
    with server.client() as c:
        for case, body, piece in _create_cases(upstream):
            name = unique_name("bad-create")
            resp = c.post(API, json={"name": name, **body})
            message = assert_error(resp, 400, "INVALID_PARAMETER_VALUE", contains=piece)
            assert "sk-live-abc123" not in message, "a secret given in the wrong field must not be echoed"
            assert_error(c.get(f"{API}/{name}"), 404, "RESOURCE_DOES_NOT_EXIST"), case


@pytest.mark.parametrize(
    "name",
    ["has space", "semi;colon", "dots.in.name", "slash/name", "", "x" * 64, "ünïcode", 5, None],
    ids=["space", "semicolon", "dots", "slash", "empty", "too-long", "unicode", "number", "null"],
)
def test_create_rejects_bad_names(server: LiveServer, upstream: FakeUpstreamThread, name: object) -> None:
    with server.client() as c:
        resp = c.post(API, json={"name": name, "config": {"served_entities": [_key(upstream)]}})
    assert_error(resp, 400, "INVALID_PARAMETER_VALUE", contains="name")


def test_control_plane_updates_reject_bad_input(server: LiveServer, upstream: FakeUpstreamThread) -> None:
    name = unique_name("bad-upd")
    with server.client() as c:
        ep = create_endpoint(c, name, _key(upstream, "a"))
        cases: list[tuple[str, str, Any, str]] = [
            ("PUT", f"{API}/{name}/config", {"served_entities": [_key(upstream, "a")], "x": 1}, "unknown field 'x'"),
            ("PUT", f"{API}/{name}/config", {"served_entities": [{"name": "x"}]}, "entity_name"),
            (
                "PUT",
                f"{API}/{name}/config",
                {"served_entities": [_key(upstream, "a")], "traffic_config": []},
                "traffic",
            ),
            ("PUT", f"{API}/{name}/ai-gateway", {"usage_tracking_config": {"enabled": "maybe"}}, "enabled"),
            ("PUT", f"{API}/{name}/ai-gateway", {"guardrails": {"input": {"pii": {"behavior": "EAT"}}}}, "behavior"),
            (
                "PUT",
                f"{API}/{name}/ai-gateway",
                {"rate_limits": [{"calls": 1, "renewal_period": "minute", "key": "team"}]},
                "key",
            ),
            ("PUT", f"{API}/{name}/rate-limits", {"rate_limits": "lots"}, "rate_limits"),
            ("PATCH", f"{API}/{name}/tags", {"add_tags": [{"key": ""}]}, "key"),
            ("PATCH", f"{API}/{name}/tags", {"delete_tags": "k"}, "delete_tags"),
            ("PATCH", f"{PERMS}/{ep['id']}", {"access_control_list": [{"user_name": "u"}]}, "permission_level"),
            ("PUT", f"{PERMS}/{ep['id']}", {"access_control_list": "all"}, "access_control_list"),
        ]
        for method, path, body, piece in cases:
            assert_error(c.request(method, path, json=body), 400, "INVALID_PARAMETER_VALUE", contains=piece)
        for method, path in (
            ("PUT", f"{API}/{name}/config"),
            ("PATCH", f"{API}/{name}/tags"),
            ("PUT", f"{API}/{name}/ai-gateway"),
            ("PATCH", f"{PERMS}/{ep['id']}"),
        ):
            for raw in (b"", b"[]", b"{"):
                assert_error(c.request(method, path, content=raw), 400, "BAD_REQUEST")
        # None of it changed the endpoint.
        after = c.get(f"{API}/{name}").json()
        assert after["config"]["config_version"] == 1
        assert after["tags"] == []
        assert "ai_gateway" not in after
        assert c.get(f"{PERMS}/{ep['id']}").json()["access_control_list"][0]["user_name"] == "admin"


def test_deeply_nested_json_is_refused(server: LiveServer, upstream: FakeUpstreamThread, eps: dict[str, str]) -> None:
    """Past 128 levels a body is refused up front: the server could not re-encode it (orjson stops at 254)
    to send it upstream or render a stored endpoint, which used to give a 500 and an unlistable endpoint."""
    name = unique_name("bad-deep")
    create = {"name": name, "config": {"served_entities": [_key(upstream)]}}
    with server.client() as c:
        for path, body in (
            (f"/serving-endpoints/{eps['chat']}/invocations", {**chat_body(), "extra_params": _nested(300)}),
            ("/serving-endpoints/chat/completions", {"model": eps["chat"], **chat_body(), "metadata": _nested(129)}),
            (API, {**create, "telemetry_config": _nested(300)}),
        ):
            assert_error(c.post(path, json=body), 400, "BAD_REQUEST", contains="deeper than 128 levels")
        assert_error(c.get(f"{API}/{name}"), 404, "RESOURCE_DOES_NOT_EXIST")

        # Nesting well inside the limit is served, stored and rendered.
        # (inside a tool's parameters: the fake, like OpenAI, refuses keys its request types do not have)
        deep_tool = {"type": "function", "function": {"name": "deep", "parameters": _nested(95)}}
        resp = c.post(
            f"/serving-endpoints/{eps['chat']}/invocations",
            json={**chat_body(), "extra_params": {"tools": [deep_tool], "tool_choice": "none"}},
        )
        assert resp.status_code == 200, resp.text
        assert upstream.requests[-1].json["tools"] == [deep_tool]
        resp = c.post(API, json={**create, "telemetry_config": _nested(100)})
        assert resp.status_code == 200, resp.text
        assert c.get(f"{API}/{name}").json()["telemetry_config"] == _nested(100)
        assert c.get(API).status_code == 200


# -- fuzz -------------------------------------------------------------------------------------------


def _random_scalar(rng: random.Random) -> Any:
    return rng.choice(
        [
            None,
            True,
            False,
            0,
            -1,
            1,
            2**63,
            -(2**70),
            0.5,
            -1e308,
            1e308,
            "",
            "x",
            "dapi",
            "{{env/HOME}}",
            "\x00",
            "é" * 3,
            "🙂",
            "a" * 300,
            "{{secrets/a/b}}",
            "system",
            "user",
            "llm/v1/chat",
            "minute",
            "CAN_MANAGE",
            "function",
            "[DONE]",
        ]
    )


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth >= 4 or roll < 0.5:
        return _random_scalar(rng)
    if roll < 0.75:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = [
        "messages",
        "role",
        "content",
        "name",
        "config",
        "served_entities",
        "external_model",
        "input",
        "prompt",
        "tools",
        "rate_limits",
        "calls",
        "access_control_list",
        "add_tags",
        "key",
        "x",
    ]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _mutate(rng: random.Random, value: Any) -> Any:
    """A copy of `value` with one random change somewhere inside it."""
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(list(value))
        out = dict(value)
        action = rng.random()
        if action < 0.2:
            del out[key]
        elif action < 0.3:
            out[rng.choice(["extra", "stream", "n", "model"])] = _random_json(rng)
        else:
            out[key] = _mutate(rng, value[key])
        return out
    if isinstance(value, list) and value and rng.random() < 0.7:
        i = rng.randrange(len(value))
        return [*value[:i], _mutate(rng, value[i]), *value[i + 1 :]]
    return _random_json(rng)


def _payload(rng: random.Random, valid: Json) -> bytes:
    kind = rng.random()
    if kind < 0.25:
        return rng.randbytes(rng.randint(0, 64))
    if kind < 0.5:
        return json.dumps(_random_json(rng)).encode()
    return json.dumps(_mutate(rng, valid)).encode()


def test_fuzz_never_5xx(server: LiveServer, upstream: FakeUpstreamThread, eps: dict[str, str]) -> None:
    rng = random.Random(20261121)
    target = unique_name("fuzz")
    with server.client() as c:
        ep = create_endpoint(c, target, _key(upstream, "a"))
        valid_create = {"name": unique_name("fuzzed"), "config": {"served_entities": [_key(upstream, "a")]}}
        routes: list[tuple[str, str, Json]] = [
            ("POST", f"/serving-endpoints/{eps['chat']}/invocations", {**chat_body(), "max_tokens": 5}),
            ("POST", f"/serving-endpoints/{eps['emb']}/invocations", {"input": ["a", "b"]}),
            ("POST", f"/serving-endpoints/{eps['cmpl']}/invocations", {"prompt": "once", "max_tokens": 3}),
            ("POST", "/serving-endpoints/chat/completions", {"model": eps["chat"], **chat_body()}),
            ("POST", "/serving-endpoints/embeddings", {"model": eps["emb"], "input": "x"}),
            ("POST", f"/serving-endpoints/{eps['chat']}/served-models/gpt-4o-mini/invocations", chat_body()),
            ("POST", API, valid_create),
            ("PUT", f"{API}/{target}/config", {"served_entities": [_key(upstream, "a")]}),
            ("PUT", f"{API}/{target}/ai-gateway", {"rate_limits": [{"calls": 9, "renewal_period": "minute"}]}),
            ("PUT", f"{API}/{target}/rate-limits", {"rate_limits": [{"calls": 9, "renewal_period": "minute"}]}),
            ("PATCH", f"{API}/{target}/tags", {"add_tags": [{"key": "k", "value": "v"}], "delete_tags": ["k"]}),
            (
                "PATCH",
                f"{PERMS}/{ep['id']}",
                {"access_control_list": [{"group_name": "g", "permission_level": "CAN_VIEW"}]},
            ),
            ("POST", "/api/2.0/token/create", {"comment": "fuzz", "lifetime_seconds": 60}),
            ("POST", "/api/2.0/token/delete", {"token_id": "abc"}),
        ]
        failures = []
        for i in range(200):
            method, path, valid = routes[i % len(routes)]
            raw = _payload(rng, valid)
            resp = c.request(method, path, content=raw, headers={"Content-Type": "application/json"})
            if resp.status_code >= 500 or "Traceback" in resp.text:
                failures.append((method, path, raw[:200], resp.status_code, resp.text[:300]))
            elif resp.status_code >= 400:
                assert_error(resp, resp.status_code)
        assert not failures, failures
        # The server is still healthy and the fuzzed endpoint still answers its owner.
        assert c.get(f"{API}/{target}").status_code == 200
    assert httpx.get(server.url + "/health").status_code == 200
