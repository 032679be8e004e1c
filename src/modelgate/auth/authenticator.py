"""Who is calling: turns the Authorization header into a Principal.

Accepted: `Bearer <token>` and Basic `token:<token>` (what `curl -u token:$DATABRICKS_TOKEN` sends).
Tokens are checked by a chain of verifiers (personal access tokens here; OAuth access tokens plug in the
same way). Accepted tokens are cached for a few seconds, keyed by the header as sent, so the hot path is one
dict lookup; a local revocation drops the entries at once, other processes see it within the cache TTL. When
an entry expires, the requests that arrive meanwhile share one lookup: at 64 in flight, each expiry had cost
64 queries.

Rejected tokens are what anonymous callers control, so they are kept apart and bounded by memory, not only
by count: an Authorization header past MAX_AUTHORIZATION_BYTES is refused (431) before anything is kept, and
a rejection is remembered for REJECTED_TTL_SECONDS under the header's 32-byte digest, never the header, in at
most MAX_REJECTED_ENTRIES entries (oldest first out). Keyed by the raw header, 20,000 distinct 16 KB junk
tokens had kept 320 MB alive. The accepted-token cache counts its keys' bytes too: only callers with a valid
token can fill it, but one token can be spelled many ways (any Basic user name).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelgate.auth.groups import ADMINS_GROUP, groups_of
from modelgate.auth.principal import Principal
from modelgate.errors import RequestHeaderFieldsTooLarge, Unauthenticated
from modelgate.store.db import Database
from modelgate.store.tables import Principal as PrincipalRow
from modelgate.store.tables import Token

CACHE_TTL_SECONDS = 5.0
MAX_CACHE_ENTRIES = 100_000
# Sum of the cached headers' lengths; past it the accepted-token cache starts over (as past the entry count).
MAX_CACHE_KEY_BYTES = 16 * 1024 * 1024
# Our tokens are 36 characters and our OAuth access tokens under 1 KB; Entra ID tokens reach a few KB.
MAX_AUTHORIZATION_BYTES = 8 * 1024
REJECTED_TTL_SECONDS = 2.0
MAX_REJECTED_ENTRIES = 4096

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
        # Accepted tokens, keyed by the Authorization header as sent, so a hit costs one dict lookup (no
        # parsing, no hash); each entry keeps its token's hash so that a revocation can find it.
        self._cache: dict[str, tuple[Principal, float, str]] = {}
        self._cache_key_bytes = 0
        # Rejected headers: sha256 digest -> until. One TTL for all, so insertion order is expiry order and
        # the oldest entry is always the first to go.
        self._rejected: OrderedDict[bytes, float] = OrderedDict()
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
            return hit[0]
        # Past here the caller is new, expired or wrong; nothing it sends is kept at its own size.
        if len(authorization) > MAX_AUTHORIZATION_BYTES:
            raise RequestHeaderFieldsTooLarge(
                f"The Authorization header is {len(authorization)} bytes; the limit is {MAX_AUTHORIZATION_BYTES}."
            )
        digest = hashlib.sha256(authorization.encode()).digest()
        rejected_until = self._rejected.get(digest)
        if rejected_until is not None and rejected_until > now:
            raise Unauthenticated("Invalid access token.")
        token = extract_token(authorization)
        key = hashlib.sha256(token.encode()).hexdigest()
        principal, expires = await self._verify_once(token, key)
        if principal is None:
            self._remember_rejected(digest, now)
            raise Unauthenticated("Invalid access token.")
        until = now + CACHE_TTL_SECONDS
        if expires is not None:
            until = min(until, expires)
        if len(self._cache) >= MAX_CACHE_ENTRIES or self._cache_key_bytes >= MAX_CACHE_KEY_BYTES:
            self._cache.clear()
            self._cache_key_bytes = 0
        if authorization not in self._cache:
            self._cache_key_bytes += len(authorization)
        self._cache[authorization] = (principal, until, key)
        return principal

    def _remember_rejected(self, digest: bytes, now: float) -> None:
        rejected = self._rejected
        rejected.pop(digest, None)
        rejected[digest] = now + REJECTED_TTL_SECONDS
        while rejected:
            oldest, until = next(iter(rejected.items()))
            if until > now and len(rejected) <= MAX_REJECTED_ENTRIES:
                break
            del rejected[oldest]

    def forget(self, token_hash: str) -> None:
        """Drop a revoked token at once (it may be cached under several header spellings)."""
        for header in [h for h, entry in self._cache.items() if entry[2] == token_hash]:
            self._cache_key_bytes -= len(header)
            del self._cache[header]

    def forget_all(self) -> None:
        self._cache.clear()
        self._cache_key_bytes = 0
        self._rejected.clear()

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
