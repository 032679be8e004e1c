"""Turning a batched generate()'s tokens into per-row text deltas (in the model's worker thread).

Each step, a row's text is decoded again from all its tokens and the part not yet sent goes out, minus what
must be held back: incomplete UTF-8, a possible prefix of a stop string, or of the reasoning block's close.
A row that starts inside a reasoning block sends reasoning text until the close, then answer text; stop
strings apply to the answer only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelgate.engines.engine import Delta, GenerationUsage


class BatchStreamer:
    """Hands each step's tokens of a batched generate() to the streamer of the request that owns the rows."""

    def __init__(self, streamers: list[RowStreamer]) -> None:
        self.streamers = streamers
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # generate() first hands over the prompt
            self.prompt_seen = True
            return
        tokens = value.reshape(sum(len(s.ids) for s in self.streamers), -1)[:, -1].tolist()
        start = 0
        for s in self.streamers:
            s.put_tokens(tokens[start : start + len(s.ids)])
            start += len(s.ids)

    def end(self) -> None:
        for s in self.streamers:
            s.end()


class RowStreamer:
    """Receives each step's tokens from generate() (in the worker thread) and posts text deltas per row."""

    def __init__(
        self,
        tokenizer: Any,
        rows: int,
        eos_ids: set[int],
        stop: list[str],
        usage: GenerationUsage,
        post: Callable[[Any], None],
        limit: int,
        reasoning_close: str | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.limit = limit  # this request's max_tokens (a shared batch may run longer)
        self.eos_ids = eos_ids
        self.stop = [s for s in stop if s]
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.close = reasoning_close  # set when the rows start inside a reasoning block
        self.usage = usage
        self.post = post
        self.ids: list[list[int]] = [[] for _ in range(rows)]
        self.sent = [0] * rows
        self.sent_reasoning = [0] * rows
        self.done = [False] * rows
        self.count = [0] * rows
        self.cancelled = False

    def put_tokens(self, tokens: list[int]) -> None:
        out: list[Delta] = []
        for row, token in enumerate(tokens):
            if self.done[row]:
                continue
            self.usage.completion_tokens += 1
            if token in self.eos_ids:
                out.append(self._finish(row, "stop"))
                continue
            self.ids[row].append(token)
            self.count[row] += 1
            delta = self._advance(row)
            if delta is not None:
                out.append(delta)
            if not self.done[row] and self.count[row] >= self.limit:
                out.append(self._finish(row, "length"))
        if out:
            self.post(out)

    def end(self) -> None:
        out = [self._finish(row, "length") for row in range(len(self.ids)) if not self.done[row]]
        if out:
            self.post(out)

    def _split(self, row: int) -> tuple[str, str, bool]:
        """(reasoning, answer, still reasoning) of the row's text so far."""
        text = str(self.tokenizer.decode(self.ids[row], skip_special_tokens=True))
        if self.close is None:
            return "", text, False
        cut = text.find(self.close)
        if cut < 0:
            return text, "", True
        return text[:cut], text[cut + len(self.close) :].lstrip(), False

    def _advance(self, row: int) -> Delta | None:
        reasoning, answer, thinking = self._split(row)
        if thinking:  # hold back incomplete UTF-8 and a possible start of the close
            assert self.close is not None
            reasoning = reasoning.rstrip("\ufffd")
            reasoning = reasoning[: max(0, len(reasoning) - len(self.close) + 1)]
        thought = self._reasoning_piece(row, reasoning)
        cut = min((i for i in (answer.find(s, max(0, self.sent[row] - self.hold)) for s in self.stop) if i >= 0),
                  default=-1)  # fmt: skip
        if cut >= 0:
            self.done[row] = True
            return self._delta(row, answer[:cut], "stop", thought)
        safe = len(answer.rstrip("\ufffd")) - self.hold  # hold back a possible stop prefix and partial UTF-8
        if safe <= self.sent[row]:
            return Delta(row, "", None, thought) if thought else None
        return self._delta(row, answer[:safe], None, thought)

    def _finish(self, row: int, reason: str) -> Delta:
        self.done[row] = True
        reasoning, answer, _ = self._split(row)
        return self._delta(row, answer, reason, self._reasoning_piece(row, reasoning))

    def _reasoning_piece(self, row: int, upto: str) -> str:
        piece = upto[self.sent_reasoning[row] :]
        self.sent_reasoning[row] = max(self.sent_reasoning[row], len(upto))
        return piece

    def _delta(self, row: int, upto: str, reason: str | None, reasoning: str = "") -> Delta:
        piece = upto[self.sent[row] :]
        self.sent[row] = max(self.sent[row], len(upto))
        return Delta(row, piece, reason, reasoning)
