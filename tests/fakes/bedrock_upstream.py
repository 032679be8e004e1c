"""A local fake of the Amazon Bedrock runtime (Converse, ConverseStream, InvokeModel), in place of
bedrock-runtime.<region>.amazonaws.com.

Built from the published API reference (API_runtime_Converse, API_runtime_ConverseStream,
API_runtime_InvokeModel, the Titan and Cohere embedding bodies, and the AWS event-stream encoding). It checks:

* the SigV4 signature: the ``Authorization`` header's credential scope (key id, date, region, service
  ``bedrock``) and its signature, recomputed with botocore from the request as received (method, raw path,
  signed headers, body bytes) and the key id's secret key; for temporary credentials (``add_credentials`` with
  a session token) the ``X-Amz-Security-Token`` header must carry that token and be signed; 403
  ``{"message": ...}`` otherwise;
* Converse bodies: first against botocore's own ``bedrock-runtime`` service model
  (:mod:`tests.fakes.bedrock_types`: unknown or snake_case members, missing required ones, wrong types, a
  content block with other than one member set, a blank text block are a 400 ``ValidationException``); then
  ``messages`` alternating user/assistant starting with user, every ``toolResult`` naming an earlier
  ``toolUse``; answers and stream events are checked against the service model's output shapes;
* answers: ``"echo: <last user text>"``; with ``toolConfig`` on a fresh user turn, a ``toolUse`` of the
  chosen tool (the first, or the one ``toolChoice.tool`` names) with a sample input from its schema; after a
  tool result, ``"tool said: <text>"``; usage counts words;
* ConverseStream: binary event-stream frames (botocore has a decoder but no encoder, so frames are built here
  per the documented layout with botocore's CRC32): messageStart, contentBlockStart (tools),
  contentBlockDelta per word (tool input in 7-character fragments), contentBlockStop, messageStop, metadata;
* reasoning: with ``additionalModelRequestFields.reasoning_config`` ``{"type": "enabled", "budget_tokens"}`` the
  answer starts with a ``reasoningContent`` block ``{"reasoningText": {"text": "thinking about: <last user text>",
  "signature": signature(text)}}`` (streamed as reasoningContent text deltas per word, then a signature delta), and
  when the last user text contains "redact" also a ``{"redactedContent": <base64>}`` block; reasoning blocks sent
  back in assistant turns must carry the signature of their text, else 400 (as Bedrock rejects tampered thinking);
* InvokeModel: ``amazon.*`` Titan bodies ``{"inputText"}`` and ``cohere.*`` bodies ``{"texts", "input_type"}``;
* ``fail_next(status, count, retry_after)`` and models named ``fail-<status>`` answer errors
  (429 is a ThrottlingException); model ``stream-throttle`` streams its text, then a ``throttlingException``
  exception message.

Every request is recorded in ``.requests`` (``json`` is the parsed body, ``path`` the raw path).
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from typing import Any

import orjson
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import crc32

from tests.fakes.bedrock_types import (
    converse_answer_problems,
    converse_problems,
    invoke_problems,
    stream_event_problems,
)
from tests.fakes.openai_payloads import sample_instance, word_pieces
from tests.fakes.threaded import AppFake, ThreadedFake

JSON = dict[str, Any]
AUTH = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                  r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$")  # fmt: skip
ERROR_TYPES = {400: "ValidationException", 403: "AccessDeniedException", 429: "ThrottlingException"}


def _error(status: int, message: str, retry_after: int | None = None) -> web.Response:
    headers = {"x-amzn-ErrorType": ERROR_TYPES.get(status, "InternalServerException")}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return web.json_response({"message": message}, status=status, headers=headers)


def encode_event(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (total length, headers length, prelude CRC), headers (string-typed,
    type 7), payload, message CRC — all big-endian, CRCs are CRC32."""
    encoded = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += struct.pack("!B", len(raw_name)) + raw_name + struct.pack("!BH", 7, len(raw_value)) + raw_value
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", crc32(prelude) & 0xFFFFFFFF)
    message = prelude + encoded + payload
    return message + struct.pack("!I", crc32(message) & 0xFFFFFFFF)


def event_frame(event_type: str, payload: JSON) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_event(headers, orjson.dumps(payload))


def signature(text: str) -> str:
    """The fake's signature of a reasoning text; a changed text or signature no longer matches."""
    return "sig-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def _text_of(blocks: list[JSON]) -> str:
    return "".join(b.get("text", "") for b in blocks if isinstance(b, dict))


