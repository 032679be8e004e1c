"""The one-line progress display of `modelgate sql`: rows done / total, rows/s, errors; for terminals only."""

from __future__ import annotations

import shutil
import threading
from typing import TextIO

from modelgate.sql.client import Progress


def render(progress: Progress, width: int = 80) -> str:
    """`ai_query 1,200/2,000 rows  60% [######    ] 612 rows/s  0 errors` (no bar without a total)."""
    done, total = progress.done, progress.total
    rate = f"{progress.rate():,.0f} rows/s"
    errors = f"{progress.errors:,} error{'s' if progress.errors != 1 else ''}"
    retries = f"  {progress.retries:,} retried" if progress.retries else ""
    if not total:
        return f"ai_query {done:,} rows  {rate}  {errors}{retries}"
    share = min(1.0, done / total)
    head = f"ai_query {done:,}/{total:,} rows {share:4.0%} "
    tail = f" {rate}  {errors}{retries}"
    room = max(10, min(40, width - len(head) - len(tail) - 3))
    filled = int(room * share)
    return f"{head}[{'#' * filled}{' ' * (room - filled)}]{tail}"


class ProgressLine:
    """Redraws `render(progress)` in place on `stream` a few times a second, from its own thread."""

    def __init__(self, stream: TextIO, interval_s: float = 0.2) -> None:
        self.stream = stream
        self.interval_s = interval_s
        self.progress: Progress | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="modelgate-progress", daemon=True)
        self._last = ""
        self._lock = threading.Lock()

    def start(self) -> ProgressLine:
        self._thread.start()
        return self

    def track(self, progress: Progress) -> None:
        with self._lock:
            self.progress = progress

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                self._draw()

    def _draw(self) -> None:
        if self.progress is None:
            return
        width = shutil.get_terminal_size((100, 20)).columns
        line = render(self.progress, width)[: width - 1]
        pad = " " * max(0, len(self._last) - len(line))
        self.stream.write(f"\r{line}{pad}")
        self.stream.flush()
        self._last = line

    def finish(self) -> None:
        """Draw a statement's final state and end its line."""
        with self._lock:
            if self.progress is not None:
                self._draw()
                self.stream.write("\n")
                self.stream.flush()
            self.progress = None
            self._last = ""

    def close(self) -> None:
        self.finish()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
