"""The secret store behind the Databricks secrets API and `{{secrets/<scope>/<key>}}` references.

Values are encrypted with the server's SecretCipher (its key lives in the data dir or MODELGATE_SECRET_KEY,
never in the database) and are only ever decrypted for a provider call, through `secret`, and only for an
endpoint whose config owner may READ the scope. Nothing here returns a value to a client. Permissions
(READ, WRITE, MANAGE per scope) are in auth/secret_acls.py.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelgate.auth.groups import ADMINS_GROUP
from modelgate.auth.permissions import ALL_USERS_GROUP
from modelgate.auth.principal import Principal
from modelgate.auth.secret_acls import (
    PERMISSION_NAMES,
    ScopePermission,
    load_principal,
    require_scope_permission,
    scope_permission,
)
from modelgate.errors import InvalidParameterValue, PermissionDenied, ResourceAlreadyExists, ResourceDoesNotExist
from modelgate.secrets import ENCRYPTED, ConfigOwner, EnvPolicy, SecretCipher, references_in
from modelgate.store.db import Database
from modelgate.store.tables import Principal as PrincipalRow
from modelgate.store.tables import Secret, SecretAcl, SecretScope

# Names a `{{secrets/<scope>/<key>}}` reference can spell (Databricks: alphanumerics, '-', '_', '.').
NAME = re.compile(r"^[\w.\-]{1,128}$")
MAX_VALUE_BYTES = 128 * 1024


@dataclass(frozen=True)
class ScopeInfo:
    name: str
    backend_type: str


@dataclass(frozen=True)
class SecretInfo:
    key: str
    last_updated_timestamp: int


def check_name(kind: str, value: str) -> None:
    if not NAME.match(value):
        raise InvalidParameterValue(f"{kind} name {value!r} is invalid: use 1-128 letters, digits, '_', '-' or '.'")


@dataclass(frozen=True)
class AclInfo:
    principal: str
    permission: str


class SecretStore:
    """Scopes, secrets and their ACLs. Every call takes the caller and checks its permission on the scope,
    after the scope's existence (so a missing scope is a 404 for everyone, as on Databricks)."""

    def __init__(self, db: Database, cipher: SecretCipher) -> None:
        self.db = db
        self.cipher = cipher

    # -- scopes --------------------------------------------------------------------------------------
    async def create_scope(self, name: str, creator: Principal, initial_manage_principal: str | None = None) -> None:
        """Any user may create a scope; MANAGE goes to `initial_manage_principal` if given, else the creator."""
        check_name("Scope", name)

        def work(s: Session) -> None:
            if s.get(SecretScope, name) is not None:
                raise ResourceAlreadyExists(f"Scope {name} already exists!")
            manager = initial_manage_principal or creator.name
            if initial_manage_principal:
                _check_principal(s, manager)
            s.add(SecretScope(name=name, backend_type="DATABRICKS", creator=creator.name, created_ms=_now_ms()))
            s.flush()
            s.add(SecretAcl(scope=name, principal=manager, permission="MANAGE"))

        try:
            await self.db.run(work)
        except IntegrityError:
            raise ResourceAlreadyExists(f"Scope {name} already exists!") from None

    async def list_scopes(self) -> list[ScopeInfo]:
        def work(s: Session) -> list[ScopeInfo]:
            rows = s.scalars(select(SecretScope).order_by(SecretScope.name))
            return [ScopeInfo(r.name, r.backend_type) for r in rows]

        return await self.db.run(work)

    async def delete_scope(self, name: str, who: Principal) -> None:
        def work(s: Session) -> None:
            scope = _authorized_scope(s, name, who, ScopePermission.MANAGE, "delete it")
            s.execute(delete(Secret).where(Secret.scope == name))
            s.execute(delete(SecretAcl).where(SecretAcl.scope == name))
            s.delete(scope)

        await self.db.run(work)

    # -- secrets -------------------------------------------------------------------------------------
    async def put(self, scope: str, key: str, value: str, who: Principal) -> None:
        check_name("Secret key", key)
        if len(value.encode()) > MAX_VALUE_BYTES:
            raise InvalidParameterValue(f"Secret values are limited to {MAX_VALUE_BYTES} bytes.")
        token = self.cipher.encrypt(value)[ENCRYPTED]

        def work(s: Session) -> None:
            _authorized_scope(s, scope, who, ScopePermission.WRITE, "put secrets in it")
            row = s.get(Secret, (scope, key))
            if row is None:
                s.add(Secret(scope=scope, key=key, value_encrypted=token, last_updated_ms=_now_ms()))
            else:
                row.value_encrypted, row.last_updated_ms = token, _now_ms()

        await self.db.run(work)

    async def list_secrets(self, scope: str, who: Principal) -> list[SecretInfo]:
        def work(s: Session) -> list[SecretInfo]:
            _authorized_scope(s, scope, who, ScopePermission.READ, "list its secrets")
            rows = s.scalars(select(Secret).where(Secret.scope == scope).order_by(Secret.key))
            return [SecretInfo(r.key, r.last_updated_ms) for r in rows]

        return await self.db.run(work)

    async def delete(self, scope: str, key: str, who: Principal) -> None:
        def work(s: Session) -> None:
            _authorized_scope(s, scope, who, ScopePermission.WRITE, "delete secrets from it")
            row = s.get(Secret, (scope, key))
            if row is None:
                raise ResourceDoesNotExist(f"Secret {key} does not exist in scope {scope}!")
            s.delete(row)

        await self.db.run(work)

    # -- ACLs ----------------------------------------------------------------------------------------
    async def put_acl(self, scope: str, principal: str, permission: str, who: Principal) -> None:
        """Create or overwrite `principal`'s entry (the principal must exist: a user, group or service
        principal, or the built-in groups `users` and `admins`)."""
        if permission not in PERMISSION_NAMES:
            raise InvalidParameterValue(
                f"Invalid permission {permission!r}: use one of {', '.join(PERMISSION_NAMES)}."
            )

        def work(s: Session) -> None:
            _authorized_scope(s, scope, who, ScopePermission.MANAGE, "change its ACLs")
            _check_principal(s, principal)
            row = s.get(SecretAcl, (scope, principal))
            if row is None:
                s.add(SecretAcl(scope=scope, principal=principal, permission=permission))
            else:
                row.permission = permission

        await self.db.run(work)

    async def delete_acl(self, scope: str, principal: str, who: Principal) -> None:
        def work(s: Session) -> None:
            _authorized_scope(s, scope, who, ScopePermission.MANAGE, "change its ACLs")
            row = s.get(SecretAcl, (scope, principal))
            if row is None:
                raise ResourceDoesNotExist(f"Failed to delete secret acl for principal {principal} in scope {scope}.")
            s.delete(row)

        await self.db.run(work)

    async def get_acl(self, scope: str, principal: str, who: Principal) -> AclInfo:
        def work(s: Session) -> AclInfo:
            _authorized_scope(s, scope, who, ScopePermission.MANAGE, "read its ACLs")
            row = s.get(SecretAcl, (scope, principal))
            if row is None:
                raise ResourceDoesNotExist(f"Failed to get secret acl for principal {principal} in scope {scope}.")
            return AclInfo(row.principal, row.permission)

        return await self.db.run(work)

    async def list_acls(self, scope: str, who: Principal) -> list[AclInfo]:
        def work(s: Session) -> list[AclInfo]:
            _authorized_scope(s, scope, who, ScopePermission.MANAGE, "read its ACLs")
            rows = s.scalars(select(SecretAcl).where(SecretAcl.scope == scope).order_by(SecretAcl.principal))
            return [AclInfo(r.principal, r.permission) for r in rows]

        return await self.db.run(work)

    # -- resolution (SecretSource) -------------------------------------------------------------------
    def secret(self, scope: str, key: str, owner: ConfigOwner | None, field: str) -> str | None:
        """The plaintext for a reference, if `owner` (who last set the endpoint's config) may READ the scope.

        Synchronous (SecretResolver's interface); providers cache the result for a few seconds
        (secrets.REFERENCE_TTL_SECONDS), so this runs rarely."""
        with self.db.session() as s:
            who = load_principal(s, owner.kind, owner.name) if owner is not None else None
            if who is None or scope_permission(s, who, scope) < ScopePermission.READ:
                # Checked before existence: the error must not tell a missing scope from a forbidden one.
                owner_name = owner.name if owner else "nobody"
                reason = "no longer exists or is inactive" if who is None else "does not have READ on it"
                raise PermissionDenied(
                    f"{field} refers to secret scope {scope}, but the endpoint's config was last set by "
                    f"{owner_name}, who {reason}. A user with READ on the scope must set the endpoint's config "
                    "again, or a user with MANAGE on the scope must grant READ."
                )
            row = s.get(Secret, (scope, key))
            token = row.value_encrypted if row is not None else None
        return None if token is None else self.cipher.decrypt({ENCRYPTED: token})

    def is_admin(self, owner: ConfigOwner | None) -> bool:
        if owner is None:
            return False
        with self.db.session() as s:
            who = load_principal(s, owner.kind, owner.name)
        return who is not None and who.is_admin

    def check_references(self, s: Session, who: Principal, tree: Any, env_policy: EnvPolicy) -> None:
        """At config time: `who` must READ every scope the config names, and be an admin to name the
        server's environment. Raises before anything is stored."""
        for field, ref in references_in(tree, "config.served_entities"):
            kind, name, _key = ref
            if kind == "env":
                refusal = env_policy.refusal(name)
                if refusal is not None:
                    raise PermissionDenied(f"{field}: {refusal}")
                if not who.is_admin:
                    raise PermissionDenied(
                        f"{field} refers to environment variable {name!r}: only workspace admins and the config "
                        "file may reference the server's environment. Put the value in a secret scope you can "
                        "read and use '{{secrets/<scope>/<key>}}'."
                    )
            elif scope_permission(s, who, name) < ScopePermission.READ:
                raise PermissionDenied(
                    f"User {who.name} does not have READ permission on secret scope {name}, which {field} "
                    "refers to. Ask a user with MANAGE on the scope to grant READ, or use a scope you can read."
                )


def _check_principal(s: Session, name: str) -> None:
    if name in (ALL_USERS_GROUP, ADMINS_GROUP):
        return
    if s.scalar(select(PrincipalRow.id).where(PrincipalRow.name == name).limit(1)) is None:
        raise InvalidParameterValue(
            f"Principal {name} does not exist: give a user name, a group name, a service principal's "
            "application id, or 'users' for everyone."
        )


def _authorized_scope(s: Session, name: str, who: Principal, needed: ScopePermission, action: str) -> SecretScope:
    """The scope, once it exists (404 for everyone otherwise) and `who` holds `needed` on it (else 403)."""
    scope = s.get(SecretScope, name)
    if scope is None:
        raise ResourceDoesNotExist(f"Scope {name} does not exist!")
    require_scope_permission(s, who, name, needed, action)
    return scope


def _now_ms() -> int:
    return int(time.time() * 1000)
