"""ai_query fixtures: endpoints of each task on the shared live server, and connections to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")

from modelgate.sql.duckdb_binding import AiQueryConnection, connect
from tests.conftest import UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer, create_endpoint, external_chat_config

CHAT, COMPLETIONS, EMBEDDINGS = "aiq-chat", "aiq-completions", "aiq-embeddings"
FAILING, SLOW = "aiq-fail-400", "aiq-slow"


@pytest.fixture(scope="session")
def aiq_server(server: LiveServer, upstream: FakeUpstreamThread) -> LiveServer:
    """The shared live server with one endpoint per task, plus a failing and a slow chat endpoint."""
    base = upstream.base_url
    with server.client() as c:
        create_endpoint(c, CHAT, external_chat_config(base, api_key=UPSTREAM_KEY))
        create_endpoint(c, COMPLETIONS, external_chat_config(base, "gpt-3.5-turbo-instruct", task="llm/v1/completions"))
        create_endpoint(c, EMBEDDINGS, external_chat_config(base, "text-embedding-3-small", task="llm/v1/embeddings"))
        create_endpoint(c, FAILING, external_chat_config(base, "fail-400"))
        create_endpoint(c, SLOW, external_chat_config(base, "slow-100"))
    return server


@pytest.fixture
def aiq(aiq_server: LiveServer) -> Iterator[AiQueryConnection]:
    con = connect(aiq_server.url, aiq_server.admin_token, max_retries=2)
    yield con
    con.close()
