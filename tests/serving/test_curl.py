"""The real `curl` binary, run through a shell exactly as the Databricks docs show it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.serving.support import external_entity, sse_events
from tests.support.live import LiveServer, create_endpoint

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the curl binary is not installed")


def run_curl(server: LiveServer, script: str, body: dict[str, Any]) -> tuple[int, dict[str, str], str]:
    """Run `script` in bash with DATABRICKS_HOST/DATABRICKS_TOKEN/BODY set; return (status, headers, body).

    `-sS -i` only silences the progress meter and prints the response head, so the status and headers can
    be checked; the rest of each command line is the docs' own.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABRICKS_HOST": server.url,
        "DATABRICKS_TOKEN": server.admin_token,
        "BODY": orjson.dumps(body).decode(),
    }
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    head, _, payload = out.stdout.replace("\r\n", "\n").partition("\n\n")
    status_line, *header_lines = head.split("\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, payload


@pytest.fixture
def chat_endpoint(server: LiveServer, upstream: FakeUpstreamThread, ep_name: Callable[..., str]) -> str:
    name = ep_name()
    with server.client() as c:
        create_endpoint(c, name, external_entity(upstream.base_url, "gpt-4o-mini"))
    return name


def test_invocations_with_basic_token_auth(server: LiveServer, chat_endpoint: str) -> None:
    status, headers, payload = run_curl(
        server,
        'curl -sS -i -u token:$DATABRICKS_TOKEN -X POST -H "Content-Type: application/json" -d "$BODY" '
        f"$DATABRICKS_HOST/serving-endpoints/{chat_endpoint}/invocations",
        {"messages": [{"role": "user", "content": "curl basic auth"}], "max_tokens": 128},
    )
    assert status == 200, payload
    assert headers["served-model-name"] == "gpt-4o-mini"
    data = orjson.loads(payload)
    assert data["choices"][0]["message"]["content"] == "echo: curl basic auth"
    assert data["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_invocations_with_bearer_header(server: LiveServer, chat_endpoint: str) -> None:
    status, headers, payload = run_curl(
        server,
        'curl -sS -i -X POST -H "Authorization: Bearer $DATABRICKS_TOKEN" -H "Content-Type: application/json" '
        f'-d "$BODY" $DATABRICKS_HOST/serving-endpoints/{chat_endpoint}/invocations',
        {"messages": [{"role": "user", "content": "curl bearer"}]},
    )
    assert status == 200, payload
    assert headers["served-model-name"] == "gpt-4o-mini"
    assert orjson.loads(payload)["choices"][0]["message"]["content"] == "echo: curl bearer"


@pytest.mark.parametrize(
    "auth", ["-u token:$DATABRICKS_TOKEN", '-H "Authorization: Bearer $DATABRICKS_TOKEN"'], ids=["basic", "bearer"]
)
def test_openai_chat_route(server: LiveServer, chat_endpoint: str, auth: str) -> None:
    status, _, payload = run_curl(
        server,
        f'curl -sS -i {auth} -X POST -H "Content-Type: application/json" -d "$BODY" '
        "$DATABRICKS_HOST/serving-endpoints/chat/completions",
        {"model": chat_endpoint, "messages": [{"role": "user", "content": "curl openai route"}]},
    )
    assert status == 200, payload
    data = orjson.loads(payload)
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["content"] == "echo: curl openai route"


def test_wrong_token_is_401(server: LiveServer, chat_endpoint: str) -> None:
    status, _, payload = run_curl(
        server,
        'curl -sS -i -u token:dapi00000000000000000000000000000000 -X POST -H "Content-Type: application/json" '
        f'-d "$BODY" $DATABRICKS_HOST/serving-endpoints/{chat_endpoint}/invocations',
        {"messages": [{"role": "user", "content": "nope"}]},
    )
    assert status == 401
    assert orjson.loads(payload)["error_code"] == "UNAUTHENTICATED"


def test_streaming_output_is_plain_data_lines(server: LiveServer, chat_endpoint: str) -> None:
    status, headers, payload = run_curl(
        server,
        'curl -sS -i -N -u token:$DATABRICKS_TOKEN -X POST -H "Content-Type: application/json" -d "$BODY" '
        f"$DATABRICKS_HOST/serving-endpoints/{chat_endpoint}/invocations",
        {"messages": [{"role": "user", "content": "curl streaming words"}], "stream": True},
    )
    assert status == 200, payload
    assert headers["content-type"].startswith("text/event-stream")
    # Every line is `data: {json}`, a blank separator, or the final `data: [DONE]`: no comments, no `event:`.
    lines = payload.split("\n")
    assert lines[-3:] == ["data: [DONE]", "", ""]
    for i, line in enumerate(lines[:-3]):
        if i % 2:
            assert line == "", repr(line)
        else:
            assert line.startswith("data: {") and line.endswith("}"), repr(line)
    events = sse_events(payload)
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text == "echo: curl streaming words"
    assert events[-1]["choices"] == []
    assert events[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
