"""A local fake of Vertex AI (Google's OAuth token endpoint, Gemini generateContent/streamGenerateContent and
text-embedding :predict), used in place of oauth2.googleapis.com and {region}-aiplatform.googleapis.com.

Built from the published examples (developers.google.com/identity/protocols/oauth2/service-account#httprest,
cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference, …/text-embeddings-api). It checks:

* ``POST /token``: form ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` and an ``assertion`` JWT
  signed RS256 by the service account's key (verified with the test key pair's public key), issuer = the
  client email, audience = Google's token endpoint (what google-auth signs for, whatever URI it posts to),
  scope = cloud-platform; answers a fresh ``access_token``;
* Gemini routes: ``Authorization: Bearer <an issued token>`` (401 ``UNAUTHENTICATED`` otherwise) and the body
  checked against google-genai's own types in camelCase (:mod:`tests.fakes.vertex_types`: unknown or
  snake_case keys, wrong types and non-base64 signatures are a 400 INVALID_ARGUMENT), then: ``contents`` roles
  user/model; each part holds exactly one of text, inlineData, fileData, functionCall, functionResponse; a
  functionResponse must name a functionCall of the turn before it;
* thought signatures (ai.google.dev/gemini-api/docs/thought-signatures) are ``signature(kind, key)``, base64
  that says which part they belong to; one sent back must sit on that same kind of part (a function call's
  on the call of that name), or be Google's ``skip_thought_signature_validator`` on a function call.
  ``gemini-3*`` models behave like Gemini 3: thoughts come unsigned, the answer's text and its first
  function call signed, and a function-call turn of the current turn whose first call has no signature is
  refused ("Function call is missing a thought_signature in functionCall parts.");
* answers ``"echo: <last user text>"``; with tools on a user text turn, a functionCall of the first
  declaration with a sample of its parameters (of every declaration, first one signed, when the text says
  "parallel"); after functionResponse parts, ``"tool said: <content>"``; with responseSchema, a sample
  instance as JSON; with thinkingConfig.includeThoughts, a thought part first; function calls always signed
  (Gemini signs calls whenever it thinks, which Gemini 3 always does); candidateCount candidates; usage counts
  words (+2 thought tokens); every answer and streamed event is checked against google-genai's
  ``GenerateContentResponse`` before it goes out;
* streaming (``?alt=sse``): ``data:`` events, one per word, the last with finishReason and usageMetadata; a
  signed text's signature comes in an event of its own, on an empty text part, as Gemini streams it;
* ``fail_next(status, count, retry_after)`` fails the next Gemini/predict requests with Google's error body
  (``{"error": {"code", "message", "status"}}``, status the canonical name: INVALID_ARGUMENT, UNAUTHENTICATED,
  PERMISSION_DENIED, RESOURCE_EXHAUSTED, UNAVAILABLE);
* models that behave like documented failures (…/generative-ai/docs/error-code-list, …/multimodal/configure-
  safety-filters): ``long-context`` answers 400 INVALID_ARGUMENT "The input token count (…) exceeds the maximum
  number of tokens allowed (…)"; ``blocked-prompt`` answers 200 with ``promptFeedback.blockReason: SAFETY`` and
  no candidates; ``unsafe-answer`` ends its candidate with ``finishReason: SAFETY`` (streamed: after its first
  word); ``stream-exhausted`` streams its first word, then an ``{"error": {... RESOURCE_EXHAUSTED}}`` event.

Every request is recorded in ``.requests`` (form fields as a dict for /token).
"""

from __future__ import annotations

import base64
import itertools
import time
from typing import Any

import jwt
import orjson
from aiohttp import web

from tests.fakes.openai_payloads import sample_instance, word_pieces
from tests.fakes.threaded import AppFake, ThreadedFake, retry_headers
from tests.fakes.vertex_types import request_problems, response_problems

JSON = dict[str, Any]
PART_KEYS = {"text", "inlineData", "fileData", "functionCall", "functionResponse"}
PART_EXTRAS = {"thought", "thoughtSignature"}
SKIP_SIGNATURE = "skip_thought_signature_validator"
MISSING_SIGNATURE = (
    "Function call is missing a thought_signature in functionCall parts. This is required for tools to work "
    "correctly, and missing thought_signature may lead to degraded model performance."
)
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    429: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
}
SAFETY_RATINGS = [
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
]


def signature(kind: str, key: str = "") -> str:
    """The fake's thought signature for a part: base64 naming the part's kind (thought, text, call) and key."""
    return base64.b64encode(f"fake-gemini:{kind}:{key}".encode()).decode()


def _part_key(part: JSON) -> tuple[str, str]:
    if "functionCall" in part:
        return "call", str(part["functionCall"].get("name"))
    return ("thought", "") if part.get("thought") else ("text", "")


def _error(status: int, message: str, retry_after: int | None = None) -> web.Response:
    body = {"error": {"code": status, "message": message, "status": _STATUS_NAMES.get(status, "UNKNOWN")}}
    return web.json_response(body, status=status, headers=retry_headers(retry_after))


