"""Byte-level rules xgrammar leaves open, enforced by masking tokens.

xgrammar's length-bounded JSON strings accept raw control characters and UTF-8 encodings of surrogates
(ED A0..BF ..), neither of which is valid JSON text: strict parsers reject the first, and decoding turns the
second into U+FFFD characters (breaking maxLength). So where a grammar applies, these tokens are masked too:
tokens with a control byte (newline stays, for the tool-call tags), tokens with a byte that never occurs
in UTF-8 or an invalid sequence inside them, and, right after a lead byte whose next byte is restricted
(E0, ED, F0, F4), tokens that start with a continuation byte that lead does not allow.
"""

from __future__ import annotations

from typing import Any

# Lead byte -> the range its first continuation byte must fall in (RFC 3629).
_FIRST_CONTINUATION = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}


class TokenByteRules:
    def __init__(self, vocab: list[bytes]) -> None:
        self.vocab = vocab
        self.banned = [i for i, raw in enumerate(vocab) if _bad_token(raw)]
        starts: dict[int, list[int]] = {}
        for i, raw in enumerate(vocab):
            if raw and 0x80 <= raw[0] <= 0xBF:
                starts.setdefault(raw[0], []).append(i)
        self._after_lead = {
            lead: [i for b, ids in starts.items() if not low <= b <= high for i in ids]
            for lead, (low, high) in _FIRST_CONTINUATION.items()
        }

        self._masks: dict[int, tuple[Any, dict[int, Any]]] = {}

    def banned_after(self, tail: bytes) -> list[int]:
        """Tokens that may not follow output ending in `tail` (a lone restricted lead byte)."""
        return self._after_lead.get(tail[-1], []) if tail else []

    def keep_masks(self, words: int) -> tuple[Any, dict[int, Any]]:
        """As xgrammar token bitmask rows (int32 words, a set bit allows a token): the mask that clears the
        banned tokens, and per restricted lead byte the mask that also clears what may not follow it."""
        if words not in self._masks:
            base = _mask(words, self.banned)
            after = {lead: _mask(words, self.banned + ids) for lead, ids in self._after_lead.items()}
            self._masks[words] = (base, after)
        return self._masks[words]


def _bad_token(raw: bytes) -> bool:
    if any((b < 0x20 and b != 0x0A) or b in (0xC0, 0xC1) or b >= 0xF5 for b in raw):
        return True
    for i, b in enumerate(raw[:-1]):
        limits = _FIRST_CONTINUATION.get(b)
        if limits is not None and not limits[0] <= raw[i + 1] <= limits[1]:
            return True
    return False


def _mask(words: int, cleared: list[int]) -> Any:
    import torch

    bits = [0xFFFFFFFF] * words
    for token in cleared:
        if token >> 5 < words:
            bits[token >> 5] &= ~(1 << (token & 31))
    return torch.tensor([b - (1 << 32) if b >= 1 << 31 else b for b in bits], dtype=torch.int32)
