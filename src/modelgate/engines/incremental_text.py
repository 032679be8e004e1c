"""One output row's text, decoded a few tokens at a time instead of from all its tokens at every step.

Decoding a row's whole token list at each step costs O(length) per token. Here only a window is decoded: the
tokens since the last point where the text ended on a whole character (`read`), plus the tokens of the piece
before that (`start`), as context. The context matters for tokenizers whose decoders treat the first token
differently (SentencePiece's Metaspace drops its leading space): the window's text minus the context's text
is what the new tokens add. Tokens that end inside a UTF-8 character decode to a trailing U+FFFD; they stay
in the window (`tail`) until the character is complete, so `text` only ever grows by whole characters and
`full` equals decoding every token at once (for byte-level and Metaspace tokenizers).
"""

from __future__ import annotations

from typing import Any


class IncrementalText:
    def __init__(self, tokenizer: Any, ids: list[int]) -> None:
        """`ids` is the row's token list; the caller appends to it and then calls `advance`."""
        self.tokenizer = tokenizer
        self.ids = ids
        self.text = ""  # the text of ids[:read]: whole characters only
        self.tail = ""  # what ids[read:] add so far (may end with U+FFFD: a character still incomplete)
        self.start = 0  # the window starts here: ids[start:read] are context, decoded again
        self.read = 0
        self.context = ""  # the text of ids[start:read] decoded on its own

    @property
    def full(self) -> str:
        """The row's text so far, as decoding all its tokens would give it."""
        return self.text + self.tail

    def advance(self) -> None:
        """Takes in the tokens appended to `ids` since the last call."""
        window = self._decode(self.ids[self.start :])
        tail = window[len(self.context) :]
        if not tail or tail.endswith("\ufffd"):  # nothing new yet, or a character not yet complete
            self.tail = tail
            return
        self.text += tail
        self.tail = ""
        self.start, self.read = self.read, len(self.ids)
        self.context = self._decode(self.ids[self.start : self.read])

    def _decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True)) if ids else ""
