"""Generation counters in the `meta` table.

A writer bumps a counter in the same transaction as the change it counts; other processes poll it (one
row read) and reload their caches when it moves. Endpoints and registered catalog models each keep one.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from modelgate.store.tables import Meta


def read_counter(s: Session, key: str) -> str:
    """The counter's current value, "0" before its first bump."""
    row = s.get(Meta, key)
    return row.value if row else "0"


def bump_counter(s: Session, key: str) -> str:
    """Move the counter on by one; its new value (as read_counter will give it once committed)."""
    row = s.get(Meta, key)
    if row is None:
        s.add(Meta(key=key, value="1"))
        return "1"
    row.value = str(int(row.value) + 1)
    return row.value
