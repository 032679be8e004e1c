"""Personal access tokens: `dapi` + 32 hex characters, kept only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelgate.store.tables import Principal as PrincipalRow
from modelgate.store.tables import Token

PAT_PATTERN = re.compile(r"^dapi[0-9a-f]{16,64}(-\d+)?$")


def new_token_value() -> str:
    return "dapi" + secrets.token_hex(16)


def hash_token(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class TokenInfo:
    token_id: str
    comment: str | None
    creation_time: int
    expiry_time: int  # -1: never expires (the Databricks convention)
    owner: str

    def as_json(self) -> dict[str, object]:
        return {
            "token_id": self.token_id,
            "comment": self.comment or "",
            "creation_time": self.creation_time,
            "expiry_time": self.expiry_time,
            "created_by_username": self.owner,
        }


def ensure_principal(s: Session, kind: str, name: str, *, is_admin: bool = False) -> PrincipalRow:
    row = s.scalar(select(PrincipalRow).where(PrincipalRow.kind == kind, PrincipalRow.name == name))
    if row is None:
        row = PrincipalRow(kind=kind, name=name, is_admin=is_admin, active=True, created_ms=now_ms())
        s.add(row)
        s.flush()
    elif is_admin and not row.is_admin:
        row.is_admin = True
    return row


def create_token(
    s: Session,
    principal: PrincipalRow,
    *,
    comment: str | None = None,
    lifetime_seconds: int | None = None,
    value: str | None = None,
) -> tuple[str, TokenInfo]:
    """Store a token (a new random one unless `value` is given) and return its value once."""
    token_value = value or new_token_value()
    created = now_ms()
    expiry = created + lifetime_seconds * 1000 if lifetime_seconds and lifetime_seconds > 0 else None
    row = Token(
        token_id=secrets.token_hex(32),
        token_hash=hash_token(token_value),
        principal_id=principal.id,
        comment=comment,
        creation_time_ms=created,
        expiry_time_ms=expiry,
        revoked=False,
    )
    s.add(row)
    s.flush()
    return token_value, _info(row, principal.name)


def register_token_value(s: Session, principal: PrincipalRow, value: str, comment: str) -> bool:
    """Register a known token value (the admin token from the environment); idempotent."""
    if s.scalar(select(Token).where(Token.token_hash == hash_token(value))) is not None:
        return False
    create_token(s, principal, comment=comment, value=value)
    return True


def list_tokens(s: Session, principal_id: int | None = None) -> list[TokenInfo]:
    q = select(Token, PrincipalRow.name).join(PrincipalRow, PrincipalRow.id == Token.principal_id)
    q = q.where(Token.revoked.is_(False))
    if principal_id is not None:
        q = q.where(Token.principal_id == principal_id)
    return [_info(t, owner) for t, owner in s.execute(q.order_by(Token.creation_time_ms)).all()]


def revoke_token(s: Session, token_id: str, principal_id: int | None = None) -> str | None:
    """Revoke a token; returns its hash (so caches can drop it) or None if there is no such token."""
    row = s.get(Token, token_id)
    if row is None or row.revoked or (principal_id is not None and row.principal_id != principal_id):
        return None
    row.revoked = True
    return row.token_hash


def _info(row: Token, owner: str) -> TokenInfo:
    return TokenInfo(
        token_id=row.token_id,
        comment=row.comment,
        creation_time=row.creation_time_ms,
        expiry_time=row.expiry_time_ms if row.expiry_time_ms is not None else -1,
        owner=owner,
    )
