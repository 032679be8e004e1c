"""Chat and completions on a local Hugging Face causal LM with transformers (CPU by default, CUDA when present).

The model's single worker thread runs one padded `generate()` at a time over the rows (prompts x n) of
every queued request that shares the first one's sampling settings (a micro-batch, up to `max_batch_rows`),
so the event loop never blocks and concurrent requests share the work. A per-request streamer turns its
rows' new tokens into text deltas in that thread (stop strings and incomplete UTF-8 held back) and stops its
rows at its own max_tokens; the step's deltas of all requests go to the event loop in one call. Grammars
(structured output, forced tool calls) and reasoning budgets are per row (row_control.py), so requests with
different grammars share a batch.
A request that arrives while a batch runs and could share it makes the batch pause at the next token; the
batch then runs again with the newcomer, each row from its prompt plus what it generated so far. Without that,
of a burst of requests the first ran alone and the rest waited for it (bench/local_tokens_bench.py). Batches
with a grammar, a reasoning budget or a seed run to the end (their state lives in the generate() call).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from modelgate.engines import local_tools
from modelgate.engines.device import pick_device_dtype
from modelgate.engines.engine import Constraint, Delta, Engine, GenerationParams, GenerationUsage
from modelgate.engines.row_streamer import BatchStreamer, Channel, RowStreamer, post_step
from modelgate.engines.structured import GrammarCache
from modelgate.engines.thinking import detect_delimiters, shape_prompt
from modelgate.errors import BadRequest

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 512
_END = object()
_LOAD_LOCK = threading.Lock()
_PROBE_TOOL = "modelgate_probe_tool"


class TransformersEngine(Engine):
    def __init__(
        self,
        location: str,
        *,
        dtype: str = "auto",
        max_batch_rows: int = 8,
        reasoning_delimiters: tuple[str, str] | Literal["auto"] | None = "auto",
        threads: int | None = None,
    ) -> None:
        """`dtype`: auto, float32 or bfloat16 (auto: see device.py). `reasoning_delimiters`: the model's
        reasoning block, None for a model that does not reason, "auto" for `<think>` / `</think>` when the chat
        template opens a `<think>` block (thinking.detect_delimiters). `threads`: torch's intra-op threads
        (None: see torch_threads)."""
        # Loading is serialized: transformers' lazy imports and its meta-device model init are not thread-safe
        # (two models loading at once failed with "cannot import name" or "Cannot copy out of meta tensor").
        with _LOAD_LOCK:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self.tokenizer: Any = AutoTokenizer.from_pretrained(location, local_files_only=True)
            self.device, torch_dtype = pick_device_dtype(dtype)
            model: Any = AutoModelForCausalLM.from_pretrained(location, dtype=torch_dtype, local_files_only=True)
            self.model = model.to(self.device).eval()
        self.torch = torch
        self.dtype = str(torch_dtype).removeprefix("torch.")
        config = self.model.config
        self.context = int(getattr(config, "max_position_embeddings", 0) or self.tokenizer.model_max_length)
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(self.tokenizer.eos_token_id)
        self.eos_ids = sorted(eos_ids)
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.eos_ids[0] if self.eos_ids else 0)
        self.reasoning_delimiters = (
            detect_delimiters(self.tokenizer) if reasoning_delimiters == "auto" else reasoning_delimiters
        )
        self.vocab_size = int(getattr(config, "vocab_size", 0) or len(self.tokenizer))
        self.grammars = GrammarCache(self.tokenizer, self.vocab_size, self.eos_ids, self.tool_call_tags)
        self._renders_tools: bool | None = None
        self.generate_calls = 0  # tests read it to see micro-batching
        self.threads = torch_threads(threads, self.device, torch.get_num_threads())
        self.worker_threads = 0  # what torch reports in the worker thread once it has set `threads`
        self._batcher = _MicroBatcher(self._run, max_rows=max_batch_rows, start=self._start_worker)
        log.info("%s: %s on %s, %d torch thread(s)", location, self.dtype, self.device, self.threads)

    def _start_worker(self) -> None:
        """Runs first in the worker thread: torch's thread setting (OpenMP keeps one per thread). torch is left
        alone when it already has that setting (bench runs hinted that a needless call slows decoding)."""
        if self.torch.get_num_threads() != self.threads:
            self.torch.set_num_threads(self.threads)
        self.worker_threads = self.torch.get_num_threads()

    # -- prompts -----------------------------------------------------------------------------------
    def encode_chat(
        self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None, thinking: bool = False
    ) -> list[int]:
        if not getattr(self.tokenizer, "chat_template", None):
            raise BadRequest("This model has no chat template; query it with completions (a prompt) instead.")
        extra: dict[str, Any] = {}
        has_tool_history = any(m.get("tool_calls") or m["role"] == "tool" for m in messages)
        if (tools or has_tool_history) and not self.renders_tools():
            messages = local_tools.inline_tools(messages, tools, self.tool_call_tags)
        elif tools:
            extra["tools"] = tools
        if self.reasoning_delimiters is not None:
            extra["enable_thinking"] = thinking  # Qwen3-style templates; others ignore it
        try:
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, **extra)
        except Exception as exc:  # jinja2's TemplateError, e.g. the template's raise_exception("roles must ...")
            if type(exc).__module__.split(".")[0] != "jinja2":
                raise
            raise BadRequest(f"This model's chat template rejected the messages: {exc}") from None
        if self.reasoning_delimiters is not None:
            text = shape_prompt(text, self.reasoning_delimiters, thinking)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def renders_tools(self) -> bool:
        """Whether the chat template shows `tools` to the model (probed once)."""
        if self._renders_tools is None:
            probe = [{"type": "function", "function": {"name": _PROBE_TOOL, "parameters": {"type": "object"}}}]
            try:
                text = self.tokenizer.apply_chat_template(
                    [{"role": "user", "content": "x"}], tools=probe, add_generation_prompt=True, tokenize=False
                )
            except Exception:  # a template that rejects the tools argument ignores tools
                text = ""
            self._renders_tools = _PROBE_TOOL in text
        return self._renders_tools

    def encode_text(self, text: str) -> list[int]:
        return list(self.tokenizer(text)["input_ids"])

    def check_constraint(self, constraint: Constraint) -> None:
        self.grammars.compiled(constraint)

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
        if params.constraint is not None:
            self.grammars.compiled(params.constraint)  # a bad schema fails here, before anything streams
        events: asyncio.Queue[Any] = asyncio.Queue()
        channel = Channel(asyncio.get_running_loop(), events)
        close = self.reasoning_delimiters[1] if params.thinking and self.reasoning_delimiters else None
        eos = set(self.eos_ids)
        streamer = RowStreamer(self.tokenizer, len(rows), eos, params.stop, usage, channel, max_new, close)
        self._batcher.submit(_Job(rows, params, streamer))
        try:
            while (item := await events.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                for delta in item:
                    yield delta
        finally:
            streamer.cancelled = True  # a caller gone mid-stream stops its rows at the next step

    def _row_plans(self, jobs: list[_Job]) -> list[Any]:
        """One RowPlan (or None) per batch row: the job's grammar and reasoning budget."""
        from modelgate.engines.row_control import RowPlan

        plans: list[Any] = []
        for job in jobs:
            p = job.params
            think = p.thinking and self.reasoning_delimiters is not None
            budget = p.thinking_budget if think else None
            grammar = self.grammars.compiled(p.constraint) if p.constraint is not None else None
            if grammar is None and budget is None:
                plans.extend([None] * len(job.rows))
                continue
            close_ids = self._close_ids() if think else []
            for _ in job.rows:
                matcher = _new_matcher(grammar) if grammar is not None else None
                plans.append(RowPlan(matcher=matcher, thinking=think, budget=budget, close_ids=close_ids))
        return plans

    def _close_ids(self) -> list[int]:
        assert self.reasoning_delimiters is not None
        return list(self.tokenizer(self.reasoning_delimiters[1], add_special_tokens=False)["input_ids"])

    def _run(self, jobs: list[_Job]) -> None:
        """One padded generate() over the rows of all `jobs` (they share sampling settings)."""
        torch = self.torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

        from modelgate.engines.row_control import RowControlProcessor

        streamers = [job.streamer for job in jobs]
        self.generate_calls += 1
        batcher, key = self._batcher, jobs[0].batch_key()
        room = batcher.max_rows - sum(len(job.rows) for job in jobs)
        paused = False  # set when generation stops early so waiting requests can join the batch

        class _RowsDone(StoppingCriteria):
            last: tuple[list[bool], Any] = ([], None)  # the previous answer, reused while no row changed

            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                nonlocal paused
                done = [s.cancelled or d for s in streamers for d in s.done]
                if can_pause and room > 0 and not all(done) and batcher.pending and batcher.joinable(key, room):
                    paused = True
                    done = [True] * len(done)
                if done != self.last[0]:
                    self.last = (done, torch.tensor(done, dtype=torch.bool, device=input_ids.device))
                return self.last[1]

        class _Streamer(BatchStreamer):
            def end(self) -> None:
                if not paused:  # a paused batch's rows are not finished
                    super().end()

        try:
            rows = [r for job in jobs for r in job.rows]
            params = jobs[0].params
            width = max(len(r) for r in rows)
            input_ids = torch.tensor([[self.pad_id] * (width - len(r)) + r for r in rows], dtype=torch.long)
            attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
            sample = params.temperature > 0
            config = GenerationConfig(  # type: ignore[no-untyped-call]
                max_new_tokens=max(_remaining(s) for s in streamers),
                do_sample=sample,
                pad_token_id=self.pad_id,
                eos_token_id=self.eos_ids or None,
                **(
                    {"temperature": params.temperature, "top_p": params.top_p or 1.0, "top_k": params.top_k or 0}
                    if sample
                    else {}
                ),
            )
            plans = self._row_plans(jobs)
            # Rows under a grammar or reasoning budget keep state in this call's processor, and a seed must
            # hold for the whole answer: such batches run to the end; others pause for newcomers.
            can_pause = not any(plans) and params.seed is None
            processors = [RowControlProcessor(plans, self.vocab_size, self.grammars.byte_rules)] if any(plans) else []
            with torch.inference_mode():
                if params.seed is not None:
                    torch.manual_seed(params.seed)
                self.model.generate(
                    input_ids=input_ids.to(self.device),
                    attention_mask=attention.to(self.device),
                    generation_config=config,
                    streamer=_Streamer(streamers),
                    stopping_criteria=StoppingCriteriaList([_RowsDone()]),
                    logits_processor=LogitsProcessorList(processors),
                )
        except BaseException as exc:
            paused = False
            for s in streamers:
                s.post(exc)
        if paused:
            batcher.resume([job for job in jobs if not job.finished()])
        post_step([(job.streamer.channel, _END) for job in jobs if not paused or job.finished()])


