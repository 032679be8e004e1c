"""Persistent state: SQLAlchemy tables, Alembic migrations and the repositories over them."""
