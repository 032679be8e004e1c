"""Shared fixtures: the fake OpenAI upstream, live modelgate servers on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer
from tests.support.services import fresh_postgres_database

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
# Test servers answer upstream failures at once (production retries for 30 s); retry tests set their own budget.
os.environ.setdefault("MODELGATE_UPSTREAM_RETRY_BUDGET_S", "0")

UPSTREAM_KEY = "sk-upstream-test"
# A secret the session's servers hold in their environment, for `{{env/...}}` references (not MODELGATE_* or
# DATABRICKS_*: those names are the server's own).
ENV_SECRET_NAME = "MG_TEST_ENV_SECRET"
ENV_SECRET_VALUE = "env-" + secrets.token_hex(12)


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstreamThread]:
    """One fake OpenAI server for the session; tests that count requests call `upstream.reset()` first."""
    with FakeUpstreamThread(api_key=UPSTREAM_KEY) as fake:
        yield fake


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A live `modelgate serve` on SQLite, shared by the session (tests use distinct endpoint names)."""
    with LiveServer(tmp_path_factory.mktemp("mg-sqlite"), env={ENV_SECRET_NAME: ENV_SECRET_VALUE}) as live:
        yield live


@pytest.fixture(scope="session")
def builtin_models_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Server environment that exposes the built-in models, with a model cache that already holds the chat
    model's bf16 copy: the GGUF file is converted once per session (about 25 s on two cores), here, and every
    server that asks for this environment loads the copy in seconds. A MODELGATE_MODEL_CACHE_DIR in the
    environment is used as it is, so CI can keep the cache between runs."""
    from modelgate.engines.catalog import DEFAULT_CHAT_PATH, resolve_path
    from modelgate.engines.gguf_checkpoint import hf_folder_for

    cache = Path(os.environ.get("MODELGATE_MODEL_CACHE_DIR") or tmp_path_factory.mktemp("model-cache"))
    hf_folder_for(Path(resolve_path(DEFAULT_CHAT_PATH)), cache)
    return {"MODELGATE_EXPOSE_DEFAULT_MODELS": "1", "MODELGATE_MODEL_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> Iterator[LiveServer]:
    """A live `modelgate serve` on a fresh PostgreSQL database."""
    env = {ENV_SECRET_NAME: ENV_SECRET_VALUE}
    with LiveServer(tmp_path_factory.mktemp("mg-pg"), database_url=pg_url, env=env) as live:
        yield live


@pytest.fixture(params=["sqlite", "postgres"])
def any_server(request: pytest.FixtureRequest) -> LiveServer:
    """Run a test once against each store."""
    name = "server" if request.param == "sqlite" else "pg_server"
    live: LiveServer = request.getfixturevalue(name)
    return live


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
