"""Secret scopes and secrets (the Databricks secrets API); values are stored encrypted.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "secret_scopes",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("backend_type", sa.String(32), nullable=False),
        sa.Column("creator", sa.String(255), nullable=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "secrets",
        sa.Column("scope", sa.String(128), sa.ForeignKey("secret_scopes.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("value_encrypted", sa.Text, nullable=False),
        sa.Column("last_updated_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("secrets")
    op.drop_table("secret_scopes")
