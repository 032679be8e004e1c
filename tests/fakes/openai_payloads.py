"""Pure, deterministic payload builders for the fake OpenAI upstream.

Everything here is side-effect free so it can be unit-tested directly and reused
by :mod:`tests.fakes.openai_upstream` (the aiohttp server). The rules are simple
enough that tests can predict every value exactly:

* chat answer text is ``"echo: " + <last user message text>``; completions echo
  the prompt the same way;
* ``prompt_tokens`` = whitespace-separated words across all input texts (>= 1),
  ``completion_tokens`` = words in the produced text (summed over choices);
* ``stop`` cuts at the earliest stop string (finish_reason ``"stop"``), then
  ``max_tokens`` keeps that many words (finish_reason ``"length"``);
* tool calls carry a sample object built from the tool's JSON schema (strings
  ``"Paris"``, numbers/integers ``1``, booleans ``true``; required props only);
* embeddings are unit-norm float32 vectors derived from SHAKE-256 of the text.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
from typing import Any

import orjson

JSON = dict[str, Any]

SAMPLE_STRING = "Paris"
DEFAULT_EMBEDDING_DIMS = 8
_PIECE_RE = re.compile(r"\s*\S+\s*")


class PayloadError(ValueError):
    """Invalid request payload; maps to a 400 ``invalid_request_error``."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


# --------------------------------------------------------------------- text utils
def content_text(content: Any) -> str:
    """Text of a message ``content``: a string, or the text parts of a part list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type", "text") == "text"
        ]
        return " ".join(texts)
    return str(content)


def count_words(text: str) -> int:
    return len(text.split())


def word_pieces(text: str) -> list[str]:
    """Split into per-word pieces that concatenate back to ``text`` (modulo edges).

    Each piece is a word plus the whitespace that follows it, so the last piece
    has no trailing space - exactly how the fake streams content deltas.
    """
    return _PIECE_RE.findall(text)


def apply_limits(text: str, max_tokens: Any, stop: Any) -> tuple[str, str]:
    """Apply ``stop`` then ``max_tokens``; return ``(text, finish_reason)``."""
    finish = "stop"
    stops: list[str] = [stop] if isinstance(stop, str) else list(stop or [])
    cut = min((i for s in stops if s and (i := text.find(s)) >= 0), default=-1)
    if cut >= 0:
        text = text[:cut]
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens >= 0:
        pieces = word_pieces(text)
        if len(pieces) > max_tokens:
            text = "".join(pieces[:max_tokens]).rstrip()
            finish = "length"
    return text, finish


ERROR_KINDS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout", "request_timeout"),
    409: ("conflict", "conflict"),
    422: ("invalid_request_error", "unprocessable_entity"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", "server_error"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "gateway_timeout"),
}
DEFAULT_CODE = "<default>"


def error_body(
    status: int, message: str, *, type_: str | None = None, code: Any = DEFAULT_CODE, param: str | None = None
) -> JSON:
    """OpenAI's error envelope; type/code default per status (see ``ERROR_KINDS``)."""
    default_type, default_code = ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", "error")
    )
    return {
        "error": {
            "message": message,
            "type": type_ or default_type,
            "param": param,
            "code": default_code if code == DEFAULT_CODE else code,
        }
    }


def usage(prompt_tokens: int, completion_tokens: int) -> JSON:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


