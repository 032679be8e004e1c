"""Who is calling: turns the Authorization header into a Principal.

Accepted: `Bearer <token>` and Basic `token:<token>` (what `curl -u token:$DATABRICKS_TOKEN` sends).
Tokens are checked by a chain of verifiers (personal access tokens here; OAuth access tokens plug in the
same way). Results are cached by token hash for a few seconds so the hot path is a dict lookup; a local
revocation drops the entries at once, other processes see it within the cache TTL. When an entry expires,
the requests that arrive meanwhile share one lookup: at 64 in flight, each expiry had cost 64 queries.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelgate.auth.groups import ADMINS_GROUP, groups_of
from modelgate.auth.principal import Principal
from modelgate.errors import Unauthenticated
from modelgate.store.db import Database
from modelgate.store.tables import Principal as PrincipalRow
from modelgate.store.tables import Token

CACHE_TTL_SECONDS = 5.0
MAX_CACHE_ENTRIES = 100_000

# A verifier returns the principal and the token's own expiry (epoch seconds, or None), or None when the
# token is not one it knows.
TokenVerifier = Callable[[str], Awaitable[tuple[Principal, float | None] | None]]

_MISSING = (
    "Credential was not sent or was of an unsupported type for this API. Send "
    "'Authorization: Bearer <token>' (or Basic auth with user 'token' and the token as password)."
)


class Authenticator:
    def __init__(self, db: Database) -> None:
        self._db = db
        # Keyed by the Authorization header as sent, so a hit costs one dict lookup (no parsing, no hash);
        # each entry keeps its token's hash so that a revocation can find it.
        self._cache: dict[str, tuple[Principal | None, float, str]] = {}
        self._lookups: dict[str, asyncio.Future[tuple[Principal | None, float | None]]] = {}
        self._verifiers: list[TokenVerifier] = [self._verify_pat]

    def add_verifier(self, verifier: TokenVerifier) -> None:
        self._verifiers.append(verifier)

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated(_MISSING)
        now = time.time()
        hit = self._cache.get(authorization)
        if hit is not None and hit[1] > now:
            if hit[0] is None:
                raise Unauthenticated("Invalid access token.")
            return hit[0]
        token = extract_token(authorization)
        key = hashlib.sha256(token.encode()).hexdigest()
        principal, expires = await self._verify_once(token, key)
        until = now + CACHE_TTL_SECONDS
        if expires is not None:
            until = min(until, expires)
        if len(self._cache) >= MAX_CACHE_ENTRIES:
            self._cache.clear()
        self._cache[authorization] = (principal, until, key)
        if principal is None:
            raise Unauthenticated("Invalid access token.")
        return principal

    def forget(self, token_hash: str) -> None:
        """Drop a revoked token at once (it may be cached under several header spellings)."""
        for header in [h for h, entry in self._cache.items() if entry[2] == token_hash]:
            del self._cache[header]

    def forget_all(self) -> None:
        self._cache.clear()

    async def _verify_once(self, token: str, key: str) -> tuple[Principal | None, float | None]:
        """One verification per token at a time; concurrent callers await the same result.

        The lookup runs as its own task, so a caller that is cancelled (its client left) does not cancel it
        for the others."""
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = self._lookups[key] = asyncio.ensure_future(self._verify(token))
            lookup.add_done_callback(lambda _: self._lookups.pop(key, None))
        return await asyncio.shield(lookup)

    async def _verify(self, token: str) -> tuple[Principal | None, float | None]:
        for verifier in self._verifiers:
            found = await verifier(token)
            if found is not None:
                return found
        return None, None

    async def _verify_pat(self, token: str) -> tuple[Principal, float | None] | None:
        if not token.startswith("dapi"):
            return None
        token_hash = hashlib.sha256(token.encode()).hexdigest()

        def lookup(s: Session) -> tuple[Principal, float | None] | None:
            row = s.execute(
                select(Token, PrincipalRow)
                .join(PrincipalRow, PrincipalRow.id == Token.principal_id)
                .where(Token.token_hash == token_hash)
            ).first()
            if row is None:
                return None
            tok, who = row
            if tok.revoked or not who.active:
                return None
            expires = tok.expiry_time_ms / 1000 if tok.expiry_time_ms is not None else None
            if expires is not None and expires <= time.time():
                return None
            groups = groups_of(s, who.id)
            # Members of the workspace group `admins` are admins, as on Databricks.
            is_admin = who.is_admin or ADMINS_GROUP in groups
            principal = Principal(kind=who.kind, name=who.name, is_admin=is_admin, groups=groups, principal_id=who.id)
            return principal, expires

        return await self._db.run(lookup)


def extract_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated(_MISSING)
    scheme, _, rest = authorization.partition(" ")
    rest = rest.strip()
    scheme = scheme.lower()
    if scheme == "bearer" and rest:
        return rest
    if scheme == "basic" and rest:
        try:
            decoded = base64.b64decode(rest, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthenticated("Malformed Basic credentials.") from None
        _user, sep, password = decoded.partition(":")
        if sep and password:
            return password
        raise Unauthenticated("Basic credentials need the form 'token:<personal access token>'.")
    raise Unauthenticated(_MISSING)
