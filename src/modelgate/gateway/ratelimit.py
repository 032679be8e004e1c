"""AI Gateway rate limits: calls and tokens per minute, per user, group, service principal or endpoint.

Windows are fixed calendar minutes, so a limit is exact: within any minute at most `calls` requests are
admitted. Token limits admit a request while the tokens already used this minute are under the limit and
are charged with the tokens the request actually used. Counters live in memory (one process) or in Redis
(several processes), where one Lua script checks every applicable counter and counts the call atomically.
In memory a request is admitted without awaiting anything (`admit_now`): no coroutine on the hot path.

A rule naming a principal replaces the general rule of its key for that principal; endpoint rules always
apply on top ("specific keys before the endpoint cap").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from modelgate.auth.principal import Principal
from modelgate.errors import RequestLimitExceeded

log = logging.getLogger(__name__)

WINDOW_S = 60
MAX_CACHED_CALLERS = 10_000


@dataclass(frozen=True, slots=True)
class Counter:
    key: str
    kind: str  # "calls" | "tokens"
    limit: int
    describe: str


@dataclass(frozen=True, slots=True)
class CallerLimits:
    """The counters that apply to one caller on one endpoint, split once by what they count."""

    counters: list[Counter]
    calls: list[Counter]  # counted when the call is admitted
    tokens: list[Counter]  # charged when the query ends

    @classmethod
    def of(cls, counters: list[Counter]) -> CallerLimits | None:
        if not counters:
            return None
        return cls(counters, [c for c in counters if c.kind == "calls"], [c for c in counters if c.kind == "tokens"])


@dataclass(slots=True)
class Admission:
    token_counters: list[Counter] = field(default_factory=list)
    window: int = 0


def applicable_counters(endpoint_id: str, rules: list[dict[str, Any]], who: Principal) -> list[Counter]:
    out: list[Counter] = []
    identity_kinds = {"user": "user", "service_principal": "service_principal"}
    own_key = identity_kinds.get(who.kind)
    indexed = list(enumerate(rules))
    for key in ("user", "service_principal"):
        if key != own_key:
            continue
        specific = [(i, r) for i, r in indexed if r.get("key") == key and r.get("principal") == who.name]
        chosen = specific or [(i, r) for i, r in indexed if r.get("key") == key and not r.get("principal")]
        for i, rule in chosen:
            out += _counters(endpoint_id, i, rule, f"{key}:{who.name}", f"{key} {who.name}")
    for group in sorted(who.groups):
        for i, rule in indexed:
            if rule.get("key") == "user_group" and rule.get("principal") in (None, group):
                out += _counters(endpoint_id, i, rule, f"group:{group}", f"group {group}")
    for i, rule in indexed:
        if rule.get("key") in (None, "endpoint"):
            out += _counters(endpoint_id, i, rule, "endpoint", "the endpoint")
    return out


def _counters(endpoint_id: str, index: int, rule: dict[str, Any], ident: str, describe: str) -> list[Counter]:
    out = []
    for kind in ("calls", "tokens"):
        limit = rule.get(kind)
        if limit is not None:
            key = f"mg:rl:{endpoint_id}:{index}:{ident}:{kind}"
            out.append(Counter(key, kind, int(limit), f"{limit} {kind} per minute for {describe}"))
    return out


class RateLimiter:
    def __init__(self, backend: MemoryCounters | RedisCounters) -> None:
        self.backend = backend
        self._memory = backend if isinstance(backend, MemoryCounters) else None
        self._shared = backend if isinstance(backend, RedisCounters) else None
        self.in_process = self._memory is not None  # admit_now works
        self._pending: set[asyncio.Task[None]] = set()
        # (endpoint, caller) -> (the rules list they were built from, limits): rebuilt when the rules change.
        self._limits: dict[tuple[str, str, str, frozenset[str]], tuple[list[dict[str, Any]], CallerLimits | None]] = {}

    def _limits_of(self, endpoint_id: str, gateway: dict[str, Any] | None, who: Principal) -> CallerLimits | None:
        """The limits that apply to this caller, None when none do (cached per caller while the rules hold)."""
        rules = gateway.get("rate_limits") if gateway else None
        if not rules:
            return None
        key = (endpoint_id, who.kind, who.name, who.groups)
        hit = self._limits.get(key)
        if hit is not None and hit[0] is rules:
            return hit[1]
        limits = CallerLimits.of(applicable_counters(endpoint_id, rules, who))
        if len(self._limits) >= MAX_CACHED_CALLERS:
            self._limits.clear()
        self._limits[key] = (rules, limits)
        return limits

    def admit_now(
        self, endpoint_id: str, endpoint: str, gateway: dict[str, Any] | None, who: Principal
    ) -> Admission | None:
        """Admit the call or raise RequestLimitExceeded, on counters in this process (`in_process`)."""
        memory = self._memory
        assert memory is not None
        limits = self._limits_of(endpoint_id, gateway, who)
        if limits is None:
            return None
        now = time.time()
        window = int(now // WINDOW_S)
        violated = memory.check_and_count(limits, window)
        if violated is None and not limits.tokens:
            return None  # the common case: a calls limit, under it
        return _admitted(limits, violated, endpoint, now, window)

    async def admit(
        self, endpoint_id: str, endpoint: str, gateway: dict[str, Any] | None, who: Principal
    ) -> Admission | None:
        """Admit the call or raise RequestLimitExceeded, on any counters."""
        if self._memory is not None:
            return self.admit_now(endpoint_id, endpoint, gateway, who)
        limits = self._limits_of(endpoint_id, gateway, who)
        if limits is None:
            return None
        now = time.time()
        window = int(now // WINDOW_S)
        assert self._shared is not None
        violated = await self._shared.check_and_count(limits, window)
        return _admitted(limits, violated, endpoint, now, window)

    def charge(self, admission: Admission | None, tokens: int) -> None:
        """Charge the tokens a finished request used (shared counters: off the request path)."""
        if admission is None or not admission.token_counters or tokens <= 0:
            return
        if self._memory is not None:
            self._memory.add_tokens(admission.token_counters, admission.window, tokens)
            return
        assert self._shared is not None
        task = asyncio.get_running_loop().create_task(
            self._shared.add_tokens(admission.token_counters, admission.window, tokens)
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


def _admitted(
    limits: CallerLimits, violated: Counter | None, endpoint: str, now: float, window: int
) -> Admission | None:
    """The admission of a call the counters let through (to charge its tokens), or the refusal."""
    if violated is not None:
        retry = max(1, math.ceil((window + 1) * WINDOW_S - now))
        raise RequestLimitExceeded(
            f"REQUEST_LIMIT_EXCEEDED: rate limit of {violated.describe} on endpoint '{endpoint}' reached; "
            f"retry in {retry} s or ask the endpoint's manager to raise the limit.",
            retry_after=retry,
        )
    return Admission(limits.tokens, window) if limits.tokens else None


class MemoryCounters:
    """Counters for one process: this minute's counts by counter key (the event loop is the only writer)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._window = 0

    def _counts_at(self, window: int) -> dict[str, int] | None:
        """This window's counts, starting afresh when a new minute begins; None for a minute already over."""
        if window != self._window:
            if window < self._window:
                return None
            self._counts, self._window = {}, window
        return self._counts

    def check_and_count(self, limits: CallerLimits, window: int) -> Counter | None:
        counts = self._counts if window == self._window else self._counts_at(window)
        if counts is None:  # the clock stepped back into a minute already over: count it in this one
            counts = self._counts
        # Over a calls limit: one more would pass it; over a tokens limit: it is used up. Both read `>=`.
        for c in limits.counters:
            if counts.get(c.key, 0) >= c.limit:
                return c
        for c in limits.calls:
            counts[c.key] = counts.get(c.key, 0) + 1
        return None

    def add_tokens(self, counters: list[Counter], window: int, tokens: int) -> None:
        counts = self._counts_at(window)
        if counts is None:  # charged after its minute ended: that minute's limit no longer matters
            return
        for c in counters:
            counts[c.key] = counts.get(c.key, 0) + tokens


