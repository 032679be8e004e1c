"""Helpers shared by the data-plane tests: endpoint names per test, endpoint bodies, SSE parsing."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from typing import Any

import openai
import orjson

from tests.conftest import UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeUpstreamThread, RecordedRequest
from tests.support.live import LiveServer

Json = dict[str, Any]


def endpoint_name(node_id: str, test_name: str, suffix: str = "") -> str:
    """A valid endpoint name (<= 63 chars of [A-Za-z0-9_-]) that starts with the test's name and is unique to it."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", test_name.removeprefix("test_")).strip("-")[:40]
    digest = hashlib.sha1(node_id.encode()).hexdigest()[:6]
    return f"{base}-{digest}" + (f"-{suffix}" if suffix else "")


def external_entity(
    upstream_base: str,
    model: str,
    *,
    task: str = "llm/v1/chat",
    api_key: str = UPSTREAM_KEY,
    name: str | None = None,
) -> Json:
    """A served entity for provider `openai` pointing at a fake upstream."""
    entity: Json = {
        "external_model": {
            "name": model,
            "provider": "openai",
            "task": task,
            "openai_config": {"openai_api_base": upstream_base, "openai_api_key_plaintext": api_key},
        }
    }
    if name is not None:
        entity["name"] = name
    return entity


def openai_client(live: LiveServer) -> openai.OpenAI:
    """The official client as Databricks documents it: base_url <host>/serving-endpoints, a PAT as api_key.

    No retries, so each call is exactly one request and error tests see the first answer.
    """
    return openai.OpenAI(base_url=live.url + "/serving-endpoints", api_key=live.admin_token, max_retries=0)


def sse_events(raw: str) -> list[Json]:
    """The JSON events of an SSE body, checking its framing: only `data:` lines and blank separators,
    ending with `data: [DONE]`."""
    assert raw.endswith("data: [DONE]\n\n"), raw[-200:]
    blocks = raw.split("\n\n")
    assert blocks[-1] == "" and blocks[-2] == "data: [DONE]", blocks[-3:]
    events: list[Json] = []
    for block in blocks[:-2]:
        assert block.startswith("data: ") and "\n" not in block, repr(block)
        event = orjson.loads(block[len("data: ") :])
        assert isinstance(event, dict), event
        events.append(event)
    return events


def requests_with(fake: FakeUpstreamThread, marker: str) -> list[RecordedRequest]:
    """The requests the fake recorded whose JSON body mentions `marker` (tests share one fake)."""
    return [r for r in list(fake.requests) if marker in orjson.dumps(r.json).decode()]


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
