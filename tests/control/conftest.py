"""Fixtures for the control-plane tests: user tokens on the shared servers, a fresh server for edge cases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.control.checks import UserTokens
from tests.support.live import LiveServer

SMALL_BODY_LIMIT = 4096


@pytest.fixture(scope="session")
def user_tokens() -> UserTokens:
    return UserTokens()


@pytest.fixture(scope="session")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A fresh SQLite server with a 4 KiB body limit. Nothing creates endpoints on it, so lists stay empty."""
    env = {"MODELGATE_MAX_REQUEST_BYTES": str(SMALL_BODY_LIMIT)}
    with LiveServer(tmp_path_factory.mktemp("mg-small"), env=env) as live:
        yield live
