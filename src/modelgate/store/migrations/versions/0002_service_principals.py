"""OAuth secrets of service principals (the principals themselves live in `principals`, kind service_principal).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_principal_secrets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("principal_id", sa.Integer, sa.ForeignKey("principals.id", ondelete="CASCADE"), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("create_time_ms", sa.BigInteger, nullable=False),
        sa.Column("expire_time_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_service_principal_secrets_principal_id", "service_principal_secrets", ["principal_id"])


def downgrade() -> None:
    op.drop_index("ix_service_principal_secrets_principal_id", table_name="service_principal_secrets")
    op.drop_table("service_principal_secrets")
