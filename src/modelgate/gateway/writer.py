"""One writer for gateway rows: a bounded queue drained by a thread that inserts in batches.

The request path only does `queue.put_nowait` (microseconds). When the queue is full the row is dropped
and counted (`dropped`, exported as a metric), never silently and never by blocking a request. `close()`
drains everything still queued, so a graceful shutdown loses nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import JSON, Boolean, Date, DateTime, MetaData, Table

from modelgate.gateway.tables import USAGE_TABLE, payload_table, usage_table
from modelgate.store.db import Database

log = logging.getLogger(__name__)

Row = Any  # a dict, or an object whose materialize() returns one (rendered here, off the request path)


class GatewayWriter:
    def __init__(
        self, db: Database, *, max_queue: int = 200_000, batch_size: int = 2000, flush_interval_s: float = 0.25
    ) -> None:
        self.db = db
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._metadata = MetaData()
        self._tables: dict[str, Table] = {USAGE_TABLE: usage_table(self._metadata)}
        self._created: set[str] = set()
        self._plans: dict[str, _InsertPlan] = {}
        self.dropped = 0
        self.written = 0
        self.failed = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway-writer", daemon=True)
        self._started = False

    def start(self) -> None:
        self._thread.start()
        self._started = True

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def submit(self, table: str, row: Row) -> None:
        try:
            self._queue.put_nowait((table, row))
        except queue.Full:
            self.dropped += 1

    def close(self, timeout_s: float = 30.0) -> None:
        """Write everything queued, then stop the thread."""
        if not self._started:
            return
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout_s)

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until everything submitted so far is written (for tests and the shutdown path)."""
        self._wake.set()
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    # -- the thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        """Sleep, then take everything queued and write it in batches.

        The thread does not wait on the queue itself: then every submit would wake it and, at low rates,
        each row would be its own transaction, paid for on the request path's core.
        """
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            stopping = self._stopping.is_set()
            while True:
                batch: list[tuple[str, Row]] = []
                while len(batch) < self.batch_size:
                    try:
                        batch.append(self._queue.get_nowait())  # type: ignore[arg-type]
                    except queue.Empty:
                        break
                if not batch:
                    break
                try:
                    self._write(batch)
                finally:
                    for _ in batch:
                        self._queue.task_done()
            if stopping:
                return

    def _table(self, name: str) -> Table:
        table = self._tables.get(name)
        if table is None:
            table = payload_table(self._metadata, name)
            self._tables[name] = table
        if name not in self._created:
            table.create(self.db.engine, checkfirst=True)
            self._created.add(name)
        return table

    def _plan(self, name: str) -> _InsertPlan:
        plan = self._plans.get(name)
        if plan is None:
            plan = self._plans[name] = _InsertPlan(self._table(name), self.db.engine.dialect)
        return plan

    def _write(self, batch: list[tuple[str, Row]]) -> None:
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for table, row in batch:
            try:
                grouped[table].append(row.materialize() if hasattr(row, "materialize") else row)
            except Exception as exc:  # a payload that cannot be rendered must not sink the batch
                self.failed += 1
                log.error("could not render a row for %s: %s", table, type(exc).__name__)
        for name, rows in grouped.items():
            for attempt in range(3):
                try:
                    plan = self._plan(name)
                    with self.db.engine.begin() as conn:
                        conn.exec_driver_sql(plan.sql, [plan.params(row) for row in rows])
                    self.written += len(rows)
                    break
                except Exception as exc:  # the database may be briefly unavailable; retry, then count
                    if attempt == 2:
                        self.failed += len(rows)
                        log.error("could not write %d rows to %s: %s", len(rows), name, type(exc).__name__)
                    else:
                        time.sleep(0.2 * (attempt + 1))


def _sqlite_time(value: dt.datetime | None) -> str | None:
    """SQLAlchemy's SQLite DateTime text form (naive UTC), so its readers parse what we write."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


class _InsertPlan:
    """One INSERT for a table, run through the DB driver's own executemany.

    SQLAlchemy's per-row parameter processing cost more than SQLite's insert itself; the few conversions the
    columns need (JSON text, SQLite's datetime text, booleans) are done here instead.
    """

    def __init__(self, table: Table, dialect: Any) -> None:
        quote = dialect.identifier_preparer.quote_identifier
        sqlite = dialect.name == "sqlite"
        columns = [c for c in table.columns if not (c.primary_key and c.autoincrement)]
        self.names = [c.name for c in columns]
        self.converters: list[Callable[[Any], Any] | None] = []
        marks = []
        for c in columns:
            if isinstance(c.type, JSON):
                self.converters.append(_json_text)
                marks.append("?" if sqlite else "%s::json")
                continue
            if sqlite and isinstance(c.type, DateTime):
                self.converters.append(_sqlite_time)
            elif sqlite and isinstance(c.type, Date):
                self.converters.append(lambda v: None if v is None else v.isoformat())
            elif sqlite and isinstance(c.type, Boolean):
                self.converters.append(lambda v: None if v is None else int(v))
            else:
                self.converters.append(None)
            marks.append("?" if sqlite else "%s")
        self.sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in self.names)}) VALUES ({', '.join(marks)})"
        )

    def params(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            conv(row.get(name)) if conv is not None else row.get(name)
            for name, conv in zip(self.names, self.converters, strict=True)
        )
