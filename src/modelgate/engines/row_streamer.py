"""Turning a batched generate()'s tokens into per-row text deltas (in the model's worker thread).

Each step, a row's new tokens are decoded incrementally (incremental_text.py) and the part of its text not yet
sent goes out, minus what must be held back: incomplete UTF-8, a possible prefix of a stop string, or of the
reasoning block's close. A row that starts inside a reasoning block sends reasoning text until the close,
then answer text; stop strings apply to the answer only. The deltas of one step, for every request of the
batch, reach the event loop in one call (`post_step`): a wake-up of the loop per step, not per request.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from modelgate.engines.engine import Delta, GenerationUsage
from modelgate.engines.incremental_text import IncrementalText


class Channel:
    """Where a request's deltas go: its queue, on the event loop that waits on it."""

    __slots__ = ("loop", "queue")

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> None:
        self.loop = loop
        self.queue = queue

    def post(self, item: Any) -> None:
        post_step([(self, item)])


def post_step(items: list[tuple[Channel, Any]]) -> None:
    """Hands each item to its channel's queue, with one call_soon_threadsafe per event loop (usually one)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue[Any], Any]]] = {}
    for channel, item in items:
        by_loop.setdefault(channel.loop, []).append((channel.queue, item))
    for loop, batch in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for these any more
            loop.call_soon_threadsafe(_deliver, batch)


def _deliver(batch: list[tuple[asyncio.Queue[Any], Any]]) -> None:
    for queue, item in batch:
        queue.put_nowait(item)


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
        out: list[tuple[Channel, Any]] = []
        start = 0
        for s in self.streamers:
            rows = len(s.ids)
            if not s.cancelled:  # a request whose caller left gets no more decoding
                deltas = s.put_tokens(tokens[start : start + rows])
                if deltas:
                    out.append((s.channel, deltas))
            start += rows
        if out:
            post_step(out)

    def end(self) -> None:
        out: list[tuple[Channel, Any]] = []
        for s in self.streamers:
            deltas = s.end()
            if deltas:
                out.append((s.channel, deltas))
        if out:
            post_step(out)


class RowStreamer:
    """Receives each step's tokens from generate() (in the worker thread) and makes text deltas per row."""

    def __init__(
        self,
        tokenizer: Any,
        rows: int,
        eos_ids: set[int],
        stop: list[str],
        usage: GenerationUsage,
        channel: Channel,
        limit: int,
        reasoning_close: str | None = None,
    ) -> None:
        self.limit = limit  # this request's max_tokens (a shared batch may run longer)
        self.eos_ids = eos_ids
        self.stop = [s for s in stop if s]
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.close = reasoning_close  # set when the rows start inside a reasoning block
        self.usage = usage
        self.channel = channel
        self.ids: list[list[int]] = [[] for _ in range(rows)]
        self.texts = [IncrementalText(tokenizer, ids) for ids in self.ids]
        self.sent = [0] * rows
        self.sent_reasoning = [0] * rows
        self.done = [False] * rows
        self.count = [0] * rows
        self.cancelled = False

    def post(self, item: Any) -> None:
        self.channel.post(item)

    def put_tokens(self, tokens: list[int]) -> list[Delta]:
        """The deltas of one step's tokens (one per row of this request)."""
        out: list[Delta] = []
        for row, token in enumerate(tokens):
            if self.done[row]:
                continue
            self.usage.completion_tokens += 1
            if token in self.eos_ids:
                out.append(self._finish(row, "stop"))
                continue
            self.ids[row].append(token)
            self.texts[row].advance()
            self.count[row] += 1
            delta = self._advance(row)
            if delta is not None:
                out.append(delta)
            if not self.done[row] and self.count[row] >= self.limit:
                out.append(self._finish(row, "length"))
        return out

    def end(self) -> list[Delta]:
        return [self._finish(row, "length") for row in range(len(self.ids)) if not self.done[row]]

    def _split(self, row: int) -> tuple[str, str, bool]:
        """(reasoning, answer, still reasoning) of the row's text so far."""
        text = self.texts[row].full
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
