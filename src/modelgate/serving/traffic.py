"""Traffic split: pick a served entity with probability proportional to its traffic percentage."""

from __future__ import annotations

import bisect
import random
from itertools import accumulate

from modelgate.errors import InvalidParameterValue


def default_routes(entity_names: list[str]) -> list[dict[str, object]]:
    """With no traffic_config: one entity takes 100%; several share it evenly (remainder to the first)."""
    n = len(entity_names)
    share, rest = divmod(100, n)
    return [
        {"served_entity_name": name, "traffic_percentage": share + (rest if i == 0 else 0)}
        for i, name in enumerate(entity_names)
    ]


def check_routes(routes: list[dict[str, object]], entity_names: list[str]) -> None:
    seen: set[str] = set()
    total = 0
    for route in routes:
        target = str(route.get("served_entity_name") or route.get("served_model_name") or "")
        if target not in entity_names:
            raise InvalidParameterValue(
                f"traffic_config routes to '{target}', which is not a served entity of this endpoint "
                f"(served entities: {', '.join(entity_names)})"
            )
        if target in seen:
            raise InvalidParameterValue(f"traffic_config names served entity '{target}' twice")
        seen.add(target)
        pct = route.get("traffic_percentage", 0)
        total += int(pct) if isinstance(pct, int) else 0
    if total != 100:
        raise InvalidParameterValue(f"traffic_config percentages must sum to 100, got {total}")


class TrafficSplitter:
    def __init__(self, routes: list[tuple[str, int]]) -> None:
        # Entities at 0% take no traffic but still serve as fallbacks, in the order they are listed.
        self._all = [name for name, _ in routes]
        weighted = [(name, pct) for name, pct in routes if pct > 0]
        self._names = [name for name, _ in weighted]
        self._cumulative = list(accumulate(pct for _, pct in weighted))
        self._total = self._cumulative[-1] if self._cumulative else 0
        self._random = random.Random()

    def pick(self) -> str | None:
        if not self._names:
            return None
        if len(self._names) == 1:
            return self._names[0]
        r = self._random.random() * self._total
        return self._names[bisect.bisect_right(self._cumulative, r)]

    def order(self) -> list[str]:
        """Entities in the order fallbacks try them: the picked one first, then the rest as listed."""
        first = self.pick()
        return [first, *[n for n in self._all if n != first]] if first else []
