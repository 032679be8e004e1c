"""Column values as each database driver takes them, for the gateway writer's executemany.

Rows go straight to the driver (SQLAlchemy's per-row parameter processing cost more than SQLite's insert
itself), so the few conversions the columns need are done here: SQLAlchemy's SQLite text for DateTime and
Date, 0/1 for SQLite booleans, JSON as text (PostgreSQL casts it with `::json` in the INSERT).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

import orjson


class SqlValues(Protocol):
    """Converts Python values to what one driver stores in a column of each kind."""

    def datetime(self, epoch_s: float | None) -> Any: ...

    def date(self, epoch_s: float | None) -> Any: ...

    def json(self, value: Any) -> str | None: ...

    def boolean(self, value: bool | None) -> Any: ...


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


class SqliteValues:
    """Epoch seconds as SQLAlchemy's SQLite DateTime/Date text (naive UTC), formatted once per second."""

    def __init__(self) -> None:
        self._current = -1
        self._prefix = ""
        self._date = ""

    def _second(self, epoch_s: float) -> int:
        """The whole second of `epoch_s`, its date and time prefix formatted when it changes."""
        second = int(epoch_s)
        if second != self._current:
            when = dt.datetime.fromtimestamp(second, tz=dt.UTC)
            self._current, self._prefix, self._date = (
                second,
                when.strftime("%Y-%m-%d %H:%M:%S"),
                when.date().isoformat(),
            )
        return second

    def datetime(self, epoch_s: float | None) -> str | None:
        if epoch_s is None:
            return None
        second = self._second(epoch_s)
        return f"{self._prefix}.{int((epoch_s - second) * 1_000_000):06d}"

    def date(self, epoch_s: float | None) -> str | None:
        if epoch_s is None:
            return None
        self._second(epoch_s)
        return self._date

    json = staticmethod(_json_text)

    @staticmethod
    def boolean(value: bool | None) -> int | None:
        return None if value is None else int(value)


class DriverValues:
    """Drivers that take Python datetimes, dates and booleans themselves (psycopg)."""

    @staticmethod
    def datetime(epoch_s: float | None) -> dt.datetime | None:
        return None if epoch_s is None else dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC)

    @staticmethod
    def date(epoch_s: float | None) -> dt.date | None:
        return None if epoch_s is None else dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC).date()

    json = staticmethod(_json_text)

    @staticmethod
    def boolean(value: bool | None) -> bool | None:
        return value


def values_for(dialect_name: str) -> SqlValues:
    return SqliteValues() if dialect_name == "sqlite" else DriverValues()
