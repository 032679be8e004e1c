"""The rate limiter on in-process counters: admitted without awaiting, refused at the limit, tokens charged
by use. (Live servers, Redis included, are in test_rate_limits.py.)"""

from __future__ import annotations

import asyncio

import pytest

from modelgate.auth.principal import Principal
from modelgate.errors import RequestLimitExceeded
from modelgate.gateway.ratelimit import MemoryCounters, RateLimiter

ALICE = Principal("user", "alice@example.com")
BOB = Principal("user", "bob@example.com")


def test_calls_are_admitted_at_once_until_the_limit() -> None:
    limiter = RateLimiter(MemoryCounters())
    assert limiter.in_process
    gateway = {"rate_limits": [{"calls": 3, "key": "user", "renewal_period": "minute"}]}
    for _ in range(3):
        assert limiter.admit_now("e1", "chat", gateway, ALICE) is None  # calls only: nothing to charge later
    with pytest.raises(RequestLimitExceeded) as refused:
        limiter.admit_now("e1", "chat", gateway, ALICE)
    assert "3 calls per minute for user alice@example.com" in str(refused.value)
    assert "endpoint 'chat'" in str(refused.value)
    retry = refused.value.retry_after
    assert retry is not None and 1 <= retry <= 60
    assert limiter.admit_now("e1", "chat", gateway, BOB) is None  # each user has their own count


def test_tokens_are_charged_by_use_without_a_task() -> None:
    limiter = RateLimiter(MemoryCounters())
    gateway = {"rate_limits": [{"tokens": 100, "key": "endpoint", "renewal_period": "minute"}]}
    admission = limiter.admit_now("e2", "chat", gateway, ALICE)
    assert admission is not None and [c.kind for c in admission.token_counters] == ["tokens"]
    limiter.charge(admission, 60)
    assert limiter.admit_now("e2", "chat", gateway, BOB) is not None  # 60 of 100 used: still under
    limiter.charge(admission, 40)  # charged at once, no event loop needed
    with pytest.raises(RequestLimitExceeded, match="100 tokens per minute for the endpoint"):
        limiter.admit_now("e2", "chat", gateway, ALICE)


def test_awaiting_admit_counts_on_the_same_counters() -> None:
    limiter = RateLimiter(MemoryCounters())
    gateway = {"rate_limits": [{"calls": 1, "key": "user"}]}
    assert asyncio.run(limiter.admit("e3", "chat", gateway, ALICE)) is None
    with pytest.raises(RequestLimitExceeded):
        limiter.admit_now("e3", "chat", gateway, ALICE)


def test_no_rules_admit_everyone() -> None:
    limiter = RateLimiter(MemoryCounters())
    assert limiter.admit_now("e4", "chat", None, ALICE) is None
    assert limiter.admit_now("e4", "chat", {"rate_limits": []}, ALICE) is None
