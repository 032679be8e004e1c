"""Reasoning ("thinking") models: whether a request thinks, and the prompt that makes it so.

A model is a reasoning model when its engine has reasoning delimiters (given, or a `</think>` found in its
chat template). It thinks unless the request says `thinking: {"type": "disabled"}` or
`reasoning_effort: "none"`; `thinking.budget_tokens` caps the reasoning. The prompt is made to end inside the
reasoning block (the open delimiter is added when the template did not add it), so every row starts out
thinking; asked not to think, the prompt ends with an empty block instead.
"""

from __future__ import annotations

from typing import Any

from modelgate.errors import BadRequest
from modelgate.protocol.chat import ChatRequest

DEFAULT_DELIMITERS = ("<think>", "</think>")


def thinking_of(request: ChatRequest, delimiters: tuple[str, str] | None, model: str) -> tuple[bool, int | None]:
    """(think, budget) for `request` on a model with these reasoning delimiters (None: not a reasoning model)."""
    disabled = (request.thinking is not None and request.thinking.type == "disabled") or (
        request.reasoning_effort == "none"
    )
    if delimiters is None:
        if request.thinking is not None and request.thinking.type == "enabled":
            raise BadRequest(f"Model '{model}' is not a reasoning model; remove 'thinking' from the request.")
        if request.reasoning_effort not in (None, "none"):
            raise BadRequest(f"Model '{model}' is not a reasoning model; remove 'reasoning_effort' from the request.")
        return False, None
    if disabled:
        return False, None
    budget = request.thinking.budget_tokens if request.thinking is not None else None
    return True, budget


def detect_delimiters(tokenizer: Any) -> tuple[str, str] | None:
    """("<think>", "</think>") when the chat template opens such a block in the generation prompt, with
    thinking on or off (Qwen3 renders an empty block when off; DeepSeek-R1 and QwQ always open one)."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    for enable in (True, False):
        try:
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": "x"}], add_generation_prompt=True, tokenize=False, enable_thinking=enable
            )
        except Exception:  # a template that cannot render this probe is not treated as a reasoning model
            return None
        if DEFAULT_DELIMITERS[0] in str(text):
            return DEFAULT_DELIMITERS
    return None


def shape_prompt(text: str, delimiters: tuple[str, str], think: bool) -> str:
    """The rendered prompt, ending inside an open reasoning block (think) or after an empty one (not)."""
    open_tag, close_tag = delimiters
    tail = text.rstrip()
    if think:
        if tail.endswith(open_tag):
            return text
        return text + open_tag + "\n"
    if tail.endswith(close_tag):
        return text
    if tail.endswith(open_tag):
        return text + "\n" + close_tag + "\n\n"
    return text + open_tag + "\n\n" + close_tag + "\n\n"
