"""The real PostgreSQL and Redis the machine runs (CI included). In CI a missing service fails the test."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.live import LiveServer

PG_ADMIN_URL = os.environ.get("MODELGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MODELGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({exc}); start it or see README 'Tests'"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database on the local PostgreSQL server, dropped afterwards."""
    import psycopg

    name = "mg_test_" + secrets.token_hex(6)
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL at " + PG_ADMIN_URL, exc)
        raise
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        _unavailable("Redis at " + REDIS_URL, exc)
    return REDIS_URL


@contextmanager
def live_server_on(store: str, data_dir: Path, env: dict[str, str]) -> Iterator[LiveServer]:
    """A `modelgate serve` of its own on `store` ("sqlite", or "postgres": a fresh database, dropped after)."""
    if store == "sqlite":
        with LiveServer(data_dir, env=env) as live:
            yield live
    else:
        with fresh_postgres_database() as url, LiveServer(data_dir, env=env, database_url=url) as live:
            yield live