class FakeBedrockUpstream(AppFake):
    def __init__(self, access_key: str, secret_key: str, region: str) -> None:
        super().__init__()
        self.access_key = access_key
        self.secret_key = secret_key
        # key id → (secret key, session token or None); temporary credentials carry a token.
        self.credentials: dict[str, tuple[str, str | None]] = {access_key: (secret_key, None)}
        self.region = region

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/model/{model}/converse", self._converse)
        router.add_post("/model/{model}/converse-stream", self._converse)
        router.add_post("/model/{model}/invoke", self._invoke)

    def signature_problem(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> str | None:
        """Why the SigV4 signature is wrong, or None: recomputed with botocore from the request as received."""
        match = AUTH.match(headers.get("authorization", ""))
        if not match:
            return "Missing or malformed Authorization header"
        key_id, day, region, service, signed, signature = match.groups()
        if key_id not in self.credentials:
            return "The security token included in the request is invalid."
        secret_key, token = self.credentials[key_id]
        if headers.get("x-amz-security-token") != token:
            return "The security token included in the request is invalid."
        stamp = headers.get("x-amz-date", "")
        if (region, service) != (self.region, "bedrock") or not stamp.startswith(day):
            return f"Credential should be scoped to a valid region and service 'bedrock', not {region}/{service}"
        names = signed.split(";")
        if not {"host", "x-amz-date", "content-type"} <= set(names):
            return "host, x-amz-date and content-type must be signed"
        if token is not None and "x-amz-security-token" not in names:
            return "x-amz-security-token must be signed"
        request = AWSRequest(
            method=method,
            url=f"http://{headers['host']}{raw_path}",
            data=body,
            headers={n: headers[n] for n in names if n in headers},
        )
        request.context["timestamp"] = stamp
        auth = SigV4Auth(Credentials(key_id, secret_key, token), service, region)
        expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
        if expected != signature:
            return "The request signature we calculated does not match the signature you provided."
        return None

    async def _admit(self, request: web.Request) -> JSON | web.Response:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        headers = self.record(request, body, request.raw_path)
        problem = self.signature_problem(request.method, request.raw_path, headers, raw)
        if problem:
            return _error(403, problem)
        failure = self.take_failure()
        if failure is not None:
            return _error(failure.status, "Too many requests, please wait before trying again.", failure.retry_after)
        model = request.match_info["model"]
        if model.startswith("fail-"):
            status = int(model[5:])
            return _error(status, f"Injected {status} error", 3 if status == 429 else None)
        if not isinstance(body, dict):
            return _error(400, "Malformed input request, please reformat your input and try again.")
        return body

    # -- converse ---------------------------------------------------------------------------------
    async def _converse(self, request: web.Request) -> web.StreamResponse:
        body = await self._admit(request)
        if isinstance(body, web.Response):
            return body
        found = converse_problems(body, request.match_info["model"], request.path.endswith("/converse-stream"))
        if found:
            return _error(400, "; ".join(found))
        problem = self._check(body)
        if problem:
            return _error(400, problem)
        messages = body["messages"]
        last = messages[-1]["content"]
        tools = (body.get("toolConfig") or {}).get("tools") or []
        results = [b["toolResult"] for b in last if "toolResult" in b]
        tool_use: JSON | None = None
        if results:
            text = f"tool said: {_text_of(results[-1]['content'])}"
        elif tools:
            named = ((body["toolConfig"].get("toolChoice") or {}).get("tool") or {}).get("name")
            spec = next((t["toolSpec"] for t in tools if t["toolSpec"]["name"] == named), tools[0]["toolSpec"])
            tool_input = sample_instance(spec["inputSchema"]["json"])
            tool_use = {"toolUseId": f"tooluse_{spec['name']}", "name": spec["name"], "input": tool_input}
            text = ""
        else:
            text = f"echo: {_text_of(last)}"
        reasoning: list[JSON] = []
        config = (body.get("additionalModelRequestFields") or {}).get("reasoning_config") or {}
        if config.get("type") == "enabled" and isinstance(config.get("budget_tokens"), int):
            thought = f"thinking about: {_text_of(last)}"
            reasoning.append({"reasoningText": {"text": thought, "signature": signature(thought)}})
            if "redact" in _text_of(last):
                reasoning.append({"redactedContent": base64.b64encode(b"redacted:" + thought.encode()).decode()})
        words_in = sum(len(_text_of(m["content"]).split()) for m in messages)
        words_in += len(_text_of(body.get("system") or []).split())
        words_out = len(text.split()) + (5 if tool_use else 0)
        usage = {"inputTokens": words_in, "outputTokens": words_out, "totalTokens": words_in + words_out}
        stop = "tool_use" if tool_use else "end_turn"
        if request.path.endswith("/converse-stream"):
            return await self._stream(request, text, tool_use, stop, usage, reasoning)
        content: list[JSON] = [{"reasoningContent": r} for r in reasoning]
        content.append({"toolUse": tool_use} if tool_use else {"text": text})
        answer = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": usage,
            "metrics": {"latencyMs": 12},
        }
        found = converse_answer_problems(answer)
        assert not found, f"the fake's own answer is not Bedrock's: {found}"
        return web.json_response(answer)

    def _check(self, body: JSON) -> str | None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "A conversation must start with a user message."
        tool_ids: set[str] = set()
        for i, m in enumerate(messages):
            expected = "user" if i % 2 == 0 else "assistant"
            if m.get("role") != expected:
                return "A conversation must alternate between user and assistant roles."
            if not isinstance(m.get("content"), list) or not m["content"]:
                return f"messages.{i}.content must be a non-empty list of content blocks"
            for block in m["content"]:
                problem = self._reasoning_problem(block)
                if problem:
                    return f"messages.{i}: {problem}"
                if "toolUse" in block:
                    tool_ids.add(block["toolUse"]["toolUseId"])
                if "toolResult" in block and block["toolResult"].get("toolUseId") not in tool_ids:
                    return "toolResult blocks must match toolUse blocks of the previous turn"
        if tool_ids and not body.get("toolConfig"):
            return "The toolConfig field must be defined when using toolUse and toolResult content blocks."
        return None

    @staticmethod
    def _reasoning_problem(block: JSON) -> str | None:
        content = block.get("reasoningContent")
        if content is None:
            return None
        if "redactedContent" in content:
            try:
                base64.b64decode(content["redactedContent"], validate=True)
            except (ValueError, TypeError):
                return "redactedContent must be base64"
            return None
        text = content.get("reasoningText") or {}
        if text.get("signature") != signature(str(text.get("text"))):
            return "The signature of a reasoning block is invalid; reasoning blocks must be sent back unmodified."
        return None

    async def _stream(
        self, request: web.Request, text: str, tool_use: JSON | None, stop: str, usage: JSON, reasoning: list[JSON]
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream"})
        await resp.prepare(request)

        async def send(kind: str, payload: JSON) -> None:
            found = stream_event_problems(kind, payload)
            assert not found, f"the fake's own event is not Bedrock's: {found}"
            await resp.write(event_frame(kind, payload))

        await send("messageStart", {"role": "assistant"})
        if request.match_info["model"] == "stream-throttle":
            await send("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text}})
            headers = {":message-type": "exception", ":exception-type": "throttlingException"}
            await resp.write(encode_event(headers, orjson.dumps({"message": "Too many tokens, please wait."})))
            await resp.write_eof()
            return resp
        for index, block in enumerate(reasoning):
            if "redactedContent" in block:
                deltas: list[JSON] = [{"redactedContent": block["redactedContent"]}]
            else:
                deltas = [{"text": piece} for piece in word_pieces(block["reasoningText"]["text"])]
                deltas.append({"signature": block["reasoningText"]["signature"]})
            for delta in deltas:
                await send("contentBlockDelta", {"contentBlockIndex": index, "delta": {"reasoningContent": delta}})
            await send("contentBlockStop", {"contentBlockIndex": index})
        last = len(reasoning)
        if tool_use:
            start = {"toolUse": {"toolUseId": tool_use["toolUseId"], "name": tool_use["name"]}}
            await send("contentBlockStart", {"contentBlockIndex": last, "start": start})
            args = orjson.dumps(tool_use["input"]).decode()
            for i in range(0, len(args), 7):
                delta = {"toolUse": {"input": args[i : i + 7]}}
                await send("contentBlockDelta", {"contentBlockIndex": last, "delta": delta})
        else:
            for piece in word_pieces(text):
                await send("contentBlockDelta", {"contentBlockIndex": last, "delta": {"text": piece}})
        await send("contentBlockStop", {"contentBlockIndex": last})
        await send("messageStop", {"stopReason": stop})
        await send("metadata", {"usage": usage, "metrics": {"latencyMs": 12}})
        await resp.write_eof()
        return resp

    # -- invoke (embeddings) ----------------------------------------------------------------------
    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        body = await self._admit(request)
        if isinstance(body, web.Response):
            return body
        model = request.match_info["model"]
        found = invoke_problems(model, request.headers.get("content-type"), request.headers.get("accept"), b"")
        if found:
            return _error(400, "; ".join(found))
        if model.startswith("amazon."):
            text = body.get("inputText")
            if not isinstance(text, str) or set(body) - {"inputText", "dimensions", "normalize"}:
                return _error(400, "Malformed input request: required key [inputText] not found")
            dims = int(body.get("dimensions") or 4)
            vector = [round(len(text) / 100, 4)] + [0.5] * (dims - 1)
            return web.json_response({"embedding": vector, "inputTextTokenCount": len(text.split())})
        if model.startswith("cohere."):
            texts = body.get("texts")
            if not isinstance(texts, list) or not texts or not body.get("input_type"):
                return _error(400, "Malformed input request: required keys [texts, input_type]")
            vectors = [[round(len(t) / 100, 4), 0.5, -0.25, float(i)] for i, t in enumerate(texts)]
            return web.json_response(
                {"id": "e-1", "embeddings": vectors, "texts": texts, "response_type": "embeddings_floats"}
            )
        return _error(400, f"The provided model identifier is invalid: {model}")


class FakeBedrockThread(ThreadedFake):
    """Runs a :class:`FakeBedrockUpstream` on its own event loop in a daemon thread."""

    def __init__(self, access_key: str, secret_key: str, region: str) -> None:
        super().__init__(FakeBedrockUpstream(access_key, secret_key, region), "fake-bedrock")
        self.server: FakeBedrockUpstream

    def add_credentials(self, access_key: str, secret_key: str, session_token: str | None = None) -> None:
        """Also accept these credentials (temporary ones when a session token is given)."""
        self.on_loop(self.server.credentials.__setitem__, access_key, (secret_key, session_token))