# ------------------------------------------------------------------ JSON schemas
def sample_instance(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """Minimal valid instance of a JSON schema (required properties only)."""
    if not isinstance(schema, dict) or depth > 32:
        return {}
    root = schema if root is None else root
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return sample_instance(target, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            return sample_instance((non_null or options)[0], root, depth + 1)
    typ = schema.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "null")
    if typ is None:
        typ = "object" if "properties" in schema else "string"
    if typ == "object":
        props = schema.get("properties") or {}
        return {name: sample_instance(props.get(name, {}), root, depth + 1) for name in schema.get("required") or []}
    if typ == "array":
        count = schema.get("minItems") or 0
        return [sample_instance(schema.get("items", {}), root, depth + 1) for _ in range(count)]
    if typ == "string":
        return SAMPLE_STRING
    if typ in ("number", "integer"):
        return 1
    if typ == "boolean":
        return True
    return None


def dumps_str(obj: Any) -> str:
    """JSON text with a space after ``:`` and ``,`` (as OpenAI's arguments look)."""
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{dumps_str(k)}: {dumps_str(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "[" + ", ".join(dumps_str(v) for v in obj) + "]"
    return orjson.dumps(obj).decode()


# -------------------------------------------------------------------------- chat
class ChatAnswer:
    """What the fake "model" answers to one chat request (same for every choice)."""

    __slots__ = ("arguments", "finish_reason", "prompt_tokens", "text", "tool_name")

    def __init__(self, body: JSON) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise PayloadError("'messages' must be a non-empty array", "messages")
        texts = [content_text(m.get("content")) for m in messages if isinstance(m, dict)]
        self.prompt_tokens = max(1, sum(count_words(t) for t in texts))
        last = messages[-1] if isinstance(messages[-1], dict) else {}
        user_text = next(
            (
                content_text(m.get("content"))
                for m in reversed(messages)
                if isinstance(m, dict) and m.get("role") == "user"
            ),
            "",
        )
        self.tool_name: str | None = None
        self.arguments = ""
        self.finish_reason = "stop"
        self.text: str | None = None
        tools = body.get("tools") or []
        tool_choice = body.get("tool_choice", "auto")
        if last.get("role") == "tool":
            text = "tool said: " + content_text(last.get("content"))
        elif tools and tool_choice != "none" and last.get("role") == "user":
            tool = _pick_tool(tools, tool_choice)
            self.tool_name = str(tool.get("name", ""))
            self.arguments = dumps_str(sample_instance(tool.get("parameters") or {}))
            self.finish_reason = "tool_calls"
            return
        else:
            text = _formatted_answer(body.get("response_format"), user_text)
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        self.text, self.finish_reason = apply_limits(text, max_tokens, body.get("stop"))

    @property
    def completion_tokens(self) -> int:
        return count_words(self.text if self.text is not None else self.arguments)

    def message(self, call_id: str) -> JSON:
        if self.tool_name is None:
            return {"role": "assistant", "content": self.text}
        return {"role": "assistant", "content": None, "tool_calls": [self.tool_call(call_id)]}

    def tool_call(self, call_id: str) -> JSON:
        return {
            "id": call_id,
            "type": "function",
            "function": {"name": self.tool_name, "arguments": self.arguments},
        }


def _pick_tool(tools: list[Any], tool_choice: Any) -> JSON:
    functions = [t.get("function") or {} for t in tools if isinstance(t, dict)]
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or {}).get("name")
        for fn in functions:
            if fn.get("name") == wanted:
                return dict(fn)
        raise PayloadError(f"tool_choice names unknown function {wanted!r}", "tool_choice")
    if not functions:
        raise PayloadError("'tools' must contain at least one function", "tools")
    return dict(functions[0])


def _formatted_answer(response_format: Any, user_text: str) -> str:
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        return dumps_str({"echo": user_text})
    if kind == "json_schema":
        assert isinstance(response_format, dict)
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return dumps_str(sample_instance(schema))
    return "echo: " + user_text


def chat_completion(rid: str, created: int, model: str, answer: ChatAnswer, n: int) -> JSON:
    choices = [
        {
            "index": i,
            "message": answer.message(f"call_{rid[9:]}_{i}"),
            "logprobs": None,
            "finish_reason": answer.finish_reason,
        }
        for i in range(n)
    ]
    return {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage(answer.prompt_tokens, answer.completion_tokens * n),
        "system_fingerprint": "fp_modelgate_fake",
    }


def chat_stream_deltas(answer: ChatAnswer, call_id: str) -> list[JSON]:
    """Deltas for one choice, first (role) to last content/argument fragment."""
    if answer.tool_name is None:
        return [{"role": "assistant", "content": ""}] + [{"content": piece} for piece in word_pieces(answer.text or "")]
    first = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "index": 0,
                "id": call_id,
                "type": "function",
                "function": {"name": answer.tool_name, "arguments": ""},
            }
        ],
    }
    args = answer.arguments
    return [first] + [
        {"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 8]}}]} for i in range(0, len(args), 8)
    ]


# ------------------------------------------------------------------- completions
def _prompts(prompt: Any) -> list[tuple[str, int]]:
    """``[(prompt_text, prompt_token_count)]`` for every accepted prompt shape."""
    if isinstance(prompt, str):
        return [(prompt, count_words(prompt))]
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, int) for p in prompt):
            return [(" ".join(map(str, prompt)), len(prompt))]
        out: list[tuple[str, int]] = []
        for p in prompt:
            if isinstance(p, str):
                out.append((p, count_words(p)))
            elif isinstance(p, list):
                out.append((" ".join(map(str, p)), len(p)))
            else:
                raise PayloadError("invalid 'prompt' element", "prompt")
        return out
    raise PayloadError("'prompt' must be a string or an array", "prompt")


def completion_choices(body: JSON) -> tuple[list[tuple[str, str]], int]:
    """``([(text, finish_reason)] in index order, prompt_tokens)``."""
    prompts = _prompts(body.get("prompt"))
    n = body.get("n") or 1
    choices = [
        apply_limits("echo: " + text, body.get("max_tokens"), body.get("stop")) for text, _ in prompts for _ in range(n)
    ]
    return choices, max(1, sum(tokens for _, tokens in prompts))


def text_completion(rid: str, created: int, model: str, choices: list[tuple[str, str]], prompt_tokens: int) -> JSON:
    return {
        "id": rid,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {"text": text, "index": i, "logprobs": None, "finish_reason": finish}
            for i, (text, finish) in enumerate(choices)
        ],
        "usage": usage(prompt_tokens, sum(count_words(t) for t, _ in choices)),
        "system_fingerprint": "fp_modelgate_fake",
    }


# -------------------------------------------------------------------- embeddings
def embedding_vector(text: str, dims: int = DEFAULT_EMBEDDING_DIMS) -> list[float]:
    """Deterministic unit vector, already rounded to float32 precision."""
    raw = hashlib.shake_256(text.encode()).digest(2 * dims)
    vals = [v / 32767.5 - 1.0 for v in struct.unpack(f"<{dims}H", raw)]
    norm = math.sqrt(sum(v * v for v in vals)) or 1.0
    return list(struct.unpack(f"<{dims}f", struct.pack(f"<{dims}f", *(v / norm for v in vals))))


def encode_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embeddings(body: JSON, model: str) -> JSON:
    inp = body.get("input")
    items: list[tuple[str, int]]
    if isinstance(inp, str):
        items = [(inp, count_words(inp))]
    elif isinstance(inp, list) and inp:
        items = _prompts(inp)
    else:
        raise PayloadError("'input' must be a non-empty string or array", "input")
    dims = body.get("dimensions") or DEFAULT_EMBEDDING_DIMS
    if not isinstance(dims, int) or dims < 1:
        raise PayloadError("'dimensions' must be a positive integer", "dimensions")
    b64 = body.get("encoding_format", "float") == "base64"
    data = []
    for i, (text, _) in enumerate(items):
        vec = embedding_vector(text, dims)
        data.append({"object": "embedding", "index": i, "embedding": encode_base64(vec) if b64 else vec})
    tokens = max(1, sum(t for _, t in items))
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
