"""`modelgate sql`: run a script's statements on an ai_query connection, print results, show progress.

Statements run in a worker thread so the main thread stays free for the progress line and for Ctrl-C, which
cancels the requests in flight and interrupts DuckDB, leaving no half-run statement behind.
"""

from __future__ import annotations

import threading
from typing import Any, TextIO

from modelgate.sql.duckdb_binding import AiQueryConnection
from modelgate.sql.errors import AiQueryError
from modelgate.sql.progress import ProgressLine
from modelgate.sql.sqltext import find_calls, keyword, split_statements

INTERRUPTED = 130


def run_script(
    con: AiQueryConnection, sql: str, *, out: TextIO, err: TextIO, show_progress: bool, max_rows: int = 100
) -> int:
    """Run `sql`; 0 when every statement succeeded, 1 on an error (printed on `err`), 130 on Ctrl-C."""
    try:
        statements = split_statements(sql)
    except AiQueryError as exc:
        err.write(f"Error: {exc}\n")
        return 1
    if not statements:
        err.write("Error: no SQL statement to run\n")
        return 1
    line = ProgressLine(err).start() if show_progress else None
    try:
        for statement in statements:
            code = _run_statement(con, statement, out=out, err=err, line=line, max_rows=max_rows)
            if code:
                return code
        return 0
    finally:
        if line is not None:
            line.close()


def _run_statement(
    con: AiQueryConnection, statement: str, *, out: TextIO, err: TextIO, line: ProgressLine | None, max_rows: int
) -> int:
    calls = find_calls(statement, "ai_query")
    total = con.estimate_rows(statement) if (line is not None and calls) else None
    progress = con.reset_progress(total)
    outcome: dict[str, Any] = {}

    finished = threading.Event()  # waited on rather than Thread.join, which Ctrl-C can leave confused

    def work() -> None:
        try:
            result = con.execute(statement)
            outcome["columns"] = [d[0] for d in result.description] if result.description else None
            outcome["rows"] = result.fetchall() if outcome["columns"] is not None else []
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            finished.set()

    worker = threading.Thread(target=work, name="modelgate-sql", daemon=True)
    if line is not None and calls:
        line.track(progress)
    worker.start()
    try:
        while not finished.wait(0.1):
            pass
    except KeyboardInterrupt:
        con.interrupt()
        finished.wait(30)
        if line is not None:
            line.finish()
        err.write("Interrupted: stopped the query and the requests in flight.\n")
        return INTERRUPTED
    if line is not None:
        line.finish()
    if "error" in outcome:
        err.write(f"Error: {outcome['error']}\n")
        return 1
    if outcome.get("columns") is not None and keyword(statement) != "copy":  # COPY's row count is not a result
        out.write(format_table(outcome["columns"], outcome["rows"], max_rows))
    return 0


def format_table(columns: list[str], rows: list[tuple[Any, ...]], max_rows: int = 100) -> str:
    """A plain aligned text table; `max_rows` <= 0 prints every row."""
    shown = rows if max_rows <= 0 else rows[:max_rows]
    cells = [[_cell(v) for v in row] for row in shown]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    lines = [sep, "| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |", sep]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.append(sep)
    more = len(rows) - len(shown)
    lines.append(f"{len(rows)} row{'s' if len(rows) != 1 else ''}" + (f" ({more} not shown)" if more else ""))
    return "\n".join(lines) + "\n"


def _cell(value: Any, limit: int = 80) -> str:
    text = "NULL" if value is None else str(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"
