"""Secrets in endpoint configs: encrypted at rest, resolved when used, never echoed.

A config value can be
- a `*_plaintext` field: encrypted with the server's key (kept in the data dir or MODELGATE_SECRET_KEY,
  never in the database) and stored as `{"$encrypted": "<fernet token>"}`;
- a reference `{{secrets/<scope>/<key>}}`: looked up in the secret store each time its cache expires,
  so rotating a secret takes effect without touching the endpoint;
- a reference `{{env/<NAME>}}`: read from the server's environment.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from modelgate.errors import InvalidParameterValue, TemporarilyUnavailable
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


def is_reference(value: Any) -> bool:
    return isinstance(value, str) and REFERENCE.match(value) is not None


def encrypt_plaintext_fields(obj: Any, cipher: SecretCipher) -> Any:
    """Copy of a config tree with every `*_plaintext` string encrypted (before it is stored)."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if k.endswith(PLAINTEXT_SUFFIX) and isinstance(v, str):
                out[k] = cipher.encrypt(v)
            else:
                out[k] = encrypt_plaintext_fields(v, cipher)
        return out
    if isinstance(obj, list):
        return [encrypt_plaintext_fields(v, cipher) for v in obj]
    return obj


def redact(obj: Any) -> Any:
    """Copy of a config tree without any `*_plaintext` field (for responses and logs)."""
    if isinstance(obj, dict):
        return {k: redact(v) for k, v in obj.items() if not k.endswith(PLAINTEXT_SUFFIX)}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj


SecretLookup = Callable[[str, str], str | None]


class SecretResolver:
    """Turns stored secret values into plaintext for a provider call."""

    def __init__(
        self, cipher: SecretCipher, lookup: SecretLookup | None = None, mask: SecretMask | None = None
    ) -> None:
        self.cipher = cipher
        self._lookup = lookup
        self.mask = mask if mask is not None else SecretMask()  # every value resolved here is masked in output

    def set_lookup(self, lookup: SecretLookup) -> None:
        self._lookup = lookup

    def check_reference(self, value: str) -> None:
        """Reject references that can never resolve (bad syntax) at config time."""
        if not is_reference(value):
            raise InvalidParameterValue(
                f"{value!r} is not a secret reference; use '{{{{secrets/<scope>/<key>}}}}' or "
                "'{{env/<NAME>}}', or give the value in the matching '*_plaintext' field"
            )

    def resolve(self, value: Any, field: str) -> str:
        if isinstance(value, dict) and ENCRYPTED in value:
            return self.cipher.decrypt(value)
        if isinstance(value, str):
            m = REFERENCE.match(value)
            if m is None:
                raise InvalidParameterValue(f"{field} is not a secret reference")
            if m.group(4) == "env":
                env = os.environ.get(m.group(5))
                if env is None:
                    raise TemporarilyUnavailable(
                        f"{field} refers to environment variable {m.group(5)!r}, which is not set on the server"
                    )
                return env
            scope, key = m.group(2), m.group(3)
            found = self._lookup(scope, key) if self._lookup else None
            if found is None:
                raise TemporarilyUnavailable(
                    f"{field} refers to secret {scope}/{key}, which does not exist; create it with the secrets API"
                )
            return found
        raise InvalidParameterValue(f"{field} has no usable value")


class SecretValue:
    """A secret as a provider holds it: resolved lazily, references re-read after a short TTL."""

    __slots__ = ("_cached", "_expires", "_field", "_raw", "_resolver")

    def __init__(self, raw: Any, field: str, resolver: SecretResolver) -> None:
        self._raw = raw
        self._field = field
        self._resolver = resolver
        self._cached: str | None = None
        self._expires = 0.0

    def get(self) -> str:
        now = time.monotonic()
        if self._cached is None or now >= self._expires:
            self._cached = self._resolver.resolve(self._raw, self._field)
            self._resolver.mask.add(self._cached)
            permanent = isinstance(self._raw, dict)
            self._expires = float("inf") if permanent else now + REFERENCE_TTL_SECONDS
        return self._cached

    def __repr__(self) -> str:  # never show the value
        return f"SecretValue({self._field})"
