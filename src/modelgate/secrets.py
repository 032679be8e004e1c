"""Secrets in endpoint configs: encrypted at rest, resolved when used, never echoed.

A config value can be
- a `*_plaintext` field: encrypted with the server's key (kept in the data dir or MODELGATE_SECRET_KEY,
  never in the database) and stored as `{"$encrypted": "<fernet token>"}`;
- a reference `{{secrets/<scope>/<key>}}`: looked up in the secret store each time its cache expires,
  so rotating a secret takes effect without touching the endpoint;
- a reference `{{env/<NAME>}}`: read from the server's environment.

References resolve with the rights of the principal that last set the endpoint's config (`ConfigOwner`):
READ on the secret's scope, or being an admin for `{{env/...}}`; see docs/security.md.
"""

from __future__ import annotations

import copy
import fnmatch
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.fernet import Fernet, InvalidToken

from modelgate.errors import InvalidParameterValue, PermissionDenied, TemporarilyUnavailable
from modelgate.redaction import SecretMask

ENCRYPTED = "$encrypted"
PLAINTEXT_SUFFIX = "_plaintext"
REFERENCE = re.compile(
    r"^\{\{\s*(secrets)/([\w.\-]+)/([\w.\-]+)\s*\}\}$|^\{\{\s*(env)/([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$"
)
REFERENCE_TTL_SECONDS = 5.0


def load_or_create_key(data_dir: Path, env_key: str | None) -> bytes:
    """The Fernet key: from the environment if given, else `secret.key` in the data dir (made on first use)."""
    if env_key:
        return env_key.encode()
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_bytes().strip()
    key = Fernet.generate_key()
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


class SecretCipher:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def encrypt(self, plaintext: str) -> dict[str, str]:
        return {ENCRYPTED: self._fernet.encrypt(plaintext.encode()).decode()}

    def decrypt(self, stored: dict[str, str]) -> str:
        try:
            return self._fernet.decrypt(stored[ENCRYPTED].encode()).decode()
        except (InvalidToken, KeyError):
            raise TemporarilyUnavailable(
                "A stored secret cannot be decrypted with this server's key; was MODELGATE_SECRET_KEY or "
                "the data dir's secret.key changed? Update the endpoint's secret to fix it."
            ) from None


