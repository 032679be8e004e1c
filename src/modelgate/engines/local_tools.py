"""Function calling on local models: tools and tool history into the prompt, tool calls out of the text.

Tools go through the model's chat template (`tools=`). A template that ignores them gets a system preamble
that lists them and asks for the Hermes / Qwen format, `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`,
and tool history rendered as text in that format. Calls in the model's output are found by their tags; a
block that does not parse as a call of a known tool stays text.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from modelgate.errors import BadRequest
from modelgate.protocol.chat import ChatMessage, ChatRequest, ReasoningPart, TextPart

Json = dict[str, Any]
TOOL_RESPONSE_TAGS = ("<tool_response>", "</tool_response>")


def tools_of(request: ChatRequest) -> list[Json] | None:
    """The OpenAI-shaped tools the prompt offers (none with tool_choice "none")."""
    if not request.tools or request.tool_choice == "none":
        return None
    return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in request.tools]


def template_messages(request: ChatRequest) -> list[Json]:
    """The messages as chat templates take them: text content, tool calls with arguments as objects."""
    out: list[Json] = []
    for i, message in enumerate(request.messages):
        item: Json = {"role": message.role, "content": text_of(message)}
        if message.tool_calls:
            item["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": _arguments(call.function.arguments, i, j)},
                }
                for j, call in enumerate(message.tool_calls)
            ]
        if message.tool_call_id:
            item["tool_call_id"] = message.tool_call_id
        if message.name:
            item["name"] = message.name
        out.append(item)
    return out


def text_of(message: ChatMessage) -> str:
    content = message.content
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        if isinstance(part, ReasoningPart):  # earlier reasoning is not shown to the model again
            continue
        if not isinstance(part, TextPart):
            raise BadRequest("Local models take text content only.")
        parts.append(part.text)
    return "".join(parts)


def _arguments(arguments: str, message: int, call: int) -> Any:
    try:
        value = json.loads(arguments)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise BadRequest(
            f"messages[{message}].tool_calls[{call}].function.arguments must be a JSON object (as a string)."
        )
    return value


def inline_tools(messages: list[Json], tools: list[Json] | None, tags: tuple[str, str]) -> list[Json]:
    """For a template that ignores tools: a system preamble listing them, and tool history as plain text."""
    out: list[Json] = []
    for message in messages:
        content = message.get("content") or ""
        if message.get("tool_calls"):
            calls = [
                format_call(c["function"]["name"], c["function"]["arguments"], tags) for c in message["tool_calls"]
            ]
            out.append({"role": "assistant", "content": "\n".join(filter(None, [content, *calls]))})
        elif message["role"] == "tool":
            out.append({"role": "user", "content": f"{TOOL_RESPONSE_TAGS[0]}\n{content}\n{TOOL_RESPONSE_TAGS[1]}"})
        else:
            out.append({"role": message["role"], "content": content})
    if tools:
        text = preamble(tools, tags)
        if out and out[0]["role"] in ("system", "developer"):
            out[0] = {**out[0], "content": f"{text}\n\n{out[0]['content']}"}
        else:
            out.insert(0, {"role": "system", "content": text})
    return out


def preamble(tools: list[Json], tags: tuple[str, str]) -> str:
    listed = "\n".join(json.dumps(t["function"], separators=(",", ":")) for t in tools)
    example = format_call("<function-name>", {"<parameter>": "<value>"}, tags)
    return (
        "You may call functions to answer. The functions, one JSON object each:\n"
        f"{listed}\n"
        f"To call one, answer with exactly:\n{example}"
    )


def format_call(name: str, arguments: Any, tags: tuple[str, str]) -> str:
    return f"{tags[0]}\n{json.dumps({'name': name, 'arguments': arguments})}\n{tags[1]}"


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def parse_call(block: str, names: set[str]) -> tuple[str, str] | None:
    """(name, arguments as a JSON string) of one tag-enclosed call, or None if it is not a call of a known tool."""
    try:
        value = json.loads(block)
    except ValueError:
        return None
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return str(value["name"]), json.dumps(arguments)


def split_calls(text: str, tags: tuple[str, str], names: set[str]) -> tuple[str, list[Json]]:
    """(text without the calls, OpenAI tool_calls) of a whole answer."""
    stream = ToolCallStream(tags, names)
    deltas = [*stream.feed(text), *stream.finish()]
    content = "".join(d.get("content", "") for d in deltas)
    calls: list[Json] = []
    for delta in deltas:
        for piece in delta.get("tool_calls", []):
            if "id" in piece:
                calls.append({"id": piece["id"], "type": "function", "function": dict(piece["function"])})
            else:
                calls[piece["index"]]["function"]["arguments"] += piece["function"]["arguments"]
    return content, calls


class ToolCallStream:
    """Splits one row's answer text, as it streams, into content deltas and OpenAI tool_call deltas.

    Text that may be the start of a call's open tag is held back. A call goes out once its close tag arrives:
    a delta with index, id, type and function name, then one with the arguments. With `stream_arguments`
    (the call is forced by a grammar, so it is sure to be well formed), the head goes out as soon as the
    name is complete and the arguments as they are generated. Whitespace before a call and at the end is
    dropped.
    """

    def __init__(self, tags: tuple[str, str], names: set[str], *, stream_arguments: bool = False) -> None:
        self.open, self.close = tags
        self.names = names
        self.stream_arguments = stream_arguments
        self.buffer = ""
        self.in_call = False
        self.blank = ""  # whitespace held until content follows it
        self.calls = 0
        self.arguments_at = -1  # where the streamed call's arguments start in the buffer (-1: head not sent)
        self.arguments_sent = 0

    def feed(self, text: str) -> list[Json]:
        self.buffer += text
        out: list[Json] = []
        while True:
            if self.in_call:
                end = self.buffer.find(self.close)
                if self.stream_arguments:
                    out.extend(self._arguments_so_far(end))
                if end < 0:
                    return out
                block, self.buffer = self.buffer[:end], self.buffer[end + len(self.close) :]
                self.in_call = False
                out.extend(self._call(block))
                continue
            start = self.buffer.find(self.open)
            if start >= 0:
                out.extend(self._content(self.buffer[:start]))
                self.buffer, self.in_call = self.buffer[start + len(self.open) :], True
                continue
            keep = _partial_suffix(self.buffer, self.open)
            out.extend(self._content(self.buffer[: len(self.buffer) - keep]))
            self.buffer = self.buffer[len(self.buffer) - keep :]
            return out

    def finish(self) -> list[Json]:
        """The text still held: an unfinished call stays text, or (streamed) ends with what was generated."""
        if self.in_call and self.arguments_at >= 0:
            rest = self.buffer[self.arguments_at + self.arguments_sent :]
            self.buffer, self.in_call, self.arguments_at, self.calls = "", False, -1, self.calls + 1
            return [_arguments_delta(self.calls - 1, rest)] if rest else []
        rest = (self.open if self.in_call else "") + self.buffer
        self.buffer, self.in_call = "", False
        return self._content(rest)

    def _arguments_so_far(self, end: int) -> list[Json]:
        out: list[Json] = []
        if self.arguments_at < 0:
            head = _CALL_HEAD.match(self.buffer)
            if head is None or head.group(1) not in self.names:
                return out
            self.arguments_at, self.arguments_sent, self.blank = head.end(), 0, ""
            out.append(_head_delta(self.calls, head.group(1)))
        # With the close tag in, the arguments end before the call object's closing brace; until then, hold
        # back what may be that brace, a newline and the start of the close tag.
        upto = self.buffer[:end].rstrip()[:-1] if end >= 0 else self.buffer[: len(self.buffer) - len(self.close) - 2]
        piece = upto[self.arguments_at + self.arguments_sent :]
        if piece:
            self.arguments_sent += len(piece)
            out.append(_arguments_delta(self.calls, piece))
        return out

    def _call(self, block: str) -> list[Json]:
        if self.arguments_at >= 0:  # streamed already
            self.arguments_at, self.calls = -1, self.calls + 1
            return []
        parsed = parse_call(block.strip(), self.names)
        if parsed is None:
            return self._content(self.open + block + self.close)
        name, arguments = parsed
        index, self.calls, self.blank = self.calls, self.calls + 1, ""
        return [_head_delta(index, name), _arguments_delta(index, arguments)]

    def _content(self, text: str) -> list[Json]:
        """Content goes out without trailing whitespace, which waits for more content (dropped before a call)."""
        text = self.blank + text
        body = text.rstrip()
        self.blank = text[len(body) :]
        return [{"content": body}] if body else []


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is a proper start of `tag`."""
    for size in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


_CALL_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"([^"\\]*)"\s*,\s*"arguments"\s*:\s*(?=\S)')


def _head_delta(index: int, name: str) -> Json:
    call = {"index": index, "id": new_call_id(), "type": "function", "function": {"name": name, "arguments": ""}}
    return {"tool_calls": [call]}


def _arguments_delta(index: int, piece: str) -> Json:
    return {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
