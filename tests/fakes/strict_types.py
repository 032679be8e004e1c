"""Check a JSON value against a provider SDK's own published types, rejecting what the provider would.

The SDKs describe their request bodies as TypedDicts (openai, anthropic) or pydantic models (google-genai,
cohere, ai21), but none of them checks a dict the way the provider's server does: pydantic validates
`Iterable[...]` lazily (so nothing inside `messages` is looked at), TypedDicts ignore unknown keys, and the
SDKs' models accept both snake_case names and camelCase aliases. `problems(tp, value)` walks the type itself:
every key must be one the type declares (under its wire name: the alias where the model has one), required
keys must be there, literals must match, and lists, unions and nested types are checked all the way down.
It answers the problems as `path: what is wrong` lines, the first few only.
"""

from __future__ import annotations

import collections.abc
import functools
import types
import typing
from typing import Any

import pydantic
from typing_extensions import is_typeddict

_WRAPPERS = {typing.Required, typing.NotRequired, typing.ReadOnly} if hasattr(typing, "ReadOnly") else set()
_WRAPPERS |= {typing.Required, typing.NotRequired}
_LISTS = {list, collections.abc.Iterable, collections.abc.Sequence, typing.Iterable, typing.Sequence, tuple}
_MAPS = {dict, collections.abc.Mapping, typing.Mapping}
_SCALARS: dict[type, tuple[type, ...]] = {str: (str,), int: (int,), float: (int, float), bool: (bool,)}


def problems(tp: Any, value: Any, path: str = "body", limit: int = 3) -> list[str]:
    """What is wrong with `value` as a `tp`; empty when the provider's types accept it."""
    return _check(tp, value, path)[:limit]


def readable_problems(tp: Any, value: Any, path: str = "answer") -> list[str]:
    """What keeps an SDK whose models allow extra keys (cohere, ai21) from reading `value` as a `tp`: an
    answer may carry keys the SDK does not model (it reads past them), but what it models must fit."""
    return [p for p in _check(tp, value, path) if not p.endswith(": unknown field")][:3]


@functools.cache
def _fields(tp: Any) -> tuple[dict[str, Any], frozenset[str]]:
    """A TypedDict's or pydantic model's wire keys → their types, and the keys that are required."""
    if is_typeddict(tp):
        hints = typing.get_type_hints(tp, include_extras=True)
        return hints, frozenset(tp.__required_keys__)
    fields: dict[str, Any] = {}
    required: set[str] = set()
    for name, info in tp.model_fields.items():
        # pydantic's alias, or the wire name Fern-generated SDKs (cohere) keep in their own field metadata
        key = info.alias or next((m.alias for m in info.metadata if isinstance(getattr(m, "alias", None), str)), name)
        fields[key] = info.annotation
        if info.is_required():
            required.add(key)
    return fields, frozenset(required)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


def _check(tp: Any, value: Any, path: str) -> list[str]:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _check(args[0], value, path)
    if origin in _WRAPPERS:
        return _check(args[0], value, path)
    if tp is Any or tp is object:
        return []
    if tp is None or tp is type(None):
        return [] if value is None else [f"{path}: expected null"]
    if isinstance(tp, typing.TypeAliasType if hasattr(typing, "TypeAliasType") else ()):
        return _check(tp.__value__, value, path)
    if origin in (typing.Union, types.UnionType):
        return _union(args, value, path)
    if origin is typing.Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {list(args)}"]
    if origin in _LISTS or tp in _LISTS:
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        item = args[0] if args else Any
        return [p for i, v in enumerate(value) for p in _check(item, v, f"{path}[{i}]")]
    if origin in _MAPS or tp in _MAPS:
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        item = args[1] if len(args) == 2 else Any
        return [p for k, v in value.items() for p in _check(item, v, f"{path}.{k}")]
    if is_typeddict(tp) or _is_model(tp):
        return _object(tp, value, path)
    if tp in _SCALARS:
        ok = isinstance(value, _SCALARS[tp]) and (tp is bool or not isinstance(value, bool))
        return [] if ok else [f"{path}: expected {tp.__name__}, got {type(value).__name__}"]
    if tp is bytes:  # base64 in JSON
        return [] if isinstance(value, str) else [f"{path}: expected a base64 string"]
    if isinstance(tp, type) and issubclass(tp, str):  # str enums; Google's servers take "object" for OBJECT
        allowed = [str(m.value) for m in tp] if hasattr(tp, "__members__") else None
        if not isinstance(value, str) or (allowed is not None and value.upper() not in map(str.upper, allowed)):
            return [f"{path}: {value!r} is not one of {allowed}"]
        return []
    return []  # a type this checker does not model (datetime, PIL images, ...): the SDK's own concern


def _object(tp: Any, value: Any, path: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: expected an object"]
    fields, required = _fields(tp)
    found = [f"{path}.{k}: unknown field" for k in value if k not in fields]
    found += [f"{path}.{k}: required" for k in sorted(required) if k not in value]
    for key, v in value.items():
        if key in fields:
            found += _check(fields[key], v, f"{path}.{key}")
    return found


def _union(args: tuple[Any, ...], value: Any, path: str) -> list[str]:
    best: list[str] | None = None
    if value is not None:
        args = tuple(a for a in args if a is not None and a is not type(None)) or args
    for member in args:
        found = _check(member, value, path)
        if not found:
            return []
        if _discriminated(member, value):
            return found  # the member the value says it is (its literal `type`/`role`)
        if best is None or _rank(found, path) < _rank(best, path):
            best = found
    return best or [f"{path}: matches none of the allowed types"]


def _rank(found: list[str], path: str) -> tuple[bool, int]:
    """Members the value got inside (a problem deeper than `path`) explain it better than a wrong shape."""
    return all(p.startswith(f"{path}: ") for p in found), len(found)


def _discriminated(member: Any, value: Any) -> bool:
    if not isinstance(value, dict) or not (is_typeddict(member) or _is_model(member)):
        return False
    fields, _ = _fields(member)
    for key in ("type", "role"):
        tp = fields.get(key)
        while typing.get_origin(tp) in (typing.Annotated, *_WRAPPERS):
            tp = typing.get_args(tp)[0]
        if typing.get_origin(tp) is typing.Literal and key in value:
            return value[key] in typing.get_args(tp)
    return False
