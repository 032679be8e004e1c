"""Service principals and their OAuth client secrets (store functions; callers own the session).

A service principal is a `principals` row of kind `service_principal` whose `name` is its application id
(a UUID, the OAuth client id) and whose `id` is the SCIM id. Secrets are `dose` + 64 hex characters,
shown once and kept only as SHA-256 hashes: they are long random values, so a fast hash is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelgate.store.tables import Principal as PrincipalRow
from modelgate.store.tables import ServicePrincipalSecret

KIND = "service_principal"
# Databricks' default lifetime for a service principal secret: 730 days.
DEFAULT_SECRET_LIFETIME_S = 730 * 24 * 3600
MAX_SECRET_LIFETIME_S = 730 * 24 * 3600


def _now_ms() -> int:
    return int(time.time() * 1000)


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class SecretInfo:
    id: str
    secret_hash: str
    create_time_ms: int
    expire_time_ms: int | None

    def as_json(self) -> dict[str, object]:
        """The SDK's `SecretInfo` shape. `secret_hash` is a short fingerprint, never enough to log in with."""
        out: dict[str, object] = {
            "id": self.id,
            "secret_hash": self.secret_hash[:16],
            "create_time": rfc3339(self.create_time_ms),
            "update_time": rfc3339(self.create_time_ms),
            "status": "ACTIVE",
        }
        if self.expire_time_ms is not None:
            out["expire_time"] = rfc3339(self.expire_time_ms)
        return out


def create_service_principal(
    s: Session, display_name: str, *, application_id: str | None = None, active: bool = True
) -> PrincipalRow:
    app_id = application_id or str(uuid.uuid4())
    row = PrincipalRow(kind=KIND, name=app_id, display_name=display_name, is_admin=False, active=active)
    row.created_ms = _now_ms()
    s.add(row)
    s.flush()
    return row


def application_id_taken(s: Session, application_id: str) -> bool:
    return (
        s.scalar(select(PrincipalRow.id).where(PrincipalRow.kind == KIND, PrincipalRow.name == application_id))
        is not None
    )


def list_service_principals(s: Session) -> list[PrincipalRow]:
    return list(s.scalars(select(PrincipalRow).where(PrincipalRow.kind == KIND).order_by(PrincipalRow.id)))


def get_service_principal(s: Session, scim_id: str) -> PrincipalRow | None:
    """By SCIM id (the numeric row id, as a string)."""
    if not scim_id.isdigit():
        return None
    row = s.get(PrincipalRow, int(scim_id))
    return row if row is not None and row.kind == KIND else None


def find_by_application_id(s: Session, application_id: str) -> PrincipalRow | None:
    return s.scalar(select(PrincipalRow).where(PrincipalRow.kind == KIND, PrincipalRow.name == application_id))


def delete_service_principal(s: Session, row: PrincipalRow) -> None:
    """Delete the principal; its secrets and tokens go with it (ON DELETE CASCADE)."""
    s.query(ServicePrincipalSecret).filter(ServicePrincipalSecret.principal_id == row.id).delete()
    s.delete(row)


def create_secret(s: Session, sp: PrincipalRow, lifetime_s: int | None = None) -> tuple[str, SecretInfo]:
    value = "dose" + secrets.token_hex(32)
    created = _now_ms()
    lifetime = DEFAULT_SECRET_LIFETIME_S if lifetime_s is None else lifetime_s
    row = ServicePrincipalSecret(
        id=secrets.token_hex(16),
        principal_id=sp.id,
        secret_hash=hash_secret(value),
        create_time_ms=created,
        expire_time_ms=created + lifetime * 1000,
    )
    s.add(row)
    s.flush()
    return value, _info(row)


def list_secrets(s: Session, sp: PrincipalRow) -> list[SecretInfo]:
    q = select(ServicePrincipalSecret).where(ServicePrincipalSecret.principal_id == sp.id)
    return [_info(r) for r in s.scalars(q.order_by(ServicePrincipalSecret.create_time_ms))]


def delete_secret(s: Session, sp: PrincipalRow, secret_id: str) -> bool:
    row = s.get(ServicePrincipalSecret, secret_id)
    if row is None or row.principal_id != sp.id:
        return False
    s.delete(row)
    return True


def authenticate_client(s: Session, client_id: str, client_secret: str) -> PrincipalRow | None:
    """The active service principal whose unexpired secret this is, or None."""
    sp = find_by_application_id(s, client_id)
    if sp is None or not sp.active:
        return None
    wanted = hash_secret(client_secret)
    now = _now_ms()
    for row in s.scalars(select(ServicePrincipalSecret).where(ServicePrincipalSecret.principal_id == sp.id)):
        if hmac.compare_digest(row.secret_hash, wanted) and (row.expire_time_ms is None or row.expire_time_ms > now):
            return sp
    return None


def _info(row: ServicePrincipalSecret) -> SecretInfo:
    return SecretInfo(row.id, row.secret_hash, row.create_time_ms, row.expire_time_ms)
