"""Fixtures for provider tests: the fake provider servers, endpoint names, the official OpenAI client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from tests.fakes.anthropic_upstream import FakeAnthropicThread
from tests.serving.support import endpoint_name
from tests.support.live import LiveServer, create_endpoint

ANTHROPIC_KEY = "sk-ant-test-0123456789"


@pytest.fixture(scope="session")
def anthropic_fake() -> Iterator[FakeAnthropicThread]:
    with FakeAnthropicThread(ANTHROPIC_KEY) as fake:
        yield fake


@pytest.fixture
def ep_name(request: pytest.FixtureRequest) -> Callable[..., str]:
    def make(suffix: str = "") -> str:
        return endpoint_name(request.node.nodeid, request.node.name, suffix)

    return make


@pytest.fixture
def oai(server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/serving-endpoints", api_key=server.admin_token, max_retries=0) as c:
        yield c


def anthropic_entity(base: str, model: str = "claude-sonnet-4-5", **config: Any) -> dict[str, Any]:
    cfg = {"anthropic_api_base": base, **config}
    if "anthropic_api_key" not in cfg:
        cfg.setdefault("anthropic_api_key_plaintext", ANTHROPIC_KEY)
    return {"external_model": {"name": model, "provider": "anthropic", "task": "llm/v1/chat", "anthropic_config": cfg}}


@pytest.fixture
def anthropic_endpoint(
    server: LiveServer, anthropic_fake: FakeAnthropicThread, ep_name: Callable[..., str]
) -> Callable[..., str]:
    """`anthropic_endpoint(model="...")` creates an endpoint on the fake and returns its name."""

    def make(model: str = "claude-sonnet-4-5", suffix: str = "", **config: Any) -> str:
        name = ep_name(suffix)
        with server.client() as c:
            create_endpoint(c, name, anthropic_entity(anthropic_fake.url, model, **config))
        return name

    return make
