"""mlflow.deployments get_deploy_client("databricks") (mlflow-skinny 3.17.2) against a live modelgate."""

from __future__ import annotations

import secrets

from tests.clients.conftest import SCRIPTS, Endpoints, client_env, run_script
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer


def test_mlflow_deployments(server: LiveServer, upstream: FakeUpstreamThread, endpoints: Endpoints) -> None:
    new_name = "mlflow-" + secrets.token_hex(3)
    out = run_script(
        "new",
        SCRIPTS / "mlflow_deploy.py",
        client_env(server, server.admin_token),
        endpoints.chat,
        endpoints.completions,
        endpoints.embeddings,
        upstream.base_url,
        new_name,
    )
    assert out["mlflow_version"] == "3.17.2"
    assert out["predict_chat"] == "echo: hi mlflow"
    assert out["predict_completions"] == "echo: Once upon"
    assert out["predict_embeddings"] == [8, 8, 8]
    # predict_stream accepts only `data:` lines; usage comes once at the end.
    assert out["stream_chat"] == {"text": "echo: stream it", "usage_chunks": [5]}
    assert out["stream_completions"] == "echo: stream a completion"
    assert out["list_has_chat"] is True
    assert out["get"] == {"ready": "READY", "config_update": "NOT_UPDATING"}
    assert out["created"] == new_name
    assert out["updated_model"] == "gpt-4o"
    assert out["delete"] == {}
    assert out["list_after_delete_has_new"] is False