def encrypt_plaintext_fields(obj: Any, cipher: SecretCipher, path: str = "") -> Any:
    """Copy of a client's config tree with every `*_plaintext` string encrypted (before it is stored).

    A `*_plaintext` that is not a string is refused: an `{"$encrypted": ...}` object sent by a client would
    otherwise be stored as is and decrypted for the client's endpoint, whoever's secret it held."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            here = f"{path}.{k}" if path else str(k)
            if k.endswith(PLAINTEXT_SUFFIX) and v is not None and not isinstance(v, str):
                raise InvalidParameterValue(f"{here} must be a string: the secret's value itself")
            if k.endswith(PLAINTEXT_SUFFIX) and isinstance(v, str):
                out[k] = cipher.encrypt(v)
            else:
                out[k] = encrypt_plaintext_fields(v, cipher, here)
        return out
    if isinstance(obj, list):
        return [encrypt_plaintext_fields(v, cipher, f"{path}[{i}]") for i, v in enumerate(obj)]
    return obj


def redact(obj: Any) -> Any:
    """Copy of a config tree without any `*_plaintext` field (for responses and logs)."""
    if isinstance(obj, dict):
        return {k: redact(v) for k, v in obj.items() if not k.endswith(PLAINTEXT_SUFFIX)}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj


@dataclass(frozen=True, slots=True)
class ConfigOwner:
    """The principal that last set an endpoint's config: its references resolve with this one's rights."""

    kind: str  # user | service_principal
    name: str


class SecretSource(Protocol):
    """Where `{{secrets/...}}` values come from, and who may use them (the secret store)."""

    def secret(self, scope: str, key: str, owner: ConfigOwner | None, field: str) -> str | None:
        """The value, None when the secret does not exist; PermissionDenied when `owner` lacks READ."""
        ...

    def is_admin(self, owner: ConfigOwner | None) -> bool: ...


# Variables holding modelgate's own credentials (its admin token, its secret key, a workspace token it was
# started with): no endpoint config may name them, whatever the allow-list says.
PROTECTED_ENV = ("MODELGATE_*", "DATABRICKS_*")


@dataclass(frozen=True)
class EnvPolicy:
    """Which `{{env/NAME}}` references may resolve: names matching `allowed` (globs), never PROTECTED_ENV."""

    allowed: tuple[str, ...] = ("*",)

    @classmethod
    def parse(cls, text: str | None) -> EnvPolicy:
        if not text:
            return cls()
        return cls(tuple(p.strip() for p in text.split(",") if p.strip()))

    def refusal(self, name: str) -> str | None:
        """Why `name` may not be referenced, or None when it may."""
        upper = name.upper()
        if any(fnmatch.fnmatchcase(upper, p) for p in PROTECTED_ENV):
            return (
                f"environment variable {name!r} holds modelgate's own credentials and can never be referenced; "
                "put the value in a secret scope and use '{{secrets/<scope>/<key>}}'"
            )
        if not any(fnmatch.fnmatchcase(name, p) for p in self.allowed):
            return (
                f"environment variable {name!r} is not in MODELGATE_ALLOWED_ENV_REFERENCES; the operator can "
                "add it there, or use a secret scope"
            )
        return None


def parse_reference(value: str) -> tuple[str, str, str] | None:
    """`("secrets", scope, key)` or `("env", NAME, "")` for a reference, else None."""
    m = REFERENCE.match(value)
    if m is None:
        return None
    if m.group(4) == "env":
        return "env", m.group(5), ""
    return "secrets", m.group(2), m.group(3)


def references_in(tree: Any, path: str = "") -> list[tuple[str, tuple[str, str, str]]]:
    """Every `{{...}}` string in a stored config tree, with its field path; a malformed one is a 400."""
    found: list[tuple[str, tuple[str, str, str]]] = []
    if isinstance(tree, dict):
        for k, v in tree.items():
            found += references_in(v, f"{path}.{k}" if path else str(k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            found += references_in(v, f"{path}[{i}]")
    elif isinstance(tree, str) and tree.lstrip().startswith("{{"):
        ref = parse_reference(tree)
        if ref is None:
            raise InvalidParameterValue(
                f"{path}: {tree!r} is not a secret reference; use '{{{{secrets/<scope>/<key>}}}}' or "
                "'{{env/<NAME>}}', or give the value in the matching '*_plaintext' field"
            )
        found.append((path, ref))
    return found


class SecretResolver:
    """Turns stored secret values into plaintext for a provider call, with the rights of the config's owner.

    The app holds one resolver without an owner; each endpoint's providers get `for_owner(...)` of it, so a
    reference is checked against the principal that set the config every time it is (re)read."""

    def __init__(
        self,
        cipher: SecretCipher,
        source: SecretSource | None = None,
        *,
        env_policy: EnvPolicy | None = None,
        owner: ConfigOwner | None = None,
        mask: SecretMask | None = None,
    ) -> None:
        self.cipher = cipher
        self._source = source
        self.env_policy = env_policy or EnvPolicy()
        self.owner = owner
        self.mask = mask if mask is not None else SecretMask()  # every value resolved here is masked in output

    def for_owner(self, owner: ConfigOwner | None) -> SecretResolver:
        bound = copy.copy(self)
        bound.owner = owner
        return bound

    def resolve(self, value: Any, field: str) -> str:
        if isinstance(value, dict) and ENCRYPTED in value:
            return self.cipher.decrypt(value)
        if isinstance(value, str):
            ref = parse_reference(value)
            if ref is None:
                raise InvalidParameterValue(f"{field} is not a secret reference")
            if ref[0] == "env":
                return self._env(ref[1], field)
            scope, key = ref[1], ref[2]
            found = self._source.secret(scope, key, self.owner, field) if self._source else None
            if found is None:
                raise TemporarilyUnavailable(
                    f"{field} refers to secret {scope}/{key}, which does not exist; create it with the secrets API"
                )
            return found
        raise InvalidParameterValue(f"{field} has no usable value")

    def _env(self, name: str, field: str) -> str:
        refusal = self.env_policy.refusal(name)
        if refusal is not None:
            raise PermissionDenied(f"{field}: {refusal}")
        # Without a store to ask, nobody is known to be an admin: refused, as for a plain user.
        if self._source is None or not self._source.is_admin(self.owner):
            who = self.owner.name if self.owner else "nobody"
            raise PermissionDenied(
                f"{field} refers to environment variable {name!r}, but the endpoint's config was last set by "
                f"{who}, who is not a workspace admin; only admins and the config file may reference the "
                "server's environment. An admin must set the config again, or use a secret scope."
            )
        env = os.environ.get(name)
        if env is None:
            raise TemporarilyUnavailable(
                f"{field} refers to environment variable {name!r}, which is not set on the server"
            )
        return env


class SecretValue:
    """A secret as a provider holds it: resolved lazily, references re-read after a short TTL.

    A reference refused for lack of rights stays refused for the same TTL (no store query per request), and
    a refusal drops the value cached before it: losing READ stops the secret within REFERENCE_TTL_SECONDS."""

    __slots__ = ("_cached", "_expires", "_field", "_raw", "_refused", "_resolver")

    def __init__(self, raw: Any, field: str, resolver: SecretResolver) -> None:
        self._raw = raw
        self._field = field
        self._resolver = resolver
        self._cached: str | None = None
        self._refused: PermissionDenied | None = None
        self._expires = 0.0

    def get(self) -> str:
        now = time.monotonic()
        if self._cached is None or now >= self._expires:
            if self._refused is not None and now < self._expires:
                raise copy.copy(self._refused)  # a fresh instance: re-raising one object grows its traceback
            try:
                self._cached = self._resolver.resolve(self._raw, self._field)
            except PermissionDenied as exc:
                self._cached, self._refused, self._expires = None, exc, now + REFERENCE_TTL_SECONDS
                raise
            self._refused = None
            self._resolver.mask.add(self._cached)
            permanent = isinstance(self._raw, dict)
            self._expires = float("inf") if permanent else now + REFERENCE_TTL_SECONDS
        return self._cached

    def __repr__(self) -> str:  # never show the value
        return f"SecretValue({self._field})"
