"""End-to-end: a person signs in, creates an endpoint, queries it, compares two in the Playground, sees usage."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer, create_endpoint, external_chat_config

# A 1x1 PNG, attached as an image in the Playground.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture
def admin(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def sign_in(page: Any, server: LiveServer, token: str) -> None:
    page.goto(server.url + "/")
    page.get_by_label("Access token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Serving endpoints").wait_for()


def preview_json(page: Any) -> dict[str, Any]:
    text = page.locator("#json-preview").inner_text()
    first, _, rest = text.partition("\n")
    assert first == "POST /api/2.0/serving-endpoints"
    data: dict[str, Any] = json.loads(rest)
    return data


def test_bad_token_shows_a_clear_message(page: Any, server: LiveServer, shot: Callable[[str], Path]) -> None:
    page.goto(server.url + "/")
    shot("sign-in")
    page.get_by_label("Access token").fill("dapi" + "0" * 32)
    page.keyboard.press("Enter")
    error = page.locator("#signin-error")
    error.get_by_text("This token was not accepted (401 UNAUTHENTICATED)").wait_for()
    shot("bad-token")
    assert "Check that you pasted the whole token" in error.inner_text()
    assert page.evaluate("sessionStorage.getItem('modelgate.token')") is None
    assert page.locator("#nav").is_hidden()


def test_create_query_compare_and_usage(
    page: Any, admin: httpx.Client, server: LiveServer, upstream: FakeUpstreamThread, shot: Callable[[str], Path]
) -> None:
    name, other = unique("ui-chat"), unique("ui-other")
    sign_in(page, server, server.admin_token)
    assert page.evaluate("sessionStorage.getItem('modelgate.token')") == server.admin_token
    shot("serving-list")

    # Create an endpoint through the form; the JSON view shows exactly the REST body.
    page.get_by_role("link", name="Create serving endpoint").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Model name").fill("gpt-4o-mini")
    page.get_by_label("API base URL").fill(upstream.base_url)
    page.get_by_label("API key", exact=True).fill(UPSTREAM_KEY)
    page.get_by_label("Usage tracking").check()
    page.get_by_label("Rate limit (calls per minute)").fill("100")
    expected = {
        "name": name,
        "config": {
            "served_entities": [
                {
                    "external_model": {
                        "name": "gpt-4o-mini",
                        "provider": "openai",
                        "task": "llm/v1/chat",
                        "openai_config": {
                            "openai_api_base": upstream.base_url,
                            "openai_api_key_plaintext": "********",
                        },
                    }
                }
            ]
        },
        "ai_gateway": {
            "usage_tracking_config": {"enabled": True},
            "rate_limits": [{"calls": 100, "key": "endpoint", "renewal_period": "minute"}],
        },
    }
    # The preview masks the key the field masks; the request itself carries it.
    assert preview_json(page) == expected
    assert UPSTREAM_KEY not in page.locator("#json-preview").inner_text()
    shot("create-form")
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/api/2.0/serving-endpoints")) as sent:
        page.get_by_role("button", name="Create endpoint").click()
    sent_entity = sent.value.post_data_json["config"]["served_entities"][0]
    assert sent_entity["external_model"]["openai_config"]["openai_api_key_plaintext"] == UPSTREAM_KEY
    page.get_by_role("heading", name="Query endpoint").wait_for()
    page.locator("#notice").get_by_text(f"Created endpoint {name}.").wait_for()
    shot("endpoint-detail")
    stored = admin.get(f"/api/2.0/serving-endpoints/{name}").json()
    assert stored["ai_gateway"] == expected["ai_gateway"]
    assert stored["config"]["served_entities"][0]["external_model"]["name"] == "gpt-4o-mini"
    assert "openai_api_key_plaintext" not in json.dumps(page.locator("details pre").inner_text())

    # Query endpoint: the example for a chat task, sent, answered with status and latency; snippets match.
    upstream.reset()
    page.get_by_role("button", name="Show example").click()
    page.get_by_role("button", name="Send request").click()
    status = page.locator("#query-status")
    status.get_by_text("200 OK").wait_for()
    assert " ms · served by gpt-4o-mini" in status.inner_text()
    response = json.loads(page.locator("#query-response").inner_text())
    assert response["choices"][0]["message"]["content"] == "echo: What is a serving endpoint?"
    assert response["usage"] == {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16}
    assert [r.json["model"] for r in upstream.requests] == ["gpt-4o-mini"]
    curl = page.locator("#snippet-curl").inner_text()
    assert curl.startswith(f"curl -X POST {server.url}/serving-endpoints/{name}/invocations \\")
    page.get_by_role("tab", name="Python").click()
    python = page.locator("#snippet-python").inner_text()
    assert f'base_url="{server.url}/serving-endpoints"' in python and f'model="{name}"' in python
    assert "client.chat.completions.create(" in python
    page.get_by_role("tab", name="Python").press("ArrowRight")  # keyboard moves between the snippet tabs
    sql = page.locator("#snippet-sql").inner_text()
    assert sql == (
        "-- ai_query sends one prompt per row: this request's system message is not sent"
        " (write it into the prompt to keep it):\n"
        "--   You are a helpful assistant.\n"
        f"SELECT ai_query(\n  '{name}',\n  'What is a serving endpoint?',\n"
        "  modelParameters => named_struct('max_tokens', 128, 'temperature', 0.7)\n) AS response"
    )
    shot("query-endpoint")

    # Playground: two endpoints side by side, same prompt, streamed answers.
    create_endpoint(admin, other, external_chat_config(upstream.base_url, "gpt-4o"))
    upstream.reset()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Playground").click()
    # Other tests' endpoints share this server; compare exactly these two.
    page.locator('input[name="endpoint"]').first.wait_for()
    for box in page.locator('input[name="endpoint"]:checked').all():
        box.uncheck()
    page.get_by_role("checkbox", name=name, exact=True).check()
    page.get_by_role("checkbox", name=other, exact=True).check()
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill("hello there")
    prompt.press("Enter")
    for endpoint in (name, other):
        column = page.locator(f'section.column[data-endpoint="{endpoint}"]')
        column.locator('li.assistant[data-done="true"]').wait_for()
        assert column.locator(".answer").inner_text() == "echo: hello there"
        meta = column.locator(".meta").inner_text()
        assert meta.startswith("2 in · 3 out tokens · ") and "finish: stop" in meta
    # The fake is shared by the session: look only at the requests that carried this prompt.
    mine = [r for r in upstream.requests if r.json and "hello there" in str(r.json.get("messages"))]
    assert sorted(r.json["model"] for r in mine) == ["gpt-4o", "gpt-4o-mini"]
    assert all(r.json["stream"] is True for r in mine)
    shot("playground-compare")

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export JSON").click()
    exported = json.loads(Path(download_info.value.path()).read_text())
    assert [c["endpoint"] for c in exported["conversations"]] == [name, other]
    for conv in exported["conversations"]:
        assert conv["messages"] == [
            {"role": "user", "content": "hello there"},
            {"role": "assistant", "content": "echo: hello there"},
        ]
    assert exported["settings"]["temperature"] == 0.7
    page.get_by_role("button", name="Clear conversation").click()
    assert page.locator("li.msg").count() == 0

    # Usage: totals from the metrics and a chart drawn from samples taken while the page is open.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage").click()
    page.get_by_label("Endpoint").select_option(name)
    page.get_by_label("Sample every").select_option("1")
    stats = page.locator("dl.stats")
    stats.locator('[data-stat="Requests"] dd').get_by_text("2", exact=True).wait_for()
    assert stats.locator('[data-stat="Tokens in"] dd').inner_text() == "12"
    assert stats.locator('[data-stat="Tokens out"] dd').inner_text() == "9"
    assert stats.locator('[data-stat="Errors"] dd').inner_text() == "0"
    line = page.locator('svg[data-chart="requests"] path[data-series="requests"]')
    line.wait_for(state="attached")
    # A request between two samples lifts the line off the zero baseline in a later interval.
    resp = admin.post(f"/serving-endpoints/{name}/invocations", json={"messages": [{"role": "user", "content": "x"}]})
    assert resp.status_code == 200
    page.wait_for_function(
        """() => {
            const dots = [...document.querySelectorAll('svg[data-chart="requests"] circle.s0 title')];
            return dots.some((t) => / 1 requests$/.test(t.textContent));
        }"""
    )
    stats.locator('[data-stat="Requests"] dd').get_by_text("3", exact=True).wait_for()
    assert page.locator('svg[data-chart="latency"]').count() == 1
    # The endpoint has usage tracking on, so the usage table names who called it.
    page.get_by_text("admin: 3 requests", exact=False).wait_for()
    # ... and its five-minute buckets chart the last day.
    page.locator('svg[data-chart="history-requests"]').wait_for(state="attached")
    shot("usage")

    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("You are signed out").wait_for()
    assert page.evaluate("sessionStorage.getItem('modelgate.token')") is None


def test_playground_images_and_tool_calls(
    page: Any,
    admin: httpx.Client,
    server: LiveServer,
    upstream: FakeUpstreamThread,
    shot: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    name = unique("ui-vision")
    create_endpoint(admin, name, external_chat_config(upstream.base_url, "gpt-4o"))
    sign_in(page, server, server.admin_token)
    page.goto(f"{server.url}/#/playground/{name}")
    image = tmp_path / "dot.png"
    image.write_bytes(PNG)
    page.get_by_label("Attach images (vision endpoints)").set_input_files(str(image))
    page.get_by_role("img", name="Attachment 1").wait_for()
    page.get_by_text("Tools (JSON)").click()
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    page.get_by_label("Tools", exact=True).fill(json.dumps(tools))
    upstream.reset()
    page.get_by_label("Prompt", exact=True).fill("weather here?")
    page.get_by_role("button", name="Send", exact=True).click()
    column = page.locator(f'section.column[data-endpoint="{name}"]')
    column.locator('li.assistant[data-done="true"]').wait_for()
    assert column.locator(".tool-call code").inner_text() == "get_weather"
    assert json.loads(column.locator(".tool-call pre").inner_text()) == {"city": "Paris"}
    assert "finish: tool_calls" in column.locator(".meta").inner_text()
    sent = upstream.requests[-1].json["messages"][-1]
    assert sent["content"][0] == {"type": "text", "text": "weather here?"}
    assert sent["content"][1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    shot("tool-call-and-image")


def test_stream_parser_and_reasoning_blocks_in_the_browser(page: Any, server: LiveServer) -> None:
    page.goto(server.url + "/")
    result = page.evaluate(
        """async () => {
        const { SSEParser } = await import('/ui/js/sse.js');
        const { newAnswer, applyChunk } = await import('/ui/js/chat_state.js');
        const p = new SSEParser();
        const events = [...p.push('data: {"a"'), ...p.push(': 1}\\r\\n\\r\\n: keep-alive\\n\\ndata: [DO'),
                        ...p.push('NE]\\n\\n'), ...p.push('data: {"tail": true}')];
        const flushed = p.flush();
        const answer = newAnswer();
        applyChunk(answer, {choices: [{index: 0, delta: {content: [
            {type: 'reasoning', summary: [{type: 'summary_text', text: 'think '}]}]}}]});
        applyChunk(answer, {choices: [{index: 0, delta: {content: [
            {type: 'reasoning', summary: [{type: 'summary_text', text: 'hard'}]}, {type: 'text', text: 'Hi'}]}}]});
        applyChunk(answer, {choices: [{index: 0, delta: {content: '!'}, finish_reason: 'stop'}],
                            usage: {prompt_tokens: 1, completion_tokens: 2, total_tokens: 3}});
        const failed = applyChunk(newAnswer(), {error_code: 'TEMPORARILY_UNAVAILABLE', message: 'upstream down'});
        return {events, flushed, answer, failed: failed.error};
    }"""
    )
    assert result["events"] == ['{"a": 1}', "[DONE]"]
    assert result["flushed"] == ['{"tail": true}']
    assert result["answer"]["reasoning"] == "think hard"
    assert result["answer"]["text"] == "Hi!"
    assert result["answer"]["finishReason"] == "stop"
    assert result["answer"]["usage"]["total_tokens"] == 3
    assert result["failed"] == "TEMPORARILY_UNAVAILABLE: upstream down"


def test_forbidden_action_shows_a_clear_message(
    page: Any, admin: httpx.Client, server: LiveServer, upstream: FakeUpstreamThread, shot: Callable[[str], Path]
) -> None:
    name = unique("ui-guarded")
    ep = create_endpoint(admin, name, external_chat_config(upstream.base_url))
    resp = admin.patch(
        f"/api/2.0/permissions/serving-endpoints/{ep['id']}",
        json={"access_control_list": [{"user_name": "ui-viewer", "permission_level": "CAN_QUERY"}]},
    )
    assert resp.status_code == 200, resp.text
    sign_in(page, server, server.create_token("ui-viewer"))
    assert page.locator("#who-name").inner_text() == "ui-viewer"
    page.get_by_role("link", name=name).click()
    page.get_by_text("Your permission: CAN_QUERY.").wait_for()
    assert page.get_by_text("null", exact=True).count() == 0
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    notice = page.locator("#notice")
    notice.get_by_text("You are not allowed to do this (403 PERMISSION_DENIED)").wait_for()
    assert "does not have CAN_MANAGE permission" in notice.inner_text()
    shot("forbidden-delete")
    assert admin.get(f"/api/2.0/serving-endpoints/{name}").status_code == 200


def test_count_charts_tick_whole_numbers(page: Any, server: LiveServer) -> None:
    """Requests and tokens are counts: their y axis never reads 1.3 requests (latency keeps fractional ticks)."""
    page.goto(server.url + "/")
    ticks = page.evaluate(
        """async () => {
        const { lineChart, yAxis } = await import('/ui/js/charts.js');
        const yTicks = (max, integer) => {
            const values = [{t: 0, v: 0}, {t: 1000, v: max}];
            const series = [{key: 'k', label: 'k', values}];
            const fig = lineChart({id: 'c', title: 'c', unit: 'requests', integer, series});
            return [...fig.querySelectorAll('text.axis[text-anchor="end"]')].slice(0, 5).map((t) => t.textContent);
        };
        return {counts: [0, 1, 3, 5, 7, 37, 90].map((m) => yTicks(m, true)), latency: yTicks(3, false),
                axes: [1, 4, 9, 12, 101].map((m) => yAxis(m, true))};
    }"""
    )
    for row in ticks["counts"]:
        assert all(t.isdigit() for t in row), ticks["counts"]
    assert ticks["counts"][2] == ["0", "1", "2", "3", "4"]
    assert ticks["counts"][5] == ["0", "10", "20", "30", "40"]
    assert ticks["latency"] == ["0", "1.3", "2.5", "3.8", "5"]
    assert ticks["axes"] == [
        {"max": 4, "step": 1},
        {"max": 4, "step": 1},
        {"max": 20, "step": 5},
        {"max": 20, "step": 5},
        {"max": 200, "step": 50},
    ]


def test_sql_snippet_says_what_ai_query_leaves_out(page: Any, server: LiveServer) -> None:
    """ai_query takes one prompt: the SQL tab says, in SQL comments, that the system message is not sent."""
    page.goto(server.url + "/")
    sql = page.evaluate(
        """async () => {
        const { sqlSnippet } = await import('/ui/js/snippets.js');
        return sqlSnippet('bot', 'llm/v1/chat', {max_tokens: 16, messages: [
            {role: 'system', content: 'You answer in French.\\nBriefly.'},
            {role: 'user', content: 'Hi'}, {role: 'assistant', content: 'Salut'}, {role: 'user', content: 'Why?'}]});
    }"""
    )
    assert sql == (
        "-- ai_query sends one prompt per row: this request's system message is not sent"
        " (write it into the prompt to keep it):\n"
        "--   You answer in French.\n"
        "--   Briefly.\n"
        "-- nor are the 2 earlier messages: only the last user message is.\n"
        "SELECT ai_query(\n  'bot',\n  'Why?',\n  modelParameters => named_struct('max_tokens', 16)\n) AS response"
    )
