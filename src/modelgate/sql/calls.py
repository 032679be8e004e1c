"""One ai_query call site, resolved: what each row's request body looks like and how its answer becomes a value.

Engine-neutral and free of I/O, so the DuckDB and Spark bindings share it. Everything that can be wrong
with the call itself (task, returnType, responseFormat, modelParameters) is checked in `build_spec`, before
the first row is sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from modelgate.sql import ddl
from modelgate.sql.errors import AiQueryError, EndpointCallError
from modelgate.sql.sqltext import Call, bool_literal, string_literal

Json = dict[str, Any]

CHAT, COMPLETIONS, EMBEDDINGS = "llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings"
_REQUEST_FIELD = {CHAT: "messages", COMPLETIONS: "prompt", EMBEDDINGS: "input"}
_RESERVED = {"messages", "prompt", "input", "stream", "model", "n"}
_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*?)\n?\s*```\s*$", re.DOTALL)


@dataclass(frozen=True)
class CallSpec:
    endpoint: str
    task: str
    return_type: ddl.SqlType
    fail_on_error: bool
    params_json: str = "{}"  # modelParameters, merged into every request (JSON text keeps the spec hashable)
    response_format_json: str = ""  # the response_format sent with chat requests, if any

    @property
    def result_type(self) -> ddl.SqlType:
        """The SQL type of the call: the returnType, or STRUCT<result, errorMessage> with failOnError => false."""
        if self.fail_on_error:
            return self.return_type
        return ddl.StructType((("result", self.return_type), ("errorMessage", ddl.STRING)))

    def body(self, request: str) -> bytes:
        """The invocation body for one row's request."""
        payload: Json = orjson.loads(self.params_json)
        if self.task == CHAT:
            payload["messages"] = [{"role": "user", "content": request}]
            if self.response_format_json:
                payload["response_format"] = orjson.loads(self.response_format_json)
        else:
            payload[_REQUEST_FIELD[self.task]] = request
        return orjson.dumps(payload)

    def value(self, answer: Any) -> Any:
        """The row's value (Arrow-ready) from the endpoint's JSON answer; EndpointCallError if it does not fit."""
        raw = _extract(self.task, answer)
        rt = self.return_type
        if rt == ddl.STRING:
            return raw if isinstance(raw, str) else orjson.dumps(raw).decode()
        if isinstance(raw, str):
            text = _unfence(raw)
            try:
                raw = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise EndpointCallError(
                    f"the answer is not JSON, so it cannot be read as returnType {ddl.ddl(rt)}: {raw[:120]!r}"
                ) from None
        try:
            return ddl.coerce(raw, rt)
        except ddl.DoesNotFit as exc:
            raise EndpointCallError(f"the answer does not fit returnType {ddl.ddl(rt)}: {exc}") from None

    def error_value(self, message: str) -> Json:
        return {"result": None, "errorMessage": message}


def _extract(task: str, answer: Any) -> Any:
    try:
        if task == EMBEDDINGS:
            return answer["data"][0]["embedding"]
        choice = answer["choices"][0]
        if task == COMPLETIONS:
            return str(choice["text"])
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise EndpointCallError(f"unexpected {task} answer: {orjson.dumps(answer)[:200].decode()}") from None
    if isinstance(content, list):  # content blocks (reasoning models): keep the text blocks
        content = "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    if not isinstance(content, str):
        raise EndpointCallError("the answer has no text content (a tool call?)")
    return content


def _unfence(text: str) -> str:
    """Models often wrap JSON in a ```json fence; read what is inside."""
    m = _FENCE.match(text)
    return m.group(1) if m else text


def build_spec(
    endpoint: str,
    task: str | None,
    *,
    return_type: str | None = None,
    fail_on_error: bool = True,
    model_parameters: Json | None = None,
    response_format: str | None = None,
) -> CallSpec:
    """Check one call's options against the endpoint's task and settle its types and request shape."""
    if task not in _REQUEST_FIELD:
        raise AiQueryError(
            f"ai_query: endpoint '{endpoint}' serves {task or 'an unknown task'}; "
            "ai_query supports chat, completions and embeddings endpoints"
        )
    rt = ddl.parse_type(return_type) if return_type is not None else None
    if rt is None:
        rt = ddl.ARRAY_FLOAT if task == EMBEDDINGS else ddl.STRING
    params = dict(model_parameters or {})
    reserved = sorted(_RESERVED & set(params))
    if reserved:
        raise AiQueryError(f"ai_query: modelParameters cannot set {', '.join(reserved)} (ai_query sets it per row)")
    fmt: Json | None = None
    if response_format is not None:
        if task != CHAT:
            raise AiQueryError(f"ai_query: responseFormat needs a chat endpoint; '{endpoint}' serves {task}")
        fmt = parse_response_format(response_format)
    elif task == CHAT and isinstance(rt, ddl.StructType):
        # A STRUCT returnType asks for JSON; ask the model for exactly that shape.
        fmt = _json_schema_format("ai_query_result", rt)
    return CallSpec(
        endpoint=endpoint,
        task=task,
        return_type=rt,
        fail_on_error=fail_on_error,
        params_json=orjson.dumps(params).decode(),
        response_format_json=orjson.dumps(fmt).decode() if fmt is not None else "",
    )