_CHECK_AND_COUNT = """
local n = #KEYS
for i = 1, n do
  local limit = tonumber(ARGV[i + 1])
  local kind = ARGV[n + i + 1]
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if (kind == 'c' and used + 1 > limit) or (kind == 't' and used >= limit) then
    return i
  end
end
for i = 1, n do
  if ARGV[n + i + 1] == 'c' then
    redis.call('INCR', KEYS[i])
    redis.call('EXPIRE', KEYS[i], ARGV[1])
  end
end
return 0
"""


class RedisCounters:
    """Counters shared by every modelgate process that uses the same Redis."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(url)
        self._script = self._redis.register_script(_CHECK_AND_COUNT)

    async def check_and_count(self, limits: CallerLimits, window: int) -> Counter | None:
        counters = limits.counters
        keys = [f"{c.key}:{window}" for c in counters]
        args: list[Any] = [
            WINDOW_S * 2,
            *[c.limit for c in counters],
            *["c" if c.kind == "calls" else "t" for c in counters],
        ]
        violated = int(await self._script(keys=keys, args=args))
        return counters[violated - 1] if violated else None

    async def add_tokens(self, counters: list[Counter], window: int, tokens: int) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for c in counters:
            key = f"{c.key}:{window}"
            pipe.incrby(key, tokens)
            pipe.expire(key, WINDOW_S * 2)
        try:
            await pipe.execute()
        except Exception as exc:
            log.warning("could not charge tokens to Redis: %s", type(exc).__name__)

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._redis.aclose()
