"""A JSON-schema check for the keywords the structured-output tests use (jsonschema is not a dependency).

Raises AssertionError naming the path of the first violation; unknown keywords fail loudly so a test cannot
pass by using a keyword this checker ignores.
"""

from __future__ import annotations

from typing import Any

_KNOWN = {"type", "properties", "required", "additionalProperties", "enum", "const", "minimum", "maximum",
          "maxLength", "minLength", "items", "maxItems", "minItems", "anyOf", "description", "title"}  # fmt: skip
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def check(value: Any, schema: dict[str, Any], path: str = "$") -> None:
    unknown = set(schema) - _KNOWN
    assert not unknown, f"schema_subset cannot check {sorted(unknown)}"
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                check(value, option, path)
                break
            except AssertionError as exc:
                errors.append(str(exc))
        else:
            raise AssertionError(f"{path}: matches no anyOf option: {errors}")
    kind = schema.get("type")
    if kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), f"{path}: {value!r} is not an integer"
    elif kind == "number":
        assert isinstance(value, int | float) and not isinstance(value, bool), f"{path}: {value!r} is not a number"
    elif kind is not None:
        assert isinstance(value, _TYPES[kind]), f"{path}: {value!r} is not of type {kind}"
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} not in {schema['enum']}"
    if "const" in schema:
        assert value == schema["const"], f"{path}: {value!r} != {schema['const']!r}"
    if "minimum" in schema:
        assert value >= schema["minimum"], f"{path}: {value} < {schema['minimum']}"
    if "maximum" in schema:
        assert value <= schema["maximum"], f"{path}: {value} > {schema['maximum']}"
    if "maxLength" in schema:
        assert len(value) <= schema["maxLength"], f"{path}: {value!r} longer than {schema['maxLength']}"
    if "minLength" in schema:
        assert len(value) >= schema["minLength"], f"{path}: {value!r} shorter than {schema['minLength']}"
    if isinstance(value, list):
        assert len(value) <= schema.get("maxItems", len(value)), f"{path}: more than {schema['maxItems']} items"
        assert len(value) >= schema.get("minItems", 0), f"{path}: fewer than {schema.get('minItems')} items"
        for i, item in enumerate(value):
            check(item, schema.get("items", {}), f"{path}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        missing = set(schema.get("required", [])) - set(value)
        assert not missing, f"{path}: missing required {sorted(missing)}"
        extra = set(value) - set(props)
        if props or schema.get("additionalProperties") is False:  # the server follows schemas strictly
            assert schema.get("additionalProperties") not in (None, False) or not extra, (
                f"{path}: unexpected properties {sorted(extra)}"
            )
        for key, sub in props.items():
            if key in value:
                check(value[key], sub, f"{path}.{key}")