def parse_response_format(text: str) -> Json:
    """`responseFormat` as OpenAI `response_format`: JSON (`{"type": "json_schema", ...}`) or a DDL
    `STRUCT<name: STRUCT<...>>` whose one field names the schema."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            fmt = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise AiQueryError(f"ai_query: responseFormat is not valid JSON: {exc}") from None
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            raise AiQueryError("ai_query: responseFormat JSON needs type 'text', 'json_object' or 'json_schema'")
        if kind == "json_schema" and not isinstance(fmt.get("json_schema"), dict):
            raise AiQueryError("ai_query: a json_schema responseFormat needs a 'json_schema' object")
        result: Json = fmt
        return result
    outer = ddl.parse_type(stripped)
    if not isinstance(outer, ddl.StructType) or len(outer.fields) != 1:
        raise AiQueryError(
            "ai_query: a DDL responseFormat must be a STRUCT with exactly one field, "
            "e.g. 'STRUCT<answer: STRUCT<label: STRING, score: DOUBLE>>'"
        )
    name, inner = outer.fields[0]
    if not isinstance(inner, ddl.StructType):
        raise AiQueryError(f"ai_query: responseFormat field '{name}' must itself be a STRUCT<...>")
    return _json_schema_format(name, inner)


def _json_schema_format(name: str, t: ddl.StructType) -> Json:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": ddl.json_schema(t), "strict": True}}


POSITIONAL = ("endpoint", "request", "returnType", "failOnError")
NAMED = {n.lower(): n for n in (*POSITIONAL, "modelParameters", "responseFormat", "files")}


def bind_arguments(call: Call) -> dict[str, str]:
    """Positional and named arguments by their Databricks names."""
    bound: dict[str, str] = {}
    for i, arg in enumerate(call.args):
        if arg.name is None:
            if any(a.name for a in call.args[:i]):
                raise AiQueryError("ai_query: positional arguments must come before named ones")
            if i >= len(POSITIONAL):
                raise AiQueryError(
                    "ai_query takes at most 4 positional arguments (endpoint, request, returnType, failOnError)"
                )
            name = POSITIONAL[i]
        else:
            known = NAMED.get(arg.name.lower())
            if known is None:
                raise AiQueryError(f"ai_query: unknown argument '{arg.name}' (known: {', '.join(NAMED.values())})")
            name = known
        if name in bound:
            raise AiQueryError(f"ai_query: argument '{name}' is given twice")
        bound[name] = arg.text
    missing = [n for n in ("endpoint", "request") if n not in bound]
    if missing:
        raise AiQueryError(f"ai_query: missing argument {' and '.join(missing)}")
    return bound


def optional_argument(text: str | None, parse: Callable[[str], Any], default: Any = None) -> Any:
    if text is None or text.strip().lower() == "null":
        return default
    return parse(text)


def spec_for_call(
    call: Call, task_of: Callable[[str], str | None], constant_struct: Callable[[str], dict[str, Any]]
) -> tuple[dict[str, str], CallSpec]:
    """An ai_query call site's arguments (by Databricks name) and its resolved spec; the same for every engine.

    `task_of` looks the endpoint up; `constant_struct` evaluates modelParameters in the engine's own SQL.
    """
    args = bind_arguments(call)
    endpoint = string_literal(args["endpoint"], "endpoint")
    if "files" in args:
        raise AiQueryError("ai_query: files => is not supported by modelgate yet")
    spec = build_spec(
        endpoint,
        task_of(endpoint),
        return_type=optional_argument(args.get("returnType"), lambda t: string_literal(t, "returnType")),
        fail_on_error=optional_argument(args.get("failOnError"), lambda t: bool_literal(t, "failOnError"), True),
        model_parameters=optional_argument(args.get("modelParameters"), constant_struct),
        response_format=optional_argument(args.get("responseFormat"), lambda t: string_literal(t, "responseFormat")),
    )
    return args, spec
