"""SecretMask: what it masks, in which forms, and the log records of a process that installs it."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet

from modelgate.errors import ExternalModelError
from modelgate.providers.upstream import upstream_error
from modelgate.redaction import MASK, SecretMask, install_log_scrubbing
from modelgate.secrets import ConfigOwner, SecretCipher, SecretResolver, SecretValue

KEY = "sk-live-0123456789abcdef"


def test_values_and_their_encoded_forms_are_masked() -> None:
    mask = SecretMask()
    odd = 'pa ss"w/ord+é\\'
    mask.add(KEY)
    mask.add(odd)
    assert mask.scrub(f"Incorrect API key provided: Bearer {KEY}.") == f"Incorrect API key provided: Bearer {MASK}."
    spellings = (
        odd,
        'pa ss\\"w/ord+\\u00e9\\\\',  # JSON
        "pa ss\\u0022w\\/ord\\u002b\\u00E9\\\\",  # JSON from an encoder that escapes more
        "pa%20ss%22w%2Ford%2B%C3%A9%5C",  # percent-encoded
        "pa+ss%22w%2ford%2b%c3%a9%5c",  # a form, lower-case hex
        'pa+ss"w%2Ford+%C3%A9\\',  # a mix
    )
    for form in spellings:
        assert mask.scrub(f"<{form}>") == f"<{MASK}>", form
    mask.add("tilde~key-0123")
    assert mask.scrub("client_secret=tilde%7Ekey%2D0123&scope=x") == f"client_secret={MASK}&scope=x"
    assert mask.scrub("nothing secret") == "nothing secret"


def test_longest_first_and_short_values_ignored() -> None:
    mask = SecretMask()
    mask.add("abcd")
    mask.add("abcdefgh")
    mask.add("xyz")  # too short to mask: it would mangle every message and hide nothing
    assert mask.scrub("abcdefgh abcd xyz") == f"{MASK} {MASK} xyz"
    assert SecretMask().scrub("abcd") == "abcd"


def test_bounded_oldest_forgotten_first_and_tokens_never_push_keys_out() -> None:
    mask = SecretMask(max_secrets=3, max_derived=2)
    for i in range(5):
        mask.add(f"value-{i}")
    for i in range(10):
        mask.add(f"token-{i}", derived=True)
    assert len(mask) == 5
    assert mask.scrub("value-0 value-2 token-7 token-9") == f"value-0 {MASK} token-7 {MASK}"


def test_scrub_error_and_json() -> None:
    mask = SecretMask()
    mask.add(KEY)
    exc = ExternalModelError("custom", 400, "BAD_REQUEST", {"message": f"bad {KEY}", KEY: [KEY, 1, None]})
    assert mask.scrub_error(exc) is exc
    assert exc.body()["external_model_message"] == {"message": f"bad {MASK}", MASK: [MASK, 1, None]}


def test_clip_never_leaves_part_of_a_secret() -> None:
    mask = SecretMask()
    mask.add(KEY)
    body = ("x" * 1990 + KEY).encode()  # the cut at 2000 falls inside the key
    message = upstream_error("custom", 401, body, None, mask).extra["external_model_message"]["message"]
    assert len(message) == 2000 and KEY[:10] not in message and message.endswith(MASK)


class _Store:
    """A SecretSource that lets every owner read `s/k`."""

    def secret(self, scope: str, key: str, owner: ConfigOwner | None, field: str) -> str | None:
        return "from-the-store" if key == "k" else None

    def is_admin(self, owner: ConfigOwner | None) -> bool:
        return True


def test_resolved_secret_values_join_the_mask() -> None:
    cipher = SecretCipher(Fernet.generate_key())
    resolver = SecretResolver(cipher, _Store())
    assert SecretValue(cipher.encrypt("plain-secret"), "f", resolver).get() == "plain-secret"
    assert SecretValue("{{secrets/s/k}}", "f", resolver).get() == "from-the-store"
    assert resolver.mask.scrub("plain-secret from-the-store") == f"{MASK} {MASK}"


@pytest.fixture
def scrubbed_logging() -> Iterator[tuple[SecretMask, io.StringIO]]:
    factory = logging.getLogRecordFactory()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    mask = SecretMask()
    install_log_scrubbing(mask)
    try:
        yield mask, out
    finally:
        logging.setLogRecordFactory(factory)
        logger.removeHandler(handler)


def test_log_records_are_scrubbed(scrubbed_logging: tuple[SecretMask, io.StringIO]) -> None:
    mask, out = scrubbed_logging
    mask.add(KEY)
    log = logging.getLogger("tests.redaction")
    log.warning("upstream said %s", f"bad key {KEY}")
    try:
        raise ValueError(f"boom {KEY}")
    except ValueError:
        log.exception("failed with %r", {"key": KEY})
    log.warning("args kept when nothing is secret: %s", "x")
    text = out.getvalue()
    assert KEY not in text
    assert text.count(MASK) == 3
    assert "args kept when nothing is secret: x" in text