class FakeVertexUpstream(AppFake):
    def __init__(self, client_email: str, public_key_pem: bytes) -> None:
        super().__init__()
        self.client_email = client_email
        self.public_key_pem = public_key_pem
        self.tokens: set[str] = set()
        self._counter = itertools.count(1)

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/token", self._token)
        router.add_post("/v1/projects/{project}/locations/{region}/publishers/google/models/{call}", self._model)

    # -- OAuth ------------------------------------------------------------------------------------
    async def _token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.record(request, form)
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            claims = jwt.decode(
                str(form.get("assertion")),
                self.public_key_pem,
                algorithms=["RS256"],
                audience=GOOGLE_TOKEN_AUDIENCE,
                issuer=self.client_email,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.InvalidTokenError as exc:
            return web.json_response({"error": "invalid_grant", "error_description": str(exc)}, status=400)
        if SCOPE not in str(claims.get("scope", "")).split():
            return web.json_response({"error": "invalid_scope"}, status=400)
        token = f"ya29.fake-{next(self._counter)}"
        self.tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    # -- Gemini and predict -----------------------------------------------------------------------
    async def _model(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        headers = self.record(request, body, query=dict(request.query))
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return _error(401, "Request had invalid authentication credentials.")
        failure = self.take_failure()
        if failure is not None:
            return _error(failure.status, f"Injected {failure.status} error", failure.retry_after)
        model, _, method = request.match_info["call"].partition(":")
        if method == "predict":
            return self._predict(body)
        if method not in ("generateContent", "streamGenerateContent"):
            return _error(404, f"unknown method {method}")
        found = request_problems(body)
        if found:
            return _error(400, "Invalid JSON payload received. " + "; ".join(found))
        problem = _check_gemini(body, model)
        if problem:
            return _error(400, problem)
        if model == "long-context":
            return _error(
                400, "The input token count (1048577) exceeds the maximum number of tokens allowed (1048576)."
            )
        answer = _answer(body, model)
        if model == "blocked-prompt":
            answer = {
                "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": SAFETY_RATINGS},
                "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4},
                "modelVersion": model,
                "responseId": answer["responseId"],
            }
        if method == "generateContent":
            if model == "unsafe-answer":  # the candidate's content withheld
                answer["candidates"] = [
                    {"index": c["index"], "finishReason": "SAFETY", "safetyRatings": SAFETY_RATINGS}
                    for c in answer["candidates"]
                ]
            return self._answer_json(answer)
        if request.query.get("alt") != "sse":
            return _error(400, "this fake streams only with alt=sse")
        return await self._stream(request, answer)

    @staticmethod
    def _answer_json(answer: JSON) -> web.Response:
        found = response_problems(answer)
        assert not found, f"the fake's own answer is not Gemini's: {found}"
        return web.json_response(answer)

    async def _stream(self, request: web.Request, answer: JSON) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        events: list[JSON] = []
        if "candidates" not in answer:  # a blocked prompt: one event, as the whole answer
            await resp.write(b"data: " + orjson.dumps(answer) + b"\r\n\r\n")
            await resp.write_eof()
            return resp
        model = answer["modelVersion"]
        for cand in answer["candidates"]:
            for part in cand["content"]["parts"]:
                pieces = word_pieces(part["text"]) if "text" in part and not part.get("thought") else [None]
                news: list[JSON] = [part if piece is None else {"text": piece} for piece in pieces]
                if pieces != [None] and part.get("thoughtSignature"):
                    news.append({"text": "", "thoughtSignature": part["thoughtSignature"]})
                for new in news:
                    events.append(
                        {"candidates": [{"index": cand["index"], "content": {"role": "model", "parts": [new]}}]}
                    )
        if model in ("unsafe-answer", "stream-exhausted"):
            events = events[:1]
        for cand in answer["candidates"]:
            last = {"index": cand["index"], "content": {"role": "model", "parts": []}, "finishReason": "STOP"}
            if model == "unsafe-answer":
                last = {"index": cand["index"], "finishReason": "SAFETY", "safetyRatings": SAFETY_RATINGS}
            events.append({"candidates": [last]})
        events[-1]["usageMetadata"] = answer["usageMetadata"]
        if model == "stream-exhausted":
            error = {
                "code": 429,
                "message": "Resource exhausted. Please try again later.",
                "status": "RESOURCE_EXHAUSTED",
            }
            events[1:] = [{"error": error}]
        for event in events:
            if "error" not in event:
                event.update(responseId=answer["responseId"], modelVersion=answer["modelVersion"])
                found = response_problems(event)
                assert not found, f"the fake's own event is not Gemini's: {found}"
            await resp.write(b"data: " + orjson.dumps(event) + b"\r\n\r\n")
        await resp.write_eof()
        return resp

    def _predict(self, body: JSON) -> web.Response:
        instances = body.get("instances")
        if not isinstance(instances, list) or not instances or set(body) - {"instances", "parameters"}:
            return _error(400, "instances must be a non-empty list")
        if not all(isinstance(i, dict) and isinstance(i.get("content"), str) for i in instances):
            return _error(400, "each instance needs a string content")
        dims = (body.get("parameters") or {}).get("outputDimensionality") or 4
        predictions = []
        for i, inst in enumerate(instances):
            values = [round(len(inst["content"]) / 100, 4), 0.5, -0.25, float(i)][:dims]
            stats = {"token_count": len(inst["content"].split()), "truncated": False}
            predictions.append({"embeddings": {"values": values, "statistics": stats}})
        return web.json_response({"predictions": predictions, "metadata": {"billableCharacterCount": 1}})


def _check_gemini(body: JSON, model: str) -> str | None:
    """What Gemini checks beyond its types: roles, one datum per part, answers to calls, signatures."""
    contents = body.get("contents")
    if not contents:
        return "contents is not specified"
    called: list[str] = []
    for i, c in enumerate(contents):
        if c.get("role") not in ("user", "model") or not c.get("parts"):
            return f"contents[{i}]: role must be user or model, with non-empty parts"
        for j, p in enumerate(c["parts"]):
            keys = set(p) - PART_EXTRAS
            if len(keys) != 1 or not keys <= PART_KEYS:
                return f"contents[{i}].parts[{j}]: a part holds exactly one of {sorted(PART_KEYS)}"
            if "functionResponse" in p and p["functionResponse"].get("name") not in called:
                return f"contents[{i}].parts[{j}]: function response does not match a function call turn"
            sig = p.get("thoughtSignature")
            if (
                sig is not None
                and sig != signature(*_part_key(p))
                and not (sig == SKIP_SIGNATURE and "functionCall" in p)
            ):
                return f"contents[{i}].parts[{j}]: Corrupted thought signature."
        called = [p["functionCall"]["name"] for p in c["parts"] if "functionCall" in p]
    if model.startswith("gemini-3"):
        # The current turn: everything after the last user turn that is not only function responses.
        start = max(
            (
                i
                for i, c in enumerate(contents)
                if c["role"] == "user" and not all("functionResponse" in p for p in c["parts"])
            ),
            default=0,
        )
        for c in contents[start:]:
            calls = [p for p in c["parts"] if "functionCall" in p]
            if c["role"] == "model" and calls and "thoughtSignature" not in calls[0]:
                return MISSING_SIGNATURE
    return None


def _answer(body: JSON, model: str) -> JSON:
    config = body.get("generationConfig") or {}
    last = body["contents"][-1]["parts"]
    declarations = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
    mode = ((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode", "AUTO")
    results = [p["functionResponse"]["response"] for p in last if "functionResponse" in p]
    user_text = "".join(p.get("text", "") for p in last)
    thinking = (config.get("thinkingConfig") or {}).get("includeThoughts")
    gemini3 = model.startswith("gemini-3")
    answer: list[JSON]
    if results:
        answer = [{"text": "tool said: " + "; ".join(str(r.get("content", r)) for r in results)}]
    elif declarations and mode != "NONE":
        chosen = declarations if "parallel" in user_text else declarations[:1]
        answer = [
            {"functionCall": {"name": d["name"], "args": sample_instance(d.get("parameters") or {})}} for d in chosen
        ]
        answer[0]["thoughtSignature"] = signature("call", chosen[0]["name"])  # Gemini signs the first call only
    elif config.get("responseSchema"):
        answer = [{"text": orjson.dumps(sample_instance(config["responseSchema"])).decode()}]
    else:
        answer = [{"text": f"echo: {user_text}"}]
    if gemini3 and "text" in answer[0]:
        answer[0]["thoughtSignature"] = signature("text")
    words_in = sum(len(p.get("text", "").split()) for c in body["contents"] for p in c["parts"])
    candidates: list[JSON] = []
    for i in range(int(config.get("candidateCount", 1))):
        thought: JSON = {"text": "Let me think.", "thought": True}
        if not gemini3:
            thought["thoughtSignature"] = signature("thought")
        parts = [thought] if thinking else []
        candidates.append(
            {"index": i, "content": {"role": "model", "parts": [*parts, *answer]}, "finishReason": "STOP"}
        )
    out_words = sum(len(p.get("text", "x y").split()) for p in answer)
    usage = {"promptTokenCount": words_in + 3, "candidatesTokenCount": out_words * len(candidates)}
    if thinking:
        usage["thoughtsTokenCount"] = 2 * len(candidates)
    usage["totalTokenCount"] = sum(usage.values())
    return {
        "candidates": candidates,
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": f"r-{time.time_ns()}",
    }


class FakeVertexThread(ThreadedFake):
    """Runs a :class:`FakeVertexUpstream` on its own event loop in a daemon thread."""

    def __init__(self, client_email: str, public_key_pem: bytes) -> None:
        super().__init__(FakeVertexUpstream(client_email, public_key_pem), "fake-vertex")
        self.server: FakeVertexUpstream

    @property
    def token_uri(self) -> str:
        return self.server.token_uri
