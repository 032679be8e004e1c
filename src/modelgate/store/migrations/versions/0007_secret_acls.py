"""Secret scope ACLs, and who last set each endpoint's config (whose rights its secret references use).

Existing scopes give their creator MANAGE, as a new scope does. Existing endpoints take their creator as the
principal that set their config, so a reference keeps working exactly while the creator may read it.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "secret_acls",
        sa.Column("scope", sa.String(128), sa.ForeignKey("secret_scopes.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("principal", sa.String(255), primary_key=True),
        sa.Column("permission", sa.String(16), nullable=False),
    )
    op.execute(
        "INSERT INTO secret_acls (scope, principal, permission) "
        "SELECT name, creator, 'MANAGE' FROM secret_scopes WHERE creator IS NOT NULL"
    )
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("config_owner_kind", sa.String(32), nullable=True))
        batch.add_column(sa.Column("config_owner", sa.String(255), nullable=True))
    op.execute(
        "UPDATE endpoints SET config_owner = creator, config_owner_kind = COALESCE("
        "(SELECT MIN(p.kind) FROM principals p WHERE p.name = endpoints.creator AND p.kind <> 'group'), 'user') "
        "WHERE creator IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("config_owner")
        batch.drop_column("config_owner_kind")
    op.drop_table("secret_acls")
