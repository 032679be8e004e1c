"""Per-row control of decoding in one batched generate(): grammars and the reasoning budget.

Each output row may carry a RowPlan: a grammar matcher (xgrammar) that masks the row's logits so the answer
follows a schema, and/or a reasoning budget that forces the close of the reasoning block once the row has
thought for that many tokens. The grammar starts after the reasoning block closes. Rows without a plan are
left alone, so requests with different grammars (or none) share one micro-batch. The processor is created
per generate() call (xgrammar matchers are single-use) and runs before temperature/top-k/top-p, so sampling
only ever sees allowed tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import LogitsProcessor

from modelgate.engines.token_bytes import TokenByteRules


@dataclass
class RowPlan:
    matcher: Any | None = None  # xgrammar GrammarMatcher for the answer, or None
    thinking: bool = False  # the row is inside its reasoning block
    budget: int | None = None  # reasoning tokens allowed before the close is forced
    close_ids: list[int] = field(default_factory=list)  # token ids of the reasoning block's close
    thought: int = 0
    forced: list[int] = field(default_factory=list)  # tokens still to force (the close, once over budget)
    recent: list[int] = field(default_factory=list)
    tail: bytes = b""  # the answer's last bytes so far (for the UTF-8 rules)
    free: bool = False  # stopped constraining (the row finished and generate() feeds it padding)

    def accept(self, token: int, vocab: list[bytes] | None = None) -> None:
        if self.free:
            return
        if self.forced:
            if token != self.forced.pop(0):
                self.free = True
            elif not self.forced:
                self.thinking = False
            return
        if self.thinking:
            self.thought += 1
            self.recent = [*self.recent, token][-len(self.close_ids) :] if self.close_ids else []
            if self.close_ids and self.recent == self.close_ids:
                self.thinking = False
            return
        if self.matcher is not None and not self.matcher.is_terminated():
            if not self.matcher.accept_token(token):
                self.free = True
            elif vocab is not None and token < len(vocab):
                self.tail = (self.tail + vocab[token])[-4:]

    def forced_token(self) -> int | None:
        if self.free:
            return None
        if not self.forced and self.thinking and self.budget is not None and self.thought >= self.budget:
            self.forced = list(self.close_ids)
        return self.forced[0] if self.forced else None

    def masks(self) -> bool:
        return not self.free and not self.thinking and self.matcher is not None and not self.matcher.is_terminated()


class RowControlProcessor(LogitsProcessor):
    """An HF logits processor applying one RowPlan (or none) per batch row."""

    def __init__(self, plans: list[RowPlan | None], vocab_size: int, rules: TokenByteRules | None) -> None:
        self.plans = plans
        self.vocab_size = vocab_size  # the grammar's vocabulary (the bitmask's width)
        self.rules = rules  # byte rules on top of the grammars (None: no grammar in this batch)
        self.started = False
        self.bitmask: Any = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.started:  # the previous step's tokens
            for plan, token in zip(self.plans, input_ids[:, -1].tolist(), strict=True):
                if plan is not None:
                    plan.accept(int(token), self.rules.vocab if self.rules is not None else None)
        self.started = True
        rows = [i for i, p in enumerate(self.plans) if p is not None and p.masks()]
        if rows:
            self._apply_grammars(rows, scores)
        for i, plan in enumerate(self.plans):
            token = plan.forced_token() if plan is not None else None
            if token is not None:
                keep = scores[i, token].clone()
                scores[i].fill_(float("-inf"))
                scores[i, token] = keep
        return scores

    def _apply_grammars(self, rows: list[int], scores: Any) -> None:
        import xgrammar as xgr

        if self.bitmask is None:
            self.bitmask = xgr.allocate_token_bitmask(len(self.plans), self.vocab_size)
        if self.rules is not None:
            base, after = self.rules.keep_masks(self.bitmask.shape[-1])
        for i in rows:
            plan = self.plans[i]
            assert plan is not None and plan.matcher is not None
            plan.matcher.fill_next_token_bitmask(self.bitmask, i)
            if self.rules is not None:
                lead = plan.tail[-1] if plan.tail else -1
                self.bitmask[i] &= after.get(lead, base)
        if scores.device.type == "cpu":
            xgr.apply_token_bitmask_inplace(scores, self.bitmask, indices=rows, backend="cpu")
        else:  # the plain torch kernel: no triton or CUDA compilation needed
            xgr.apply_token_bitmask_inplace(
                scores, self.bitmask.to(scores.device), indices=rows, backend="torch_native"
            )
        if scores.shape[-1] > self.vocab_size:  # padding ids the bitmask does not cover are never allowed
            scores[rows, self.vocab_size :] = float("-inf")
