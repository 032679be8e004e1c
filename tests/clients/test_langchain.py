"""databricks-langchain 0.21.0 (.venv-clients-lc): ChatDatabricks and DatabricksEmbeddings."""

from __future__ import annotations

from tests.clients.conftest import SCRIPTS, Endpoints, client_env, run_script
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer


def test_langchain(server: LiveServer, endpoints: Endpoints, clean_upstream: FakeUpstreamThread) -> None:
    out = run_script(
        "lc",
        SCRIPTS / "langchain_client.py",
        client_env(server, server.admin_token),
        endpoints.chat,
        endpoints.completions,
        endpoints.embeddings,
    )
    assert out["invoke"] == {
        "content": "echo: hi langchain",
        "usage": {"input_tokens": 2, "output_tokens": 3, "total_tokens": 5},
    }
    # Counted once: the same numbers the upstream reported, not twice them (clients.md §0.7).
    assert out["stream"] == {
        "text": "echo: stream from langchain",
        "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
    }
    assert out["tool_calls"] == [{"name": "GetWeather", "args": {"city": "Paris"}}]
    assert out["tool_calls_streamed"] == [{"name": "GetWeather", "args": {"city": "Paris"}}]
    assert out["responses_invoke"] == "echo: hi responses"
    assert out["responses_stream"] == "echo: stream responses"
    assert out["embed_query"] == 8
    assert out["embed_documents"] == [25, 8]
    # DatabricksEmbeddings batches 20 documents per request: 1 query + 2 document batches.
    embedding_inputs = [r.json["input"] for r in clean_upstream.requests if r.path.endswith("/embeddings")]
    assert [len(i) for i in embedding_inputs] == [1, 20, 5]
