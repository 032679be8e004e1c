"""One writer for gateway rows: a bounded queue drained by a thread that inserts in batches.

The request path only does `queue.put_nowait` (microseconds). When the queue is full the row is dropped
and counted (`dropped`, exported as a metric), never silently and never by blocking a request. `close()`
drains everything still queued, so a graceful shutdown loses nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import MetaData, Table, insert

from modelgate.gateway.tables import USAGE_TABLE, payload_table, usage_table
from modelgate.store.db import Database

log = logging.getLogger(__name__)

Row = Any  # a dict, or an object whose materialize() returns one (rendered here, off the request path)
_STOP = object()


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
        self.dropped = 0
        self.written = 0
        self.failed = 0
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
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._queue.put(_STOP, timeout=max(0.1, deadline - time.monotonic()))
                break
            except queue.Full:
                if time.monotonic() >= deadline:
                    break
        self._thread.join(max(0.1, deadline - time.monotonic()))

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until everything submitted so far is written (for tests and the shutdown path)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    # -- the thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        stop = False
        while not stop:
            batch: list[tuple[str, Row]] = []
            try:
                item = self._queue.get(timeout=self.flush_interval_s)
            except queue.Empty:
                continue
            taken = 1
            if item is _STOP:
                stop = True
            else:
                batch.append(item)  # type: ignore[arg-type]
            while len(batch) < self.batch_size:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                taken += 1
                if item is _STOP:
                    stop = True
                    continue
                batch.append(item)  # type: ignore[arg-type]
            try:
                if batch:
                    self._write(batch)
            finally:
                for _ in range(taken):
                    self._queue.task_done()

    def _table(self, name: str) -> Table:
        table = self._tables.get(name)
        if table is None:
            table = payload_table(self._metadata, name)
            self._tables[name] = table
        if name not in self._created:
            table.create(self.db.engine, checkfirst=True)
            self._created.add(name)
        return table

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
                    target = self._table(name)
                    with self.db.engine.begin() as conn:
                        conn.execute(insert(target), rows)
                    self.written += len(rows)
                    break
                except Exception as exc:  # the database may be briefly unavailable; retry, then count
                    if attempt == 2:
                        self.failed += len(rows)
                        log.error("could not write %d rows to %s: %s", len(rows), name, type(exc).__name__)
                    else:
                        time.sleep(0.2 * (attempt + 1))
