"""Guaranteed structured output: request → Constraint, and Constraint → a compiled xgrammar grammar.

xgrammar is an optional extra (`local`) and is imported only when a request asks for a constraint. Whitespace
is compact (`any_whitespace=False`): with flexible whitespace a weak model can fill max_tokens with blanks and
never close the JSON. Per model, one TokenizerInfo and GrammarCompiler; compiled grammars stay in a small LRU.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from typing import Any

from modelgate.engines.engine import Constraint
from modelgate.engines.token_bytes import TokenByteRules
from modelgate.errors import BadRequest, InvalidParameterValue
from modelgate.protocol.chat import ChatRequest, NamedToolChoice

GRAMMAR_CACHE_SIZE = 64
_ANY_OBJECT = {"type": "object"}
_WHAT = {
    "json_schema": "response_format's schema",
    "json_object": "response_format",
    "tool_call": "a tool's parameters",
    "answer_or_tool_call": "response_format's schema or a tool's parameters",
}
_XGRAMMAR_LOCATION = re.compile(r"^\[[\d:]+\] \S+:\d+: (Check failed: \(.*?\) is false: )?")


def response_constraint(request: ChatRequest) -> Constraint | None:
    """The constraint `response_format` asks for; 400 for a malformed or (with strict) non-strict schema."""
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return Constraint("json_object")
    assert fmt.json_schema is not None  # the wire model requires it for json_schema
    schema = fmt.json_schema.schema_
    if schema is None:
        raise InvalidParameterValue(
            "response_format.json_schema needs 'schema', the JSON schema the answer must follow."
        )
    if fmt.json_schema.strict:
        check_strict(schema, "response_format.json_schema.schema")
    return Constraint("json_schema", canonical(schema))


def tool_constraint(request: ChatRequest) -> Constraint | None:
    """With tool_choice "required" or a named function, the answer must be a call of one of those tools."""
    choice = request.tool_choice
    tools = request.tools or []
    if isinstance(choice, NamedToolChoice):
        tools = [t for t in tools if t.function.name == choice.function.name]
    elif choice != "required":
        return None
    _check_strict_tools(request)
    spec = [{"name": t.function.name, "parameters": t.function.parameters} for t in tools]
    return Constraint("tool_call", canonical(spec))


def _check_strict_tools(request: ChatRequest) -> None:
    for i, tool in enumerate(request.tools or []):
        if tool.function.strict:
            check_strict(tool.function.parameters, f"tools[{i}].function.parameters")


def request_constraint(request: ChatRequest, offered_tools: bool) -> Constraint | None:
    """What the answer must be: a forced tool call, else the response_format (or, when tools are offered with
    tool_choice auto, that format or a tool call)."""
    forced = tool_constraint(request) if offered_tools else None
    answer = forced or response_constraint(request)
    if forced is not None or answer is None or not offered_tools:
        return answer
    _check_strict_tools(request)
    schema = json.loads(answer.spec) if answer.kind == "json_schema" else _ANY_OBJECT
    tools = [{"name": t.function.name, "parameters": t.function.parameters} for t in request.tools or []]
    return Constraint("answer_or_tool_call", canonical({"answer": schema, "tools": tools}))


def canonical(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def check_strict(schema: Any, where: str) -> None:
    """OpenAI's strict-mode rules: every object lists all its properties in `required` and sets
    `additionalProperties: false`; the root is an object."""
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise InvalidParameterValue(f'{where}: with strict, the schema\'s root must be {{"type": "object"}}.')
    _check_strict_node(schema, where)


def _check_strict_node(node: Any, where: str) -> None:
    if isinstance(node, list):
        for i, item in enumerate(node):
            _check_strict_node(item, f"{where}[{i}]")
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "object" or "properties" in node:
        props = node.get("properties") or {}
        if node.get("additionalProperties") is not False:
            raise InvalidParameterValue(f'{where}: with strict, every object needs "additionalProperties": false.')
        missing = sorted(set(props) - set(node.get("required") or []))
        if missing:
            raise InvalidParameterValue(
                f"{where}: with strict, every property must be required; missing: {', '.join(missing)}."
            )
    for key in ("properties", "$defs", "definitions"):
        for name, sub in (node.get(key) or {}).items():
            _check_strict_node(sub, f"{where}.{key}.{name}")
    for key in ("items", "anyOf", "oneOf", "allOf", "prefixItems"):
        if key in node:
            _check_strict_node(node[key], f"{where}.{key}")


class GrammarCache:
    """One model's xgrammar TokenizerInfo and compiler (built on first use) and its compiled grammars."""

    def __init__(self, tokenizer: Any, vocab_size: int, stop_ids: list[int], tool_tags: tuple[str, str]) -> None:
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.stop_ids = stop_ids
        self.tool_tags = tool_tags
        self._compiler: Any = None
        self.byte_rules: TokenByteRules | None = None  # what xgrammar leaves open (token_bytes.py)
        self._compiled: OrderedDict[Constraint, Any] = OrderedDict()
        self._lock = threading.Lock()

    def compiled(self, constraint: Constraint) -> Any:
        """The xgrammar CompiledGrammar of `constraint`; BadRequest when it cannot be compiled."""
        with self._lock:
            hit = self._compiled.get(constraint)
            if hit is not None:
                self._compiled.move_to_end(constraint)
                return hit
            grammar = self._compile(constraint)
            self._compiled[constraint] = grammar
            while len(self._compiled) > GRAMMAR_CACHE_SIZE:
                self._compiled.popitem(last=False)
            return grammar

    def _compile(self, constraint: Constraint) -> Any:
        xgr = _xgrammar()
        if self._compiler is None:
            info = xgr.TokenizerInfo.from_huggingface(
                self.tokenizer, vocab_size=self.vocab_size, stop_token_ids=self.stop_ids or None
            )
            self._compiler = xgr.GrammarCompiler(info)
            self.byte_rules = TokenByteRules(list(info.decoded_vocab))
        builders = {
            "json_schema": lambda spec: xgr.Grammar.from_json_schema(spec, any_whitespace=False),
            "json_object": lambda spec: xgr.Grammar.from_json_schema(json.dumps(_ANY_OBJECT), any_whitespace=False),
            "tool_call": lambda spec: self._tool_call_grammar(xgr, json.loads(spec)),
            "answer_or_tool_call": lambda spec: self._answer_or_tool_call(xgr, json.loads(spec)),
        }
        try:
            return self._compiler.compile_grammar(builders[constraint.kind](constraint.spec))
        except RuntimeError as exc:
            what = _WHAT[constraint.kind]
            raise InvalidParameterValue(f"{what} is not a JSON schema this server can follow: {_clean(exc)}") from None

    def _answer_or_tool_call(self, xgr: Any, spec: dict[str, Any]) -> Any:
        answer = xgr.Grammar.from_json_schema(json.dumps(spec["answer"]), any_whitespace=False)
        return xgr.Grammar.union(answer, self._tool_call_grammar(xgr, spec["tools"]))

    def _tool_call_grammar(self, xgr: Any, tools: list[dict[str, Any]]) -> Any:
        """`<open>\\n{"name": ..., "arguments": {...}}\\n<close>`, the arguments following the named tool's schema."""
        calls = [
            {
                "type": "object",
                "properties": {"name": {"const": t["name"]}, "arguments": t["parameters"] or {"type": "object"}},
                "required": ["name", "arguments"],
            }
            for t in tools
        ]
        schema = calls[0] if len(calls) == 1 else {"anyOf": calls}
        open_tag, close_tag = self.tool_tags
        return xgr.Grammar.concat(
            xgr.Grammar.from_ebnf(f"root ::= {json.dumps(open_tag + chr(10))}"),
            xgr.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False),
            xgr.Grammar.from_ebnf(f"root ::= {json.dumps(chr(10) + close_tag)}"),
        )


def _clean(exc: BaseException) -> str:
    """xgrammar's message without its timestamp and C++ source location."""
    lines = str(exc).strip().splitlines()
    return _XGRAMMAR_LOCATION.sub("", lines[0]).strip() if lines else type(exc).__name__


def _xgrammar() -> Any:
    try:
        import xgrammar
    except ImportError:
        raise BadRequest(
            "Structured output on local models needs the xgrammar package on the server "
            "(pip install --no-deps xgrammar apache-tvm-ffi); ask the server's administrator."
        ) from None
    return xgrammar
