"""Nothing secret leaves: every secret value this process resolved is masked in what goes out.

Upstreams (custom OpenAI-compatible servers, proxies, some token endpoints) answer a refused request with a
message that echoes the credential they received: "Incorrect API key provided: sk-abc...", or all the
request's headers. modelgate relays upstream messages to the caller (`external_model_message`), so without
this a provider key would come back to anyone allowed to query the endpoint.

One mechanism, at the boundary: a `SecretMask` per process learns every value the moment it exists in
plaintext (`SecretValue.get()` registers what it resolves; providers that derive credentials, such as Entra ID
and Vertex AI access tokens, register those), and
- serving/dispatch.py, the only caller of provider methods, scrubs every ModelgateError that leaves a
  provider call (`scrub_error`), before it is rendered as an error body or a stream error event;
- `install_log_scrubbing` masks every log record of the process, a library's included;
- what a failed query stores (usage rows, inference-table rows) holds no error text, only status and codes.

The mask is process-wide, a superset of "the endpoint's own" secrets: an echo of another endpoint's key is
masked too, and nothing has to track which endpoint resolved what.

Successful answers are not scanned. That would cost every request a pass over its whole body (and every
stream chunk); an upstream that writes a key into a completion is out of scope. Errors are rare, so their
scrubbing costs the query path nothing.

What is masked for a value: the value itself, stripped of surrounding whitespace too, and every spelling a
reflection could give it: each character that is not an ASCII letter or digit may also appear percent-encoded
(an echo of a form body or query string, such as the Entra client secret; encoders differ in which characters
they escape, `~` included, and in the case of the hex digits), JSON-escaped (a backslash escape or a
`\\uXXXX` one: an echo encoded twice, or by an encoder that escapes `<>&`), and a space as `+`. So one pattern
per value, matching any mix of those, rather than a list of encoded copies that would miss the next encoder's
choices. Base64 forms (HTTP Basic `user:value`) are not masked: modelgate never sends Basic auth, and the
base64 of a value embedded in other text depends on its offset.

Values under `MIN_SECRET_CHARS` are ignored: masking "abc" everywhere would mangle every message without
protecting anything (such a value has no entropy worth hiding, and the gaps the mask leaves would spell it out
anyway). A SigV4 signature is not registered: it is derived per request (a new one each call, which would grow
the mask on the hot path) and proves nothing for any other request; the AWS secret key it is made with never
leaves the process, and is registered all the same.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, TypeVar

from modelgate.errors import ModelgateError

MASK = "[REDACTED]"
MIN_SECRET_CHARS = 4
# Bounds, so the pattern stays small: building it takes ~0.2 ms per value (0.2 s at 1024), once after values
# were added, on the next scrub; a scrub takes ~0.1 us per value for a 300-character message. Configured
# secrets (a few per endpoint) are held up to MAX_SECRETS; derived credentials (a new OAuth token per endpoint
# about every hour) up to MAX_DERIVED, apart, so that token churn never pushes a long-lived key out. Past a
# bound the oldest of its kind (rotated keys, expired tokens) are forgotten first.
MAX_SECRETS = 1024
MAX_DERIVED = 256

E = TypeVar("E", bound=ModelgateError)


class SecretMask:
    """The secret values of one process and a scrubber that replaces each of them with `MASK`."""

    def __init__(self, max_secrets: int = MAX_SECRETS, max_derived: int = MAX_DERIVED) -> None:
        self._bounds = {False: max_secrets, True: max_derived}
        # value -> its pattern, one dict per kind (derived or not); insertion-ordered: the oldest go first
        self._kinds: dict[bool, dict[str, str]] = {False: {}, True: {}}
        self._pattern: re.Pattern[str] | None = None
        self._longest = 0
        self._dirty = False
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._kinds[False]) + len(self._kinds[True])

    def add(self, value: str, *, derived: bool = False) -> None:
        """Mask `value` (in any of its spellings) from now on; `derived` for a credential made from a secret
        (an access token), of which only the latest MAX_DERIVED are kept. Cheap when it is known already."""
        values = self._kinds[derived]
        if value in values or len(value) < MIN_SECRET_CHARS:
            return
        with self._lock:
            for form in {value, value.strip()}:
                if len(form) >= MIN_SECRET_CHARS:
                    values[form] = _spellings(form)
            while len(values) > self._bounds[derived]:
                del values[next(iter(values))]
            self._dirty = True

    def _compiled(self) -> re.Pattern[str] | None:
        if self._dirty:
            with self._lock:
                if self._dirty:
                    # Longest first, so a value that contains another is masked whole.
                    patterns = {**self._kinds[False], **self._kinds[True]}
                    ordered = sorted(patterns, key=len, reverse=True)
                    self._pattern = re.compile("|".join(patterns[v] for v in ordered)) if ordered else None
                    # The longest text a spelling can take: 12 characters per character (a JSON surrogate pair).
                    self._longest = 12 * len(ordered[0]) if ordered else 0
                    self._dirty = False
        return self._pattern

    def scrub(self, text: str) -> str:
        pattern = self._compiled()
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def clip(self, text: str, limit: int) -> str:
        """At most `limit` characters of `text`, scrubbed before the cut, so no part of a secret survives it."""
        if len(text) <= limit:
            return self.scrub(text)
        pattern = self._compiled()  # a secret that starts before the cut ends at most `_longest` after it
        return self.scrub(text[: limit + self._longest])[:limit] if pattern is not None else text[:limit]

    def scrub_json(self, obj: Any) -> Any:
        """A copy of a JSON-like tree (dicts, lists, tuples, strings) with every string scrubbed, keys too."""
        if isinstance(obj, str):
            return self.scrub(obj)
        if isinstance(obj, dict):
            return {self.scrub_json(k): self.scrub_json(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.scrub_json(v) for v in obj]
        return obj

    def scrub_error(self, exc: E) -> E:
        """Scrub an error in place (its message, args and `extra`, where `external_model_message` lives) and
        return it: in place, so a request that joined this one (the same client_request_id) gets it scrubbed."""
        if self._compiled() is None:
            return exc
        exc.message = self.scrub(exc.message)
        exc.args = tuple(self.scrub_json(a) for a in exc.args)
        exc.extra = self.scrub_json(exc.extra)
        return exc


_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _spellings(value: str) -> str:
    """A regex matching `value` with any of its characters spelt as itself, percent-encoded (either hex case,
    `+` for a space) or JSON-escaped (`\\uXXXX`, or the short escapes)."""
    parts = []
    for ch in value:
        if ch.isascii() and ch.isalnum():
            parts.append(ch)
            continue
        percent = "".join(f"%{b:02x}" for b in ch.encode(errors="surrogatepass"))
        utf16 = ch.encode("utf-16-be", errors="surrogatepass").hex()
        json_escape = "".join("\\u" + utf16[i : i + 4] for i in range(0, len(utf16), 4))
        # Longest first: `\\` must not match as a literal backslash followed by a stray one.
        forms = [f"(?i:{re.escape(json_escape)})", f"(?i:{re.escape(percent)})"]
        if ch in _JSON_SHORT:
            forms.append(re.escape(_JSON_SHORT[ch]))
        forms.append(re.escape(ch))
        if ch == " ":
            forms.append(re.escape("+"))
        parts.append("(?:" + "|".join(forms) + ")")
    return "".join(parts)


class SecretLogFilter(logging.Filter):
    """Masks a record's message (args merged in), its exception text and its stack with the process mask.

    Usable on a handler; `install_log_scrubbing` applies it to every record the process makes instead."""

    def __init__(self, mask: SecretMask) -> None:
        super().__init__()
        self.mask = mask
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        mask = self.mask
        try:
            message = record.getMessage()
        except Exception:  # a broken format: logging reports it itself when the record is emitted
            return True
        scrubbed = mask.scrub(message)
        if scrubbed != message:  # else leave msg/args alone: some formatters read args (uvicorn's access log)
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask.scrub(self._formatter.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = mask.scrub(record.stack_info)
        return True


def install_log_scrubbing(mask: SecretMask) -> None:
    """Scrub every log record this process makes, whichever logger or handler it goes to.

    A record factory rather than handler filters: uvicorn configures its own handlers after `serve` set up
    logging, libraries may add theirs, and records with no handler go to `logging.lastResort`; the factory
    sees each record before any of them. Only records a logger's level lets through are made, so this
    costs nothing for the debug records a production server skips."""
    scrubber = SecretLogFilter(mask)
    previous = logging.getLogRecordFactory()

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        scrubber.filter(record)
        return record

    logging.setLogRecordFactory(make_record)
