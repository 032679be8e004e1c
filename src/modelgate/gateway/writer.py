"""One writer for gateway rows: a bounded buffer drained by a thread that inserts in batches.

The request path only appends one item to a deque (well under a microsecond, no lock to take); the
thread turns each item into its rows (`add_rows()`) and inserts them. When the buffer is full the item is
dropped and counted (`dropped`, exported as a metric), never silently and never by blocking a request.
`close()` drains everything still buffered, so a graceful shutdown loses nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from typing import Any, Protocol

from sqlalchemy import JSON, Connection, MetaData, Table

from modelgate.gateway.sqlvalues import SqlValues, values_for
from modelgate.gateway.tables import USAGE_TABLE, RowShape, payload_table, usage_table
from modelgate.scheduling import yield_to_request_thread
from modelgate.store.db import Database

log = logging.getLogger(__name__)


class RowSource(Protocol):
    """What the request path hands over: turned into rows by the writer thread, off the request path."""

    def add_rows(self, values: SqlValues, rows: dict[RowShape, list[Any]]) -> None:
        """Append each of its rows to `rows[shape]`, flat: the shape's column values in order, each as the
        driver takes it (sqlvalues.py). `rows` makes a list for a shape it has not seen."""
        ...


class GatewayWriter:
    def __init__(
        self, db: Database, *, max_pending: int = 100_000, batch_size: int = 2000, flush_interval_s: float = 0.25
    ) -> None:
        self.db = db
        self.max_pending = max_pending
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._pending: deque[RowSource] = deque()
        self._metadata = MetaData()
        self._tables: dict[str, Table] = {USAGE_TABLE: usage_table(self._metadata)}
        self._created: set[str] = set()
        self._plans: dict[tuple[str, tuple[str, ...]], _InsertPlan] = {}
        self._values = values_for(db.engine.dialect.name)
        self.submitted = 0
        self.done = 0  # items taken and written (or counted as failed)
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
        return len(self._pending)

    def submit(self, item: RowSource) -> None:
        # deque.append is atomic; the length check may let a few items past the bound under a race, no more.
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            return
        self.submitted += 1
        self._pending.append(item)

    def close(self, timeout_s: float = 30.0) -> None:
        """Write everything buffered, then stop the thread."""
        if not self._started:
            return
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout_s)

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until everything submitted so far is written (for tests and the shutdown path)."""
        target = self.submitted
        self._wake.set()
        deadline = time.monotonic() + timeout_s
        while self.done < target and time.monotonic() < deadline:
            time.sleep(0.01)

    # -- the thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        """Sleep, then take everything buffered and write it in batches.

        The thread does not wait on each item: then every submit would wake it and, at low rates, each row
        would be its own transaction, paid for on the request path's core.
        """
        yield_to_request_thread()  # accounting must never take the core from a request (modelgate.scheduling)
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            stopping = self._stopping.is_set()
            while self._pending:
                batch: list[RowSource] = []
                popleft = self._pending.popleft
                try:
                    while len(batch) < self.batch_size:
                        batch.append(popleft())
                except IndexError:
                    pass
                try:
                    self._write(batch)
                finally:
                    self.done += len(batch)
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

    def _plan(self, shape: RowShape) -> _InsertPlan:
        key = (shape.table, shape.columns)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _InsertPlan(self._table(shape.table), shape.columns, self.db.engine.dialect)
        return plan

    def _write(self, batch: list[RowSource]) -> None:
        """Insert the batch's rows, a statement per shape (so rows of one batch land grouped by shape)."""
        grouped: defaultdict[RowShape, list[Any]] = defaultdict(list)
        for item in batch:
            try:
                item.add_rows(self._values, grouped)
            except Exception as exc:  # a payload that cannot be rendered must not sink the batch
                self.failed += 1
                log.error("could not render a gateway row: %s", type(exc).__name__)
        for shape, flat in grouped.items():
            count = len(flat) // len(shape.columns)
            for attempt in range(3):
                try:
                    plan = self._plan(shape)
                    with self.db.engine.begin() as conn:
                        plan.insert(conn, flat)
                    self.written += count
                    break
                except Exception as exc:  # the database may be briefly unavailable; retry, then count
                    if attempt == 2:
                        self.failed += count
                        log.error("could not write %d rows to %s: %s", count, shape.table, type(exc).__name__)
                    else:
                        time.sleep(0.2 * (attempt + 1))


class _InsertPlan:
    """The INSERTs of one row shape: its columns, the driver's placeholders, several rows to a statement.

    Rows go ROWS_PER_STATEMENT to a statement, which spreads the driver's and SQLite's per-statement work
    (binding, step, reset, their mutexes, the GIL handed back and forth) over many rows. The rest of a
    batch goes in statements of 16, 8, 4, 2 and 1 rows, as its size needs: a few statement sizes in all,
    so each is parsed once per connection and then found in the driver's statement cache (a statement per
    tail size re-parsed one of up to 31 sizes at nearly every flush: ~9k instructions per query). Rows come
    flat, so each statement's values are one slice."""

    ROWS_PER_STATEMENT = 32  # 32 x 15 placeholders, far under SQLite's and PostgreSQL's limits

    def __init__(self, table: Table, columns: tuple[str, ...], dialect: Any) -> None:
        quote = dialect.identifier_preparer.quote_identifier
        sqlite = dialect.name == "sqlite"
        marks = ["?" if sqlite else "%s::json" if isinstance(table.c[name].type, JSON) else "%s" for name in columns]
        values = f"({', '.join(marks)})"
        head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in columns)}) VALUES "
        self.width = len(columns)
        # rows per statement -> its SQL, largest first: 32, 16, 8, 4, 2, 1
        self._sql = {rows: head + ", ".join([values] * rows) for rows in (32, 16, 8, 4, 2, 1)}
        assert max(self._sql) == self.ROWS_PER_STATEMENT

    def insert(self, conn: Connection, flat: list[Any]) -> None:
        width, done = self.width, 0
        for rows, sql in self._sql.items():
            step = rows * width
            whole = (len(flat) - done) // step * step
            if whole:
                conn.exec_driver_sql(sql, [tuple(flat[i : i + step]) for i in range(done, done + whole, step)])
                done += whole
