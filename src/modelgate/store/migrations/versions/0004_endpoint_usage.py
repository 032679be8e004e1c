"""AI Gateway usage tracking: the endpoint_usage table (one row per query).

Revision ID: 0004
Revises: 0002

Inference payload tables are created by the gateway writer when an endpoint first logs to one, because
their names come from each endpoint's inference_table_config.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "endpoint_usage",
        # A sequential key: appending under the random request id made each insert 2.5x dearer in SQLite.
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("databricks_request_id", sa.String(64), nullable=False),
        sa.Column("client_request_id", sa.String(256), nullable=True),
        sa.Column("requester", sa.String(255), nullable=True),
        sa.Column("endpoint_name", sa.String(63), nullable=True),
        sa.Column("endpoint_id", sa.String(32), nullable=True),
        sa.Column("served_entity_id", sa.String(128), nullable=True),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("usage_date", sa.Date, nullable=True),
        sa.Column("request_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("input_token_count", sa.BigInteger, nullable=True),
        sa.Column("output_token_count", sa.BigInteger, nullable=True),
        sa.Column("input_character_count", sa.BigInteger, nullable=True),
        sa.Column("output_character_count", sa.BigInteger, nullable=True),
        sa.Column("usage_context", sa.JSON, nullable=True),
        sa.Column("request_streaming", sa.Boolean, nullable=True),
    )
    op.create_index("ix_endpoint_usage_endpoint_time", "endpoint_usage", ["endpoint_name", "request_time"])


def downgrade() -> None:
    op.drop_index("ix_endpoint_usage_endpoint_time", table_name="endpoint_usage")
    op.drop_table("endpoint_usage")
