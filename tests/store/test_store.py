"""The store on its own: migrations on SQLite and PostgreSQL, SQLite's WAL mode, token records."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text

from modelgate.auth.tokens import (
    PAT_PATTERN,
    create_token,
    ensure_principal,
    hash_token,
    list_tokens,
    register_token_value,
    revoke_token,
)
from modelgate.store.db import MIGRATIONS_DIR, Database, normalize_url
from modelgate.store.tables import Base, Token
from modelgate.store.tables import Principal as PrincipalRow
from tests.support.services import fresh_postgres_database


def _head() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def _tables(db: Database) -> set[str]:
    return set(inspect(db.engine).get_table_names())


def _version(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        return [row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))]


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    database.migrate()
    yield database
    database.dispose()


def test_normalize_url_uses_psycopg3() -> None:
    assert normalize_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_migrations_create_every_table_at_head(db: Database) -> None:
    tables = _tables(db)
    assert set(Base.metadata.tables) <= tables
    assert {"principals", "tokens", "endpoints", "endpoint_permissions", "meta", "alembic_version"} <= tables
    assert _version(db) == [_head()]


def test_migrations_match_the_models(db: Database) -> None:
    """What the migrations build is what the models describe (columns, types, indexes, constraints)."""
    declared = set(Base.metadata.tables)
    with db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)

    def concerns_declared_table(diff: Any) -> bool:
        # Tables whose models live outside store.tables (not in Base.metadata here) are not judged.
        if isinstance(diff, list):
            return any(concerns_declared_table(d) for d in diff)
        kind, obj = diff[0], diff[1]
        if kind == "remove_table":
            return obj.name in declared
        if kind in ("remove_index", "remove_constraint"):
            return obj.table.name in declared
        return True

    assert [d for d in diffs if concerns_declared_table(d)] == []


def test_migrate_is_idempotent(db: Database, db_url: str) -> None:
    before = _tables(db)
    with db.session() as s:
        ensure_principal(s, "user", "keep@example.com")
    db.migrate()
    again = Database(db_url)
    try:
        again.migrate()
        assert _tables(again) == before
        assert _version(again) == [_head()]
        with again.session() as s:
            assert ensure_principal(s, "user", "keep@example.com").name == "keep@example.com"
    finally:
        again.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    try:
        db.migrate()
        with db.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
        assert (tmp_path / "wal.db-wal").exists()
    finally:
        db.dispose()


def test_token_records(db: Database) -> None:
    with db.session() as s:
        alice = ensure_principal(s, "user", "alice@example.com")
        bob = ensure_principal(s, "user", "bob@example.com")
        assert ensure_principal(s, "user", "alice@example.com").id == alice.id
        assert not alice.is_admin
        forever, forever_info = create_token(s, alice, comment="laptop")
        short, short_info = create_token(s, alice, lifetime_seconds=60)
        _bobs, bob_info = create_token(s, bob)

    assert PAT_PATTERN.match(forever) and PAT_PATTERN.match(short)
    assert forever != short
    assert forever_info.expiry_time == -1
    assert forever_info.comment == "laptop"
    assert forever_info.owner == "alice@example.com"
    assert short_info.expiry_time == short_info.creation_time + 60_000
    assert abs(short_info.creation_time - time.time() * 1000) < 60_000

    with db.session() as s:
        rows = {t.token_id: t for t in s.scalars(select(Token))}
        assert rows[forever_info.token_id].token_hash == hashlib.sha256(forever.encode()).hexdigest()
        assert all(forever not in (t.token_hash, t.token_id, t.comment) for t in rows.values())

        assert [t.token_id for t in list_tokens(s, alice.id)] == [forever_info.token_id, short_info.token_id]
        assert {t.token_id for t in list_tokens(s)} >= {forever_info.token_id, short_info.token_id, bob_info.token_id}

        # Only the owner (or an unrestricted caller, principal_id=None) revokes; once.
        assert revoke_token(s, forever_info.token_id, bob.id) is None
        assert revoke_token(s, forever_info.token_id, alice.id) == hash_token(forever)
        assert revoke_token(s, forever_info.token_id, alice.id) is None
        assert revoke_token(s, bob_info.token_id) is not None
        assert revoke_token(s, "no-such-id") is None

    with db.session() as s:
        assert [t.token_id for t in list_tokens(s, alice.id)] == [short_info.token_id]
        assert bob_info.token_id not in {t.token_id for t in list_tokens(s)}


def test_register_token_value_is_idempotent(db: Database) -> None:
    value = "dapi" + "ab" * 16
    with db.session() as s:
        admin = ensure_principal(s, "user", "admin", is_admin=True)
        assert register_token_value(s, admin, value, comment="MODELGATE_ADMIN_TOKEN") is True
        assert register_token_value(s, admin, value, comment="MODELGATE_ADMIN_TOKEN") is False
    with db.session() as s:
        admin = ensure_principal(s, "user", "admin")
        assert admin.is_admin
        assert register_token_value(s, admin, value, comment="MODELGATE_ADMIN_TOKEN") is False
        assert [t.comment for t in list_tokens(s, admin.id)] == ["MODELGATE_ADMIN_TOKEN"]


def test_failed_session_rolls_back(db: Database) -> None:
    with pytest.raises(RuntimeError), db.session() as s:
        ensure_principal(s, "user", "ghost@example.com")
        raise RuntimeError("boom")
    with db.session() as s:
        ensure_principal(s, "user", "real@example.com")
    with db.session() as s:
        names = set(s.scalars(select(PrincipalRow.name)))
    assert names == {"real@example.com"}


def test_concurrent_migrate_on_postgres() -> None:
    """Two processes starting on one fresh database must not both try to create the tables."""
    with fresh_postgres_database() as url:
        dbs = [Database(url), Database(url)]
        barrier = threading.Barrier(len(dbs))
        errors: list[BaseException] = []

        def start(db: Database) -> None:
            try:
                barrier.wait(10)
                db.migrate()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(db,)) for db in dbs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        try:
            assert not any(t.is_alive() for t in threads)
            assert errors == []
            assert _version(dbs[0]) == [_head()]
            assert set(Base.metadata.tables) <= _tables(dbs[1])
        finally:
            for db in dbs:
                db.dispose()


def test_migration_0007_keeps_existing_scopes_and_endpoints_working(db_url: str) -> None:
    """Scopes made before ACLs existed give their creator MANAGE; endpoints take their creator as the
    principal whose rights their references use (a service principal keeps its kind)."""
    from alembic import command

    database = Database(db_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with database.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
    with database.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO principals (kind, name, is_admin, active, created_ms) VALUES "
            "('user', 'ann@example.com', false, true, 0), ('service_principal', 'sp-1', false, true, 0)"
        ))  # fmt: skip
        conn.execute(text("INSERT INTO secret_scopes VALUES ('old', 'DATABRICKS', 'ann@example.com', 0)"))
        for eid, creator in (("e1", "ann@example.com"), ("e2", "sp-1")):
            conn.execute(
                text(
                    "INSERT INTO endpoints (id, name, creator, creation_ms, updated_ms, config_version, config, "
                    "tags, route_optimized, extras) VALUES (:id, :id, :creator, 0, 0, 1, '{}', '[]', false, '{}')"
                ),
                {"id": eid, "creator": creator},
            )
    database.migrate()
    with database.engine.connect() as conn:
        assert list(conn.execute(text("SELECT scope, principal, permission FROM secret_acls"))) == [
            ("old", "ann@example.com", "MANAGE")
        ]
        owners = conn.execute(text("SELECT id, config_owner_kind, config_owner FROM endpoints ORDER BY id"))
        assert list(owners) == [("e1", "user", "ann@example.com"), ("e2", "service_principal", "sp-1")]
    database.dispose()
