"""Pure translation between our OpenAI-shaped requests/answers and Vertex AI's Gemini and embedding APIs.

Gemini (cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference) takes `contents` with roles
`user`/`model` made of `parts`; the system prompt goes to `systemInstruction`, sampling knobs to
`generationConfig`, tools to `functionDeclarations`. Tool results become `functionResponse` parts in a user
turn, named after the call they answer; the history keeps only keys Gemini accepts (no `id`/`type` on
function calls, `args` as an object), since gateways that leaked OpenAI keys there got the history rejected.

Thought signatures (ai.google.dev/gemini-api/docs/thought-signatures) may sit on any part and must go back on
the same part; Gemini 3 refuses a function-call turn whose first call lacks one. They travel in the shape of
Google's own OpenAI-compatible layer, which clients written for Gemini already keep: a call's signature in
`tool_calls[i].extra_content.google.thought_signature`, a text part's on the message (or stream delta) as
`extra_content.google.thought_signature`, a thought's in its reasoning block's `signature`. A function-call
turn that comes back with no signature at all (written by another provider, or by a client that dropped it)
gets Google's documented `skip_thought_signature_validator` on its first call.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from modelgate.errors import BadRequest
from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.embeddings import EmbeddingRequest
from modelgate.providers.base import chat_chunk
from modelgate.providers.vertex_errors import raise_if_blocked

Json = dict[str, Any]

# Candidate.finishReason → OpenAI finish_reason.
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
# reasoning_effort → thinkingConfig.thinkingBudget (tokens).
EFFORT_BUDGETS = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768, "max": 32768}
# JSON-schema keys Gemini's OpenAPI-subset responseSchema rejects.
_SCHEMA_DROP = {"additionalProperties", "$schema", "strict"}
# Google's documented stand-in for a function call that has no signature of Gemini's (…/thought-signatures).
SKIP_SIGNATURE = "skip_thought_signature_validator"


def google_signature(obj: Json) -> str | None:
    """The thought signature an OpenAI-shaped message, delta or tool call carries in `extra_content`."""
    extra = obj.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    sig = google.get("thought_signature") if isinstance(google, dict) else None
    return sig if isinstance(sig, str) and sig else None


def _extra(signature: str) -> Json:
    return {"google": {"thought_signature": signature}}


def chat_body(request: ChatRequest) -> Json:
    """A generateContent body. Example (…/model-reference/inference#sample-requests):
    {"systemInstruction": {"parts": [{"text": "be brief"}]},
     "contents": [{"role": "user", "parts": [{"text": "Hello"}]}],
     "generationConfig": {"temperature": 0.3, "topP": 0.9, "topK": 40, "maxOutputTokens": 50,
                          "stopSequences": ["END"], "candidateCount": 1}}
    """
    data = request.model_dump(exclude_none=True, by_alias=True)
    system: list[Json] = []
    contents: list[Json] = []
    names_by_id: dict[str, str] = {}
    for msg in data["messages"]:
        role = msg["role"]
        if role in ("system", "developer"):
            system.append({"text": _text(msg.get("content"))})
        elif role == "tool":
            name = names_by_id.get(msg.get("tool_call_id") or "")
            if name is None:
                raise BadRequest("A tool message's tool_call_id must name a tool call of an earlier assistant message.")
            response: Json = {"name": name, "response": _tool_result(_text(msg.get("content")))}
            images = [_image(p["image_url"]["url"]) for p in _parts(msg.get("content")) if p["type"] == "image_url"]
            if images:
                response["parts"] = images  # a multimodal function response: the image beside the result
            part = {"functionResponse": response}
            if contents and contents[-1]["role"] == "user" and "functionResponse" in contents[-1]["parts"][0]:
                contents[-1]["parts"].append(part)  # parallel results answer in one turn
            else:
                contents.append({"role": "user", "parts": [part]})
        elif role == "assistant":
            parts = _assistant_parts(msg)
            for call in msg.get("tool_calls") or []:
                names_by_id[call["id"]] = call["function"]["name"]
            contents.append({"role": "model", "parts": parts or [{"text": ""}]})
        else:
            contents.append({"role": "user", "parts": _user_parts(msg.get("content"))})
    body: Json = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    config = _generation_config(data, request)
    if config:
        body["generationConfig"] = config
    if data.get("tools"):
        body["tools"] = [{"functionDeclarations": [_declaration(t["function"]) for t in data["tools"]]}]
        tool_config = _tool_config(data.get("tool_choice"))
        if tool_config:
            body["toolConfig"] = tool_config
    if request.extra_params:
        body.update(request.extra_params)
    return body


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if p.get("type") == "text")


def _parts(content: Any) -> list[Json]:
    return content if isinstance(content, list) else []


def _tool_result(text: str) -> Json:
    """Gemini wants an object: a JSON object result is passed as is, anything else under `content`."""
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"content": text}


def _user_parts(content: Any) -> list[Json]:
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[Json] = []
    for p in content or []:
        if p["type"] == "text":
            parts.append({"text": p["text"]})
        elif p["type"] == "image_url":
            parts.append(_image(p["image_url"]["url"]))
        else:
            raise BadRequest(f"Provider 'google-cloud-vertex-ai' does not support '{p['type']}' content parts.")
    return parts or [{"text": ""}]


def _image(url: str) -> Json:
    if url.startswith("data:"):
        head, _, b64 = url.partition(",")
        return {"inlineData": {"mimeType": head[5:].split(";")[0], "data": b64}}
    ext = url.rsplit(".", 1)[-1].lower()
    mime = {"png": "image/png", "gif": "image/gif", "webp": "image/webp"}.get(ext, "image/jpeg")
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _assistant_parts(msg: Json) -> list[Json]:
    """A model turn: its thoughts and texts in order (the message's text signature on the first text), then
    its function calls with theirs."""
    parts: list[Json] = []
    content = msg.get("content")
    if isinstance(content, str):
        if content:
            parts.append({"text": content})
    else:
        for p in content or []:
            if p["type"] == "text" and p.get("text"):
                parts.append({"text": p["text"]})
            elif p["type"] == "reasoning":
                parts.extend(_thought_parts(p))
    text_sig = google_signature(msg)
    if text_sig:
        first_text = next((p for p in parts if not p.get("thought")), None)
        if first_text is None:  # a signature that came on an empty part (streams end that way)
            parts.append(first_text := {"text": ""})
        first_text["thoughtSignature"] = text_sig
    calls: list[Json] = []
    for call in msg.get("tool_calls") or []:
        fn = call["function"]
        try:
            args = orjson.loads(fn["arguments"] or "{}")
        except orjson.JSONDecodeError:
            raise BadRequest(f"Tool call {call['id']!r} has arguments that are not JSON.") from None
        part: Json = {"functionCall": {"name": fn["name"], "args": args if isinstance(args, dict) else {}}}
        sig = google_signature(call)
        if sig:
            part["thoughtSignature"] = sig
        calls.append(part)
    if calls and not any("thoughtSignature" in c for c in calls):
        calls[0]["thoughtSignature"] = SKIP_SIGNATURE  # parallel calls: Gemini signs only the first
    return parts + calls


def _thought_parts(block: Json) -> list[Json]:
    """A reasoning block → thought parts with their signature. Encrypted (redacted) items are another
    provider's (Anthropic's redacted_thinking, Bedrock's redactedContent): Gemini has no such part, so they are
    dropped."""
    parts: list[Json] = []
    for item in block.get("summary") or []:
        if item.get("type") != "summary_text":
            continue
        thought: Json = {"text": item.get("text") or "", "thought": True}
        if item.get("signature"):
            thought["thoughtSignature"] = item["signature"]
        parts.append(thought)
    return parts


def _generation_config(data: Json, request: ChatRequest) -> Json:
    config = sampling_config(data)
    if (request.n or 1) > 1:
        config["candidateCount"] = request.n
    fmt = data.get("response_format") or {}
    if fmt.get("type") == "json_object":
        config["responseMimeType"] = "application/json"
    elif fmt.get("type") == "json_schema":
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema is not None:
            config["responseSchema"] = _gemini_schema(schema)
    thinking = _thinking_config(request)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    return config


def sampling_config(data: Json) -> Json:
    """The generationConfig knobs chat and completions share (a request dumped with exclude_none)."""
    config: Json = {}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"), ("seed", "seed")):
        if data.get(ours) is not None:
            config[theirs] = data[ours]
    for ours, theirs in (("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty")):
        if data.get(ours) is not None:
            config[theirs] = data[ours]
    max_tokens = data.get("max_completion_tokens") or data.get("max_tokens")
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = data.get("stop")
    if stop is not None:
        config["stopSequences"] = [stop] if isinstance(stop, str) else stop
    return config


def _gemini_schema(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _gemini_schema(v) for k, v in schema.items() if k not in _SCHEMA_DROP}
    if isinstance(schema, list):
        return [_gemini_schema(v) for v in schema]
    return schema


def _thinking_config(request: ChatRequest) -> Json | None:
    if request.thinking is not None:
        if request.thinking.type == "disabled":
            return {"thinkingBudget": 0}
        return {"thinkingBudget": request.thinking.budget_tokens or -1, "includeThoughts": True}
    effort = request.reasoning_effort
    if effort is None:
        return None
    if effort == "none":
        return {"thinkingBudget": 0}
    return {"thinkingBudget": EFFORT_BUDGETS[effort], "includeThoughts": True}


def _declaration(fn: Json) -> Json:
    decl: Json = {"name": fn["name"]}
    if fn.get("description"):
        decl["description"] = fn["description"]
    if fn.get("parameters"):
        decl["parameters"] = _gemini_schema(fn["parameters"])
    return decl


def _tool_config(choice: Any) -> Json | None:
    if choice in (None, "auto"):
        return None
    if choice == "none":
        return {"functionCallingConfig": {"mode": "NONE"}}
    if choice == "required":
        return {"functionCallingConfig": {"mode": "ANY"}}
    name = (choice.get("function") or {}).get("name")
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


def usage(meta: Json | None) -> Json:
    """usageMetadata {promptTokenCount, candidatesTokenCount, thoughtsTokenCount, totalTokenCount} → usage."""
    meta = meta or {}
    prompt = int(meta.get("promptTokenCount") or 0)
    completion = int(meta.get("candidatesTokenCount") or 0) + int(meta.get("thoughtsTokenCount") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _tool_call(part: Json, index: int) -> Json:
    call = part["functionCall"]
    call_id = call.get("id") or f"call_{index}_{call.get('name')}"
    args = orjson.dumps(call.get("args") or {}).decode()
    out: Json = {"id": call_id, "type": "function", "function": {"name": call.get("name"), "arguments": args}}
    if part.get("thoughtSignature"):
        out["extra_content"] = _extra(part["thoughtSignature"])
    return out


def _reasoning(part: Json) -> Json:
    item = {"type": "summary_text", "text": part.get("text", ""), "signature": part.get("thoughtSignature")}
    return {"type": "reasoning", "summary": [item]}


def finish_reason(reason: Any, has_calls: bool = False) -> str:
    if has_calls:
        return "tool_calls"
    return FINISH_REASONS.get(str(reason), "stop")


def chat_response(resp: Json, model: str) -> Json:
    """A generateContent answer → chat.completion. Example (…/model-reference/inference#response):
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "finishReason": "STOP"}],
     "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7},
     "modelVersion": "gemini-2.5-flash", "responseId": "abc"}
    """
    raise_if_blocked(resp)
    choices = []
    for i, cand in enumerate(resp.get("candidates") or []):
        texts: list[str] = []
        reasoning: list[Json] = []
        calls: list[Json] = []
        text_sig: str | None = None
        for part in (cand.get("content") or {}).get("parts") or []:
            if "functionCall" in part:
                calls.append(_tool_call(part, len(calls)))
            elif part.get("thought"):
                reasoning.append(_reasoning(part))
            elif "text" in part:
                texts.append(part["text"])
                text_sig = text_sig or part.get("thoughtSignature")
        text = "".join(texts)
        content: Any = [*reasoning, {"type": "text", "text": text}] if reasoning else (text or None)
        message: Json = {"role": "assistant", "content": content}
        if text_sig:
            message["extra_content"] = _extra(text_sig)
        if calls:
            message["tool_calls"] = calls
        finish = finish_reason(cand.get("finishReason"), bool(calls))
        choices.append({"index": cand.get("index", i), "message": message, "finish_reason": finish})
    return {
        "id": resp.get("responseId"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage(resp.get("usageMetadata")),
    }


class StreamTranslator:
    """streamGenerateContent?alt=sse events → chat.completion.chunk dicts. Each event is a partial
    GenerateContentResponse: new parts per candidate, `finishReason` on the last, `usageMetadata` (running
    totals) on any; usage goes out once, after the stream, in a chunk with no choices.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.id: str | None = None
        self.created = int(time.time())
        self.started: set[int] = set()
        self.calls: dict[int, int] = {}
        self.usage: Json | None = None

    def _chunk(self, index: int, delta: Json, finish: str | None = None) -> Json:
        return chat_chunk({"id": self.id, "created": self.created, "model": self.model}, delta, finish, index)

    def feed(self, event: Json) -> list[Json]:
        self.id = self.id or event.get("responseId")
        raise_if_blocked(event)
        if event.get("usageMetadata"):
            self.usage = event["usageMetadata"]
        out: list[Json] = []
        for i, cand in enumerate(event.get("candidates") or []):
            index = cand.get("index", i)
            if index not in self.started:
                self.started.add(index)
                out.append(self._chunk(index, {"role": "assistant", "content": ""}))
            for part in (cand.get("content") or {}).get("parts") or []:
                if "functionCall" in part:
                    n = self.calls.get(index, 0)
                    self.calls[index] = n + 1
                    out.append(self._chunk(index, {"tool_calls": [{"index": n, **_tool_call(part, n)}]}))
                elif part.get("thought"):
                    out.append(self._chunk(index, {"content": [_reasoning(part)]}))
                elif part.get("text") or part.get("thoughtSignature"):
                    delta: Json = {"content": part.get("text") or ""}
                    if part.get("thoughtSignature"):  # Google's own stream shape; may come on an empty part
                        delta["extra_content"] = _extra(part["thoughtSignature"])
                    out.append(self._chunk(index, delta))
            if cand.get("finishReason"):
                finish = finish_reason(cand["finishReason"], bool(self.calls.get(index)))
                out.append(self._chunk(index, {}, finish))
        return out

    def close(self) -> list[Json]:
        last = self._chunk(0, {})
        return [{**last, "choices": [], "usage": usage(self.usage)}]


def embed_body(request: EmbeddingRequest) -> Json:
    """A text-embedding :predict body. Example (…/model-reference/text-embeddings-api):
    {"instances": [{"content": "hello"}], "parameters": {"outputDimensionality": 256}}
    """
    body: Json = {"instances": [{"content": t} for t in request.inputs()]}
    if request.dimensions is not None:
        body["parameters"] = {"outputDimensionality": request.dimensions}
    if request.extra_params:
        body.update(request.extra_params)
    return body


def embed_response(resp: Json, model: str) -> Json:
    """A :predict answer → OpenAI embeddings list. Example (…/model-reference/text-embeddings-api):
    {"predictions": [{"embeddings": {"values": [0.01, -0.02], "statistics": {"token_count": 1,
     "truncated": false}}}]}
    """
    data, tokens = [], 0
    for i, pred in enumerate(resp.get("predictions") or []):
        emb = pred.get("embeddings") or {}
        tokens += int((emb.get("statistics") or {}).get("token_count") or 0)
        data.append({"object": "embedding", "index": i, "embedding": emb.get("values") or []})
    return {"object": "list", "model": model, "data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
