"""Chat and completions on a local Hugging Face causal LM with transformers (CPU by default).

The model's single worker thread runs one padded `generate()` at a time over the rows (prompts x n) of
every queued request that shares the first one's sampling settings (a micro-batch, up to `max_batch_rows`),
so the event loop never blocks and concurrent requests share the work. A per-request streamer turns its
rows' new tokens into text deltas in that thread (stop strings and incomplete UTF-8 held back), stops its
rows at its own max_tokens, and hands the deltas to the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from modelgate.engines.engine import Delta, Engine, GenerationParams, GenerationUsage
from modelgate.errors import BadRequest

DEFAULT_MAX_TOKENS = 512
_END = object()


class TransformersEngine(Engine):
    def __init__(self, location: str, *, dtype: str = "float32", max_batch_rows: int = 8) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer: Any = AutoTokenizer.from_pretrained(location, local_files_only=True)
        torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(dtype, "auto")
        model: Any = AutoModelForCausalLM.from_pretrained(location, dtype=torch_dtype, local_files_only=True)
        self.model = model.eval()
        config = self.model.config
        self.context = int(getattr(config, "max_position_embeddings", 0) or self.tokenizer.model_max_length)
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(self.tokenizer.eos_token_id)
        self.eos_ids = sorted(eos_ids)
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.eos_ids[0] if self.eos_ids else 0)
        self.generate_calls = 0  # tests read it to see micro-batching
        self._batcher = _MicroBatcher(self._run, max_rows=max_batch_rows)

    # -- prompts -----------------------------------------------------------------------------------
    def encode_chat(self, messages: list[dict[str, str]]) -> list[int]:
        if not getattr(self.tokenizer, "chat_template", None):
            raise BadRequest("This model has no chat template; query it with completions (a prompt) instead.")
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_text(self, text: str) -> list[int]:
        return list(self.tokenizer(text)["input_ids"])

    # -- generation --------------------------------------------------------------------------------
    async def generate(
        self, prompts: list[list[int]], params: GenerationParams, usage: GenerationUsage
    ) -> AsyncIterator[Delta]:
        longest = max(len(p) for p in prompts)
        room = self.context - longest
        if room <= 0:
            raise BadRequest(
                f"The prompt has {longest} tokens; this model's context is {self.context} tokens, which leaves "
                "no room for an answer."
            )
        max_new = min(params.max_tokens or DEFAULT_MAX_TOKENS, room)
        usage.prompt_tokens = sum(len(p) for p in prompts)
        rows = [p for p in prompts for _ in range(params.n)]
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Any] = asyncio.Queue()

        def post(item: Any) -> None:
            loop.call_soon_threadsafe(events.put_nowait, item)

        streamer = _RowStreamer(self.tokenizer, len(rows), set(self.eos_ids), params.stop, usage, post, max_new)
        self._batcher.submit(_Job(rows, params, streamer))
        try:
            while (item := await events.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                for delta in item:
                    yield delta
        finally:
            streamer.cancelled = True  # a caller gone mid-stream stops its rows at the next step

    def _run(self, jobs: list[_Job]) -> None:
        """One padded generate() over the rows of all `jobs` (they share sampling settings)."""
        torch = self.torch
        from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

        streamers = [job.streamer for job in jobs]
        self.generate_calls += 1

        class _RowsDone(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.tensor([s.cancelled or d for s in streamers for d in s.done], dtype=torch.bool)

        try:
            rows = [r for job in jobs for r in job.rows]
            params = jobs[0].params
            width = max(len(r) for r in rows)
            input_ids = torch.tensor([[self.pad_id] * (width - len(r)) + r for r in rows], dtype=torch.long)
            attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
            sample = params.temperature > 0
            config = GenerationConfig(  # type: ignore[no-untyped-call]
                max_new_tokens=max(s.limit for s in streamers),
                do_sample=sample,
                pad_token_id=self.pad_id,
                eos_token_id=self.eos_ids or None,
                **(
                    {"temperature": params.temperature, "top_p": params.top_p or 1.0, "top_k": params.top_k or 0}
                    if sample
                    else {}
                ),
            )
            with torch.inference_mode():
                if params.seed is not None:
                    torch.manual_seed(params.seed)
                self.model.generate(
                    input_ids=input_ids,
                    attention_mask=attention,
                    generation_config=config,
                    streamer=_BatchStreamer(streamers),
                    stopping_criteria=StoppingCriteriaList([_RowsDone()]),
                )
        except BaseException as exc:
            for s in streamers:
                s.post(exc)
        finally:
            for s in streamers:
                s.post(_END)


@dataclass
class _Job:
    rows: list[list[int]]
    params: GenerationParams
    streamer: _RowStreamer

    def batch_key(self) -> tuple[Any, ...]:
        """Jobs with equal keys can share one generate(); a seeded job runs alone so its seed holds."""
        p = self.params
        if p.seed is not None:
            return (id(self),)
        if p.temperature <= 0:
            return ("greedy",)
        return ("sample", p.temperature, p.top_p, p.top_k)


class _MicroBatcher:
    """The model's one worker thread: takes the oldest job plus every queued job that can share its batch."""

    def __init__(self, run: Callable[[list[_Job]], None], max_rows: int) -> None:
        self.run = run
        self.max_rows = max_rows
        self.pending: list[_Job] = []
        self.ready = threading.Condition()
        threading.Thread(target=self._work, name="generate", daemon=True).start()

    def submit(self, job: _Job) -> None:
        with self.ready:
            self.pending.append(job)
            self.ready.notify()

    def _work(self) -> None:
        while True:
            with self.ready:
                while not self.pending:
                    self.ready.wait()
                first = self.pending.pop(0)
                batch, rows, key = [first], len(first.rows), first.batch_key()
                for job in list(self.pending):
                    if job.batch_key() == key and rows + len(job.rows) <= self.max_rows:
                        self.pending.remove(job)
                        batch.append(job)
                        rows += len(job.rows)
            self.run(batch)


class _BatchStreamer:
    """Hands each step's tokens of a batched generate() to the streamer of the request that owns the rows."""

    def __init__(self, streamers: list[_RowStreamer]) -> None:
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


class _RowStreamer:
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
    ) -> None:
        self.tokenizer = tokenizer
        self.limit = limit  # this request's max_tokens (a shared batch may run longer)
        self.eos_ids = eos_ids
        self.stop = [s for s in stop if s]
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.usage = usage
        self.post = post
        self.ids: list[list[int]] = [[] for _ in range(rows)]
        self.sent = [0] * rows
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

    def _text(self, row: int) -> str:
        return str(self.tokenizer.decode(self.ids[row], skip_special_tokens=True))

    def _advance(self, row: int) -> Delta | None:
        text = self._text(row)
        cut = min((i for i in (text.find(s, max(0, self.sent[row] - self.hold)) for s in self.stop) if i >= 0),
                  default=-1)  # fmt: skip
        if cut >= 0:
            self.done[row] = True
            return self._delta(row, text[:cut], "stop")
        safe = len(text.rstrip("\ufffd")) - self.hold  # hold back a possible stop prefix and partial UTF-8
        if safe <= self.sent[row]:
            return None
        return self._delta(row, text[:safe], None)

    def _finish(self, row: int, reason: str) -> Delta:
        self.done[row] = True
        return self._delta(row, self._text(row), reason)

    def _delta(self, row: int, upto: str, reason: str | None) -> Delta:
        piece = upto[self.sent[row] :]
        self.sent[row] = max(self.sent[row], len(upto))
        return Delta(row, piece, reason)