def torch_threads(setting: int | None, device: str, current: int, cores: int | None = None) -> int:
    """torch's intra-op threads for a model: `setting` when given; else what OMP_NUM_THREADS asked for, or on
    a CPU all cores but one (left to the event loop and HTTP), at least 1 and never more than torch's current
    setting (one the user lowered stays); on a GPU torch's current setting."""
    if setting is not None:
        return setting
    if os.environ.get("OMP_NUM_THREADS") or device != "cpu":
        return current
    if cores is None:
        affinity = getattr(os, "sched_getaffinity", None)  # the CPUs this process may use (Linux)
        cores = len(affinity(0)) if affinity is not None else os.cpu_count() or 1
    return max(1, min(current, cores - 1))


def _remaining(streamer: RowStreamer) -> int:
    """Tokens the streamer's unfinished rows may still generate (less than max_tokens after a pause)."""
    left = [streamer.limit - n for n, done in zip(streamer.count, streamer.done, strict=True) if not done]
    return max(max(left, default=1), 1)


def _new_matcher(grammar: Any) -> Any:
    import xgrammar as xgr

    return xgr.GrammarMatcher(grammar)


@dataclass
class _Job:
    rows: list[list[int]]
    params: GenerationParams
    streamer: RowStreamer
    prompts: list[list[int]] = field(default_factory=list)  # the rows' prompts (rows grow when a batch pauses)

    def __post_init__(self) -> None:
        self.prompts = self.prompts or list(self.rows)

    def finished(self) -> bool:
        return self.streamer.cancelled or all(self.streamer.done)

    def resumed(self) -> _Job:
        """Continues where it stopped: each row's prompt plus what it generated so far."""
        self.rows = [p + ids for p, ids in zip(self.prompts, self.streamer.ids, strict=True)]
        return self

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

    def __init__(self, run: Callable[[list[_Job]], None], max_rows: int, start: Callable[[], None]) -> None:
        """`start` runs first in the worker thread; the constructor returns once it has."""
        self.run = run
        self.max_rows = max_rows
        self.pending: list[_Job] = []
        self.ready = threading.Condition()
        started = threading.Event()
        threading.Thread(target=self._work, args=(start, started), name="generate", daemon=True).start()
        started.wait()

    def submit(self, job: _Job) -> None:
        with self.ready:
            self.pending.append(job)
            self.ready.notify()

    def joinable(self, key: tuple[Any, ...], room: int) -> bool:
        """Whether a waiting job could join a running batch of `key` that has `room` rows free."""
        with self.ready:
            return any(job.batch_key() == key and len(job.rows) <= room for job in self.pending)

    def resume(self, jobs: list[_Job]) -> None:
        """Put the jobs of a paused batch back at the head of the queue, to run again with the newcomers."""
        with self.ready:
            self.pending[:0] = [job.resumed() for job in jobs]

    def _work(self, start: Callable[[], None], started: threading.Event) -> None:
        try:
            start()
        except Exception:  # the model still serves, with torch's thread setting as it was
            log.exception("could not set the model's torch threads")
        started.set()
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
