"""OAuth machine-to-machine: the signing key, RS256 access tokens, and the client-credentials grant.

Access tokens are JWTs shaped like Databricks' (databricks_api.md §8.2): header `typ: at+jwt`, claims
`client_id`, `scope`, `iss` = `{host}/oidc`, `aud` = the workspace id, `sub` = the application id, `iat`,
`exp` = `iat` + 1 h and `jti`. The RSA key is made once and kept in the data dir, so tokens survive
restarts; servers that share a database must share the data dir's `oauth_signing_key.pem` too.
Verification checks the signature, expiry and audience, then that the service principal still exists and
is active (the authenticator caches the answer for a few seconds).
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from modelgate.auth.groups import ADMINS_GROUP, groups_of
from modelgate.auth.principal import Principal
from modelgate.auth.service_principals import KIND, authenticate_client, find_by_application_id
from modelgate.store.db import Database

ACCESS_TOKEN_LIFETIME_S = 3600
DEFAULT_SCOPE = "all-apis"
# Scopes a token may carry. modelgate does not narrow access by scope: every token acts as its principal.
SUPPORTED_SCOPES = frozenset({"all-apis", "offline_access"})
KEY_FILE = "oauth_signing_key.pem"
LEEWAY_S = 30


class OAuthError(Exception):
    """An RFC 6749 §5.2 error: rendered as `{"error", "error_description"}`, never as a Databricks error."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def load_or_create_signing_key(data_dir: Path) -> rsa.RSAPrivateKey:
    path = data_dir / KEY_FILE
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race; use its key
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return loaded


def _b64url_uint(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str

    def as_json(self) -> dict[str, object]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }


class OAuthIssuer:
    def __init__(self, db: Database, key: rsa.RSAPrivateKey, workspace_id: str) -> None:
        self._db = db
        self._key = key
        self._public = key.public_key()
        self.workspace_id = workspace_id
        der = self._public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.key_id = hashlib.sha256(der).hexdigest()[:16]

    def jwks(self) -> dict[str, Any]:
        numbers = self._public.public_numbers()
        key = {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.key_id}
        return {"keys": [{**key, "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}]}

    def issue(self, application_id: str, issuer: str, scope: str, now: float | None = None) -> IssuedToken:
        iat = int(now if now is not None else time.time())
        claims = {
            "client_id": application_id,
            "scope": scope,
            "iss": issuer,
            "aud": self.workspace_id,
            "sub": application_id,
            "iat": iat,
            "exp": iat + ACCESS_TOKEN_LIFETIME_S,
            "jti": str(uuid.uuid4()),
        }
        token = jwt.encode(claims, self._key, algorithm="RS256", headers={"typ": "at+jwt", "kid": self.key_id})
        return IssuedToken(token, ACCESS_TOKEN_LIFETIME_S, scope)

    async def client_credentials(
        self, client_id: str, client_secret: str, scope: str | None, issuer: str
    ) -> IssuedToken:
        wanted = _normalize_scope(scope)

        def check(s: Any) -> bool:
            return authenticate_client(s, client_id, client_secret) is not None

        if not await self._db.run(check):
            raise OAuthError("invalid_client", "Client authentication failed.", status=401)
        return self.issue(client_id, issuer, wanted)

    async def verify(self, token: str) -> tuple[Principal, float | None] | None:
        """A TokenVerifier (see auth.authenticator): None for anything that is not one of our valid tokens."""
        if token.count(".") != 2 or not token.startswith("eyJ"):
            return None
        try:
            claims = jwt.decode(
                token,
                self._public,
                algorithms=["RS256"],
                audience=self.workspace_id,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "sub", "aud"]},
            )
        except jwt.PyJWTError:
            return None
        application_id = str(claims["sub"])

        def lookup(s: Any) -> Principal | None:
            row = find_by_application_id(s, application_id)
            if row is None or not row.active:
                return None
            # Group grants apply to service principals as to users (endpoint ACLs, secret scope ACLs).
            groups = groups_of(s, row.id)
            is_admin = row.is_admin or ADMINS_GROUP in groups
            return Principal(kind=KIND, name=row.name, is_admin=is_admin, groups=groups, principal_id=row.id)

        who = await self._db.run(lookup)
        if who is None:
            return None
        return who, float(claims["exp"])


def _normalize_scope(scope: str | None) -> str:
    """Space-separated scopes, sorted and de-duplicated as the SDK sends them; `all-apis` if none."""
    parts = sorted(set((scope or "").split()))
    if not parts:
        return DEFAULT_SCOPE
    unknown = [p for p in parts if p not in SUPPORTED_SCOPES]
    if unknown:
        raise OAuthError("invalid_scope", f"Unsupported scope(s): {' '.join(unknown)}. Use 'all-apis'.")
    return " ".join(parts)
