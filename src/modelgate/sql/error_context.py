"""Point a DuckDB error at the SQL the user typed, not at the statement ai_query's rewrite sent.

DuckDB ends a parser or binder error with the offending line and a caret (`LINE 1: SELEC (CASE WHEN ...` /
`        ^^^^^`). The statement it saw has each ai_query call replaced by a long typed-UDF expression, so that
context would quote text the user never wrote. `requote` finds the caret's offset in the rewritten statement,
maps it back through the rewrite's spans, and draws the same context from the original.
"""

from __future__ import annotations

import re

from modelgate.sql.sqltext import Span

_CONTEXT = re.compile(r"\n\nLINE (\d+): (.*)\n( *)(\^+)\s*$")
_WINDOW = 96  # characters of a long line shown around the caret, as DuckDB does
_NAME = "ai_query"


def requote(message: str, original: str, rewritten: str, spans: list[Span]) -> str:
    """`message` with its trailing LINE/caret context redrawn from `original` (unchanged when it has none)."""
    m = _CONTEXT.search(message)
    if m is None or not spans:
        return message
    offset = _rewritten_offset(rewritten, int(m[1]), m[2], len(m[3]) - len(f"LINE {m[1]}: "))
    if offset is None:
        return message
    start, width = _map_back(offset, len(m[4]), rewritten, original, spans)
    return message[: m.start()] + "\n\n" + context(original, start, width)


def context(sql: str, offset: int, width: int) -> str:
    """DuckDB's `LINE n: text` and caret under `width` characters at `offset`."""
    line_no = sql.count("\n", 0, offset) + 1
    line_start = sql.rfind("\n", 0, offset) + 1
    line_end = sql.find("\n", offset)
    line = sql[line_start : len(sql) if line_end < 0 else line_end]
    col = offset - line_start
    first = max(0, col - _WINDOW // 2) if len(line) > _WINDOW else 0
    shown = ("..." if first else "") + line[first : first + _WINDOW] + ("..." if first + _WINDOW < len(line) else "")
    prefix = f"LINE {line_no}: " + ("..." if first else "")
    return f"LINE {line_no}: {shown}\n{' ' * (len(prefix) + col - first)}{'^' * max(1, min(width, len(line) - col))}"


def _rewritten_offset(rewritten: str, line_no: int, shown: str, col: int) -> int | None:
    lines = rewritten.split("\n")
    if not 1 <= line_no <= len(lines):
        return None
    line = lines[line_no - 1]
    lead = 3 if shown.startswith("...") else 0
    core = shown[lead:]
    for candidate in (core, core.removesuffix("...")):
        at = line.find(candidate)
        if candidate and at >= 0:
            return sum(len(x) + 1 for x in lines[: line_no - 1]) + at + col - lead
    return None


def _map_back(offset: int, width: int, rewritten: str, original: str, spans: list[Span]) -> tuple[int, int]:
    shift = 0
    for span in spans:
        if offset < span.new_start:
            break
        if offset < span.new_end:  # inside a rewritten call: find the token in what the user wrote there
            token = rewritten[offset : offset + width]
            call = original[span.start : span.end]
            at = call.find(token, len(_NAME)) if token.strip() else -1
            return (span.start + at, width) if at >= 0 else (span.start, len(_NAME))
        shift += (span.new_end - span.new_start) - (span.end - span.start)
    return offset - shift, width
