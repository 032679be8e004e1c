"""Alembic environment: migrations run on the connection the app hands over (see Database.migrate)."""

from __future__ import annotations

from alembic import context

from modelgate.store.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when alembic is run by hand without the app
    raise RuntimeError("run migrations through modelgate (Database.migrate), which supplies a connection")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
