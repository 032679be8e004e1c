"""Secret scope permissions (READ < WRITE < MANAGE), as the Databricks secrets API defines them.

- READ: list the scope's secrets and use them in an endpoint config (`{{secrets/<scope>/<key>}}`).
- WRITE: READ, plus put and delete secrets.
- MANAGE: WRITE, plus change the scope's ACLs and delete the scope.

A principal holds the highest of the entries for its own name, each of its groups and the group `users`
(everyone). Admins hold MANAGE on every scope, whatever the ACLs say.
"""

from __future__ import annotations

from enum import IntEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelgate.auth.groups import ADMINS_GROUP, groups_of
from modelgate.auth.permissions import ALL_USERS_GROUP
from modelgate.auth.principal import Principal
from modelgate.errors import PermissionDenied
from modelgate.store.tables import Principal as PrincipalRow
from modelgate.store.tables import SecretAcl


class ScopePermission(IntEnum):
    NONE = 0
    READ = 1
    WRITE = 2
    MANAGE = 3


PERMISSION_NAMES = ("READ", "WRITE", "MANAGE")


def scope_permission(s: Session, principal: Principal, scope: str) -> ScopePermission:
    if principal.is_admin:
        return ScopePermission.MANAGE
    names = {principal.name, ALL_USERS_GROUP, *principal.groups}
    rows = s.scalars(select(SecretAcl.permission).where(SecretAcl.scope == scope, SecretAcl.principal.in_(names)))
    return max((ScopePermission[p] for p in rows), default=ScopePermission.NONE)


def require_scope_permission(
    s: Session, principal: Principal, scope: str, needed: ScopePermission, action: str
) -> None:
    if scope_permission(s, principal, scope) < needed:
        raise PermissionDenied(
            f"User {principal.name} does not have {needed.name} permission on scope {scope} to {action}. "
            "Ask a user with MANAGE on the scope to grant it (POST /api/2.0/secrets/acls/put)."
        )


def load_principal(s: Session, kind: str, name: str) -> Principal | None:
    """The principal as it is now (active, admin, groups), or None if it no longer exists or is inactive."""
    row = s.scalar(select(PrincipalRow).where(PrincipalRow.kind == kind, PrincipalRow.name == name))
    if row is None or not row.active:
        return None
    groups = groups_of(s, row.id)
    is_admin = row.is_admin or ADMINS_GROUP in groups
    return Principal(kind=row.kind, name=row.name, is_admin=is_admin, groups=groups, principal_id=row.id)
