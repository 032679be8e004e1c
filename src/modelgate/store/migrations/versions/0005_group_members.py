"""Group membership for SCIM groups (rate-limit keys and permissions can name a group).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.Integer, sa.ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("member_id", sa.Integer, sa.ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_index("ix_group_members_member_id", "group_members", ["member_id"])


def downgrade() -> None:
    op.drop_index("ix_group_members_member_id", table_name="group_members")
    op.drop_table("group_members")
