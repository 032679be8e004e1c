"""The secret store behind the Databricks secrets API and `{{secrets/<scope>/<key>}}` references.

Values are encrypted with the server's SecretCipher (its key lives in the data dir or MODELGATE_SECRET_KEY,
never in the database) and are only ever decrypted for a provider call, through `lookup`. Nothing here
returns a value to a client.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelgate.errors import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from modelgate.secrets import ENCRYPTED, SecretCipher
from modelgate.store.db import Database
from modelgate.store.tables import Secret, SecretScope

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


class SecretStore:
    def __init__(self, db: Database, cipher: SecretCipher) -> None:
        self.db = db
        self.cipher = cipher

    # -- scopes --------------------------------------------------------------------------------------
    async def create_scope(self, name: str, creator: str) -> None:
        check_name("Scope", name)

        def work(s: Session) -> None:
            if s.get(SecretScope, name) is not None:
                raise ResourceAlreadyExists(f"Scope {name} already exists!")
            s.add(SecretScope(name=name, backend_type="DATABRICKS", creator=creator, created_ms=_now_ms()))

        await self.db.run(work)

    async def list_scopes(self) -> list[ScopeInfo]:
        def work(s: Session) -> list[ScopeInfo]:
            rows = s.scalars(select(SecretScope).order_by(SecretScope.name))
            return [ScopeInfo(r.name, r.backend_type) for r in rows]

        return await self.db.run(work)

    async def delete_scope(self, name: str) -> None:
        def work(s: Session) -> None:
            scope = _scope(s, name)
            for secret in s.scalars(select(Secret).where(Secret.scope == name)):
                s.delete(secret)
            s.delete(scope)

        await self.db.run(work)

    # -- secrets -------------------------------------------------------------------------------------
    async def put(self, scope: str, key: str, value: str) -> None:
        check_name("Secret key", key)
        if len(value.encode()) > MAX_VALUE_BYTES:
            raise InvalidParameterValue(f"Secret values are limited to {MAX_VALUE_BYTES} bytes.")
        token = self.cipher.encrypt(value)[ENCRYPTED]

        def work(s: Session) -> None:
            _scope(s, scope)
            row = s.get(Secret, (scope, key))
            if row is None:
                s.add(Secret(scope=scope, key=key, value_encrypted=token, last_updated_ms=_now_ms()))
            else:
                row.value_encrypted, row.last_updated_ms = token, _now_ms()

        await self.db.run(work)

    async def list_secrets(self, scope: str) -> list[SecretInfo]:
        def work(s: Session) -> list[SecretInfo]:
            _scope(s, scope)
            rows = s.scalars(select(Secret).where(Secret.scope == scope).order_by(Secret.key))
            return [SecretInfo(r.key, r.last_updated_ms) for r in rows]

        return await self.db.run(work)

    async def delete(self, scope: str, key: str) -> None:
        def work(s: Session) -> None:
            _scope(s, scope)
            row = s.get(Secret, (scope, key))
            if row is None:
                raise ResourceDoesNotExist(f"Secret {key} does not exist in scope {scope}!")
            s.delete(row)

        await self.db.run(work)

    # -- resolution ----------------------------------------------------------------------------------
    def lookup(self, scope: str, key: str) -> str | None:
        """The plaintext for a reference, or None. Synchronous (SecretResolver's interface); providers
        cache the result for a few seconds (secrets.REFERENCE_TTL_SECONDS), so this runs rarely."""
        with self.db.session() as s:
            row = s.get(Secret, (scope, key))
            token = row.value_encrypted if row is not None else None
        return None if token is None else self.cipher.decrypt({ENCRYPTED: token})


def _scope(s: Session, name: str) -> SecretScope:
    scope = s.get(SecretScope, name)
    if scope is None:
        raise ResourceDoesNotExist(f"Scope {name} does not exist!")
    return scope


def _now_ms() -> int:
    return int(time.time() * 1000)
