"""AI Gateway rate limits: exact on one process, and exact across processes that share Redis."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer, create_endpoint, external_chat_config
from tests.support.services import redis_url

BODY = {"messages": [{"role": "user", "content": "hi"}]}


def _wait_for_fresh_minute(needed_s: float) -> None:
    """Limits use calendar-minute windows; start a burst early enough in a minute to finish inside it."""
    into = time.time() % 60
    if into > 60 - needed_s:
        time.sleep(60 - into + 0.05)


def _limits(client: httpx.Client, name: str, limits: list[dict[str, object]]) -> None:
    resp = client.put(f"/api/2.0/serving-endpoints/{name}/ai-gateway", json={"rate_limits": limits})
    assert resp.status_code == 200, resp.text


def test_calls_per_minute_on_one_process(server: LiveServer, upstream: FakeUpstreamThread) -> None:
    name = "rl-calls"
    with server.client() as c:
        create_endpoint(c, name, external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
        _limits(c, name, [{"calls": 5, "key": "endpoint", "renewal_period": "minute"}])
        time.sleep(1.2)  # other processes would see the change within the registry poll interval
        _wait_for_fresh_minute(10)
        statuses = [c.post(f"/serving-endpoints/{name}/invocations", json=BODY) for _ in range(8)]
    assert [r.status_code for r in statuses] == [200] * 5 + [429] * 3
    refused = statuses[-1]
    assert refused.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert "5 calls per minute" in refused.json()["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    with server.client() as c:
        metrics = c.get(f"/api/2.0/serving-endpoints/{name}/metrics").text
    assert f'modelgate_rate_limit_rejections_total{{endpoint="{name}"}} 3.0' in metrics


def test_principal_specific_rule_replaces_the_general_one(server: LiveServer, upstream: FakeUpstreamThread) -> None:
    name = "rl-users"
    alice = server.create_token("rl-alice@example.com")
    bob = server.create_token("rl-bob@example.com")
    with server.client() as c:
        create_endpoint(c, name, external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
        ep = c.get(f"/api/2.0/serving-endpoints/{name}").json()
        c.patch(
            f"/api/2.0/permissions/serving-endpoints/{ep['id']}",
            json={"access_control_list": [{"group_name": "users", "permission_level": "CAN_QUERY"}]},
        )
        _limits(
            c,
            name,
            [
                {"calls": 2, "key": "user", "renewal_period": "minute"},
                {"calls": 4, "key": "user", "principal": "rl-alice@example.com", "renewal_period": "minute"},
            ],
        )
    _wait_for_fresh_minute(10)
    with server.client(alice) as a, server.client(bob) as b:
        alice_codes = [a.post(f"/serving-endpoints/{name}/invocations", json=BODY).status_code for _ in range(5)]
        bob_codes = [b.post(f"/serving-endpoints/{name}/invocations", json=BODY).status_code for _ in range(3)]
    assert alice_codes == [200, 200, 200, 200, 429]
    assert bob_codes == [200, 200, 429]


def test_tokens_per_minute_are_charged_by_use(server: LiveServer, upstream: FakeUpstreamThread) -> None:
    name = "rl-tokens"
    with server.client() as c:
        create_endpoint(c, name, external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
        _limits(c, name, [{"tokens": 20, "key": "endpoint", "renewal_period": "minute"}])
        _wait_for_fresh_minute(10)
        # Each call uses 3 prompt + 4 completion tokens with the fake: 7, 14, 21 -> the fourth is refused.
        body = {"messages": [{"role": "user", "content": "one two three"}]}
        codes = []
        for _ in range(4):
            codes.append(c.post(f"/serving-endpoints/{name}/invocations", json=body).status_code)
            time.sleep(0.05)  # token charges are applied just after each answer
    assert codes == [200, 200, 200, 429]


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> Iterator[list[LiveServer]]:
    url = redis_url()
    token = "dapi" + secrets.token_hex(16)
    servers = [
        LiveServer(
            tmp_path_factory.mktemp(f"mg-redis-{i}"),
            database_url=pg_url,
            admin_token=token,
            env={"MODELGATE_REDIS_URL": url, "MODELGATE_SECRET_KEY": _shared_key(tmp_path_factory)},
        )
        for i in range(3)
    ]
    for s in servers:
        s.start()
    try:
        yield servers
    finally:
        for s in servers:
            s.stop()


_KEY: list[str] = []


def _shared_key(_factory: pytest.TempPathFactory) -> str:
    if not _KEY:
        from cryptography.fernet import Fernet

        _KEY.append(Fernet.generate_key().decode())
    return _KEY[0]


def test_limit_holds_across_three_processes_sharing_redis(
    redis_cluster: list[LiveServer], upstream: FakeUpstreamThread
) -> None:
    name = "rl-shared-" + secrets.token_hex(3)
    limit = 30
    with redis_cluster[0].client() as c:
        create_endpoint(c, name, external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
        _limits(c, name, [{"calls": limit, "key": "endpoint", "renewal_period": "minute"}])
    time.sleep(1.5)  # every process picks the change up within its registry poll interval
    _wait_for_fresh_minute(20)

    async def burst() -> list[int]:
        clients = [
            httpx.AsyncClient(base_url=s.url, headers={"Authorization": f"Bearer {s.admin_token}"}, timeout=30)
            for s in redis_cluster
        ]
        try:
            calls = [clients[i % 3].post(f"/serving-endpoints/{name}/invocations", json=BODY) for i in range(120)]
            return [r.status_code for r in await asyncio.gather(*calls)]
        finally:
            for cl in clients:
                await cl.aclose()

    codes = asyncio.run(burst())
    assert codes.count(200) == limit, codes
    assert codes.count(429) == 120 - limit
