"""Initial schema: principals, tokens, endpoints, endpoint permissions, meta.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "principals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=True),
        sa.Column("is_admin", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("kind", "name", name="uq_principals_kind_name"),
    )
    op.create_table(
        "tokens",
        sa.Column("token_id", sa.String(64), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("principal_id", sa.Integer, sa.ForeignKey("principals.id", ondelete="CASCADE"), nullable=False),
        sa.Column("comment", sa.String(1024), nullable=True),
        sa.Column("creation_time_ms", sa.BigInteger, nullable=False),
        sa.Column("expiry_time_ms", sa.BigInteger, nullable=True),
        sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_tokens_principal_id", "tokens", ["principal_id"])
    op.create_table(
        "endpoints",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("creator", sa.String(255), nullable=True),
        sa.Column("creation_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("task", sa.String(64), nullable=True),
        sa.Column("config_version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("ai_gateway", sa.JSON, nullable=True),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("route_optimized", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("extras", sa.JSON, nullable=False),
    )
    op.create_table(
        "endpoint_permissions",
        sa.Column("endpoint_id", sa.String(32), sa.ForeignKey("endpoints.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("principal_kind", sa.String(32), primary_key=True),
        sa.Column("principal_name", sa.String(255), primary_key=True),
        sa.Column("level", sa.String(32), nullable=False),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("meta")
    op.drop_table("endpoint_permissions")
    op.drop_table("endpoints")
    op.drop_index("ix_tokens_principal_id", table_name="tokens")
    op.drop_table("tokens")
    op.drop_table("principals")
