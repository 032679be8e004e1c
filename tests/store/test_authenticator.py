"""The authenticator's caches: concurrent requests with an uncached token share one database lookup; rejected
tokens are remembered by digest, briefly and boundedly."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from modelgate.auth import authenticator
from modelgate.auth.authenticator import Authenticator
from modelgate.auth.tokens import create_token, ensure_principal
from modelgate.errors import RequestHeaderFieldsTooLarge, Unauthenticated
from modelgate.store.db import Database


@pytest.fixture
def db(tmp_path: Path) -> Any:
    database = Database(f"sqlite:///{tmp_path / 'auth.db'}")
    database.migrate()
    yield database
    database.dispose()


def _token(db: Database) -> str:
    with db.session() as s:
        value, _ = create_token(s, ensure_principal(s, "user", "ada@example.com"))
    return value


class CountingDatabase:
    """The real database, counting the lookups that reach it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.calls = 0

    async def run(self, fn: Any) -> Any:
        self.calls += 1
        await asyncio.sleep(0.05)  # a lookup slow enough that the other requests arrive while it runs
        return await self.db.run(fn)


async def test_concurrent_requests_share_one_lookup(db: Database) -> None:
    token = _token(db)
    counting = CountingDatabase(db)
    auth = Authenticator(counting)  # type: ignore[arg-type]
    principals = await asyncio.gather(*(auth.authenticate(f"Bearer {token}") for _ in range(64)))
    assert {p.name for p in principals} == {"ada@example.com"}
    assert counting.calls == 1
    auth.forget_all()
    await auth.authenticate(f"Bearer {token}")
    assert counting.calls == 2


async def test_a_cancelled_caller_does_not_fail_the_others(db: Database) -> None:
    token = _token(db)
    auth = Authenticator(CountingDatabase(db))  # type: ignore[arg-type]
    first = asyncio.ensure_future(auth.authenticate(f"Bearer {token}"))
    second = asyncio.ensure_future(auth.authenticate(f"Bearer {token}"))
    await asyncio.sleep(0.01)
    first.cancel()
    assert (await second).name == "ada@example.com"
    assert first.cancelled()


async def test_concurrent_bad_tokens_all_fail(db: Database) -> None:
    auth = Authenticator(CountingDatabase(db))  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(auth.authenticate("Bearer dapi" + "0" * 32) for _ in range(8)), return_exceptions=True
    )
    assert all(isinstance(r, Unauthenticated) for r in results)


async def test_rejected_tokens_are_kept_by_digest_briefly_and_boundedly(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What anonymous callers send is never kept at its own size: a 32-byte digest, a short TTL, a cap."""
    monkeypatch.setattr(authenticator, "MAX_REJECTED_ENTRIES", 16)
    counting = CountingDatabase(db)
    auth = Authenticator(counting)  # type: ignore[arg-type]
    junk = [f"Bearer dapi{i:032x}" + "0" * 4000 for i in range(40)]
    for header in junk:
        with pytest.raises(Unauthenticated):
            await auth.authenticate(header)
    assert len(auth._rejected) == 16
    assert all(len(key) == 32 for key in auth._rejected)
    assert not auth._cache
    # A repeat within the TTL is answered from the cache; after it, the entry is gone and looked up again.
    calls = counting.calls
    with pytest.raises(Unauthenticated):
        await auth.authenticate(junk[-1])
    assert counting.calls == calls
    later = time.time() + authenticator.REJECTED_TTL_SECONDS + 1
    monkeypatch.setattr(authenticator.time, "time", lambda: later)
    with pytest.raises(Unauthenticated):
        await auth.authenticate(junk[0])
    assert counting.calls == calls + 1
    assert len(auth._rejected) == 1  # the expired ones went with that insert


async def test_an_oversized_authorization_is_refused_before_lookup(db: Database) -> None:
    counting = CountingDatabase(db)
    auth = Authenticator(counting)  # type: ignore[arg-type]
    with pytest.raises(RequestHeaderFieldsTooLarge):
        await auth.authenticate("Bearer dapi" + "0" * authenticator.MAX_AUTHORIZATION_BYTES)
    assert counting.calls == 0 and not auth._rejected
    # A valid token is still served from its cache entry, whatever was refused before it.
    token = _token(db)
    await auth.authenticate(f"Bearer {token}")
    await auth.authenticate(f"Bearer {token}")
    assert counting.calls == 1
