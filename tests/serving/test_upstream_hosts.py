"""MODELGATE_UPSTREAM_HOSTS: an operator's list of the hosts external models may call, for every principal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from modelgate.errors import InvalidParameterValue, PermissionDenied
from modelgate.serving.upstream_hosts import UpstreamHostPolicy
from tests.conftest import UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer, external_chat_config

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def _config(**fields: Any) -> dict[str, Any]:
    return {"openai_api_key_plaintext": "k", **fields}


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://api.openai.com/v1", True),
        ("https://API.OpenAI.com:8443/v1", True),  # a pattern without a port allows any port
        ("https://myres.openai.azure.com/", True),
        ("https://openai.azure.com.evil.example/", False),
        ("http://127.0.0.1:8000/v1", True),
        ("http://127.0.0.1:8001/v1", False),
        ("http://api.openai.com@169.254.169.254/latest", False),  # user info is not the host
        ("http://[::1]:8000/v1", True),
        ("http://[::1]:9000/v1", False),
        ("127.0.0.1:8000/v1", True),  # openai_api_base without a scheme
    ],
)
def test_hosts_and_ports(url: str, allowed: bool) -> None:
    policy = UpstreamHostPolicy.parse("api.openai.com, *.openai.azure.com, 127.0.0.1:8000, [::1]:8000")
    if allowed:
        policy.check(_config(openai_api_base=url), "openai_config")
    else:
        with pytest.raises(PermissionDenied, match="may not send requests to"):
            policy.check(_config(openai_api_base=url), "openai_config")


def test_nested_and_default() -> None:
    policy = UpstreamHostPolicy.parse("*.example.com")
    with pytest.raises(PermissionDenied, match=r"custom_provider_config\.custom_provider_url"):
        policy.check({"custom_provider_url": "http://10.0.0.1/v1"}, "custom_provider_config")
    with pytest.raises(PermissionDenied, match="microsoft_entra_authority_host"):
        policy.check({"microsoft_entra_authority_host": "https://login.evil.test"}, "openai_config")
    policy.check({"openai_api_key_plaintext": "k"}, "openai_config")  # the provider's own default host
    with pytest.raises(InvalidParameterValue):
        policy.check({"openai_api_base": "http:///nohost"}, "openai_config")
    UpstreamHostPolicy.parse("").check({"custom_provider_url": "http://10.0.0.1/v1"}, "c")  # unset: any host


def _port(fake: FakeUpstreamThread) -> int:
    port = urlsplit(fake.base_url).port
    assert port is not None
    return port


@pytest.fixture(scope="module")
def narrow(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstreamThread) -> Iterator[LiveServer]:
    env = {"MODELGATE_UPSTREAM_HOSTS": f"127.0.0.1:{_port(upstream)}"}
    with LiveServer(tmp_path_factory.mktemp("mg-hosts"), env=env) as live:
        yield live


def test_a_live_server_refuses_other_hosts_for_admins_too(narrow: LiveServer, upstream: FakeUpstreamThread) -> None:
    user = narrow.create_token("hosts-user@example.com")
    with narrow.client() as admin, narrow.client(user) as c:
        ok = {"name": "hosts-ok", "config": {"served_entities": [external_chat_config(upstream.base_url)]}}
        assert admin.post("/api/2.0/serving-endpoints", json=ok).status_code == 200
        assert admin.post("/serving-endpoints/hosts-ok/invocations", json=CHAT).status_code == 200
        for who, name, base in (
            (admin, "hosts-meta", "http://169.254.169.254/latest"),
            (c, "hosts-port", f"http://127.0.0.1:{_port(upstream) + 1}/v1"),
        ):
            body = {"name": name, "config": {"served_entities": [external_chat_config(base)]}}
            resp = who.post("/api/2.0/serving-endpoints", json=body)
            assert resp.status_code == 403, resp.text
            assert resp.json()["error_code"] == "PERMISSION_DENIED"
            assert "MODELGATE_UPSTREAM_HOSTS" in resp.json()["message"]
            assert who.get(f"/api/2.0/serving-endpoints/{name}").status_code == 404
        moved = {"served_entities": [external_chat_config("http://localhost:1/v1", api_key=UPSTREAM_KEY)]}
        assert admin.put("/api/2.0/serving-endpoints/hosts-ok/config", json=moved).status_code == 403

    # Narrowing the list later takes an endpoint outside it out of service, with the reason.
    env = {"MODELGATE_UPSTREAM_HOSTS": "api.openai.com"}
    with LiveServer(narrow.data_dir, env=env) as again, again.client() as admin:
        resp = admin.post("/serving-endpoints/hosts-ok/invocations", json=CHAT)
        assert resp.status_code == 503, resp.text
        assert "MODELGATE_UPSTREAM_HOSTS=api.openai.com" in resp.json()["message"]
