"""The gateway writer's driver values: SQLite's date and time text as SQLAlchemy reads it, NULLs, psycopg's."""

from __future__ import annotations

import datetime as dt
import sqlite3

from sqlalchemy import Column, Date, DateTime, Integer, MetaData, Table, create_engine, select

from modelgate.gateway.sqlvalues import DriverValues, SqliteValues, values_for

# Times inside one second, across a second, a day and a year boundary, and on a whole second.
EPOCHS = [
    1_795_000_000.000001,
    1_795_000_000.5,
    1_795_000_000.999999,
    1_795_000_001.25,
    1_798_761_599.75,
    1_798_761_600.0,
]


def test_sqlite_moment_reads_back_through_sqlalchemy() -> None:
    engine = create_engine("sqlite://")
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("d", Date), Column("at", DateTime))
    table.metadata.create_all(engine)
    values = SqliteValues()
    with engine.begin() as conn:
        for i, epoch in enumerate(EPOCHS):
            date, at = values.moment(epoch)
            conn.exec_driver_sql("INSERT INTO t (id, d, at) VALUES (?, ?, ?)", (i, date, at))
        read = conn.execute(select(table.c.d, table.c.at).order_by(table.c.id)).all()
    for epoch, (date, at) in zip(EPOCHS, read, strict=True):
        expected = dt.datetime.fromtimestamp(epoch, tz=dt.UTC).replace(tzinfo=None)
        assert abs((at - expected).total_seconds()) <= 1e-6  # float rounding of the fraction only
        assert date == expected.date()


def test_driver_moment_is_utc() -> None:
    date, at = DriverValues.moment(1_798_761_599.75)
    assert at == dt.datetime(2026, 12, 31, 23, 59, 59, 750000, tzinfo=dt.UTC)
    assert date == dt.date(2026, 12, 31)


def test_none_still_binds_as_null_after_the_cheap_adapter() -> None:
    values_for("sqlite")
    assert (type(None), sqlite3.PrepareProtocol) in sqlite3.adapters
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a, b TEXT, c INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(None, None, None), (1, "x", None)])
    assert conn.execute("SELECT a IS NULL, b IS NULL, c IS NULL, typeof(a) FROM t ORDER BY rowid").fetchall() == [
        (1, 1, 1, "null"),
        (0, 0, 1, "integer"),
    ]
