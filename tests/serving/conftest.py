"""Fixtures for the data-plane tests against the live servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest

from tests.serving.support import endpoint_name, openai_client
from tests.support.live import LiveServer


@pytest.fixture
def ep_name(request: pytest.FixtureRequest) -> Callable[..., str]:
    """`ep_name("chat")` -> an endpoint name prefixed with this test's name, unique to this test."""

    def make(suffix: str = "") -> str:
        return endpoint_name(request.node.nodeid, request.node.name, suffix)

    return make


@pytest.fixture
def oai(server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai_client(server) as client:
        yield client
