"""Provider `openai` with Azure OpenAI, through the OpenAI client pointed at modelgate, against the fake Azure
OpenAI + Entra ID server: `openai_api_type: azure` with an API key and `azuread` with a Microsoft Entra ID app
registration (client-credentials token, cached, sent as a Bearer token)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from tests.fakes.azure_openai_upstream import API_VERSION, SCOPE, FakeAzureOpenAIThread
from tests.fakes.echo_upstream import EchoUpstreamThread
from tests.providers.client_calls import invoke
from tests.providers.sent import sent_with
from tests.support.live import LiveServer, create_endpoint

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
CLIENT_SECRET = "Qx~8Q~fake.entra-client_secret0123456789"
API_KEY = "0123456789abcdef0123456789abcdef"
DEPLOYMENT = "gpt-4o-mini-prod"


@pytest.fixture(scope="module")
def azure_fake() -> Iterator[FakeAzureOpenAIThread]:
    with FakeAzureOpenAIThread(
        tenant_id=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, api_key=API_KEY
    ) as fake:
        yield fake


@pytest.fixture
def azure_endpoint(
    server: LiveServer, azure_fake: FakeAzureOpenAIThread, ep_name: Callable[..., str]
) -> Callable[..., str]:
    """`azure_endpoint(task=..., **config)`: an azuread endpoint on the fake unless the config says otherwise."""

    def make(task: str = "llm/v1/chat", **config: Any) -> str:
        name = ep_name("az-" + task.rsplit("/", 1)[1])
        cfg = {
            "openai_api_type": "azuread",
            "openai_api_base": azure_fake.url,
            "openai_api_version": API_VERSION,
            "openai_deployment_name": DEPLOYMENT,
            "microsoft_entra_client_id": CLIENT_ID,
            "microsoft_entra_client_secret_plaintext": CLIENT_SECRET,
            "microsoft_entra_tenant_id": TENANT,
            "microsoft_entra_authority_host": azure_fake.url,
            **config,
        }
        cfg = {k: v for k, v in cfg.items() if v is not None}
        entity = {"external_model": {"name": "gpt-4o-mini", "provider": "openai", "task": task, "openai_config": cfg}}
        with server.client() as c:
            create_endpoint(c, name, entity)
        return name

    return make


@pytest.mark.parametrize("stream", [False, True])
def test_azuread_chat_gets_an_entra_token_and_sends_it_as_bearer(
    oai: openai.OpenAI, azure_fake: FakeAzureOpenAIThread, azure_endpoint: Callable[..., str], stream: bool
) -> None:
    name = azure_endpoint()
    marker = f"entra {stream} {name}"
    tokens_before = len(azure_fake.token_requests)
    messages: Any = [{"role": "user", "content": marker}]
    if stream:
        chunks = list(oai.chat.completions.create(model=name, messages=messages, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    else:
        answer = oai.chat.completions.create(model=name, messages=messages)
        text = answer.choices[0].message.content or ""
        assert answer.choices[0].finish_reason == "stop"
    assert text == f"echo: {marker}"
    [form] = azure_fake.token_requests[tokens_before:]
    assert form == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scope": SCOPE,
    }
    [sent] = sent_with(azure_fake, marker)
    assert sent.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert sent.query == {"api-version": API_VERSION}
    assert sent.headers["authorization"].startswith("Bearer eyJ0eXAiOiJKV1QifQ.fake-entra-")
    assert "api-key" not in sent.headers
    assert "model" not in sent.json


def test_token_is_cached_until_shortly_before_expiry(
    oai: openai.OpenAI, azure_fake: FakeAzureOpenAIThread, azure_endpoint: Callable[..., str]
) -> None:
    azure_fake.set_token_lifetime(2)  # refreshed once half its life is left: after 1 s
    try:
        name = azure_endpoint()
        before = len(azure_fake.token_requests)
        for i in range(3):
            oai.chat.completions.create(model=name, messages=[{"role": "user", "content": f"cached {i} {name}"}])
        assert len(azure_fake.token_requests) == before + 1
        time.sleep(1.2)
        oai.chat.completions.create(model=name, messages=[{"role": "user", "content": f"refreshed {name}"}])
        assert len(azure_fake.token_requests) == before + 2
        tokens = [sent_with(azure_fake, f"{w} {name}")[0].headers["authorization"] for w in ("cached 0", "refreshed")]
        assert tokens[0] != tokens[1]
    finally:
        azure_fake.set_token_lifetime(3599)


def test_azuread_embeddings_and_completions(
    oai: openai.OpenAI, azure_fake: FakeAzureOpenAIThread, azure_endpoint: Callable[..., str]
) -> None:
    emb = azure_endpoint(task="llm/v1/embeddings")
    marker = f"embed {emb}"
    vectors = oai.embeddings.create(model=emb, input=[marker, "two"])
    assert [d.index for d in vectors.data] == [0, 1]
    assert all(len(d.embedding) > 0 for d in vectors.data)
    [sent] = sent_with(azure_fake, marker)
    assert sent.path == f"/openai/deployments/{DEPLOYMENT}/embeddings"
    assert sent.headers["authorization"].startswith("Bearer ")

    comp = azure_endpoint(task="llm/v1/completions")
    marker = f"complete {comp}"
    answer = oai.completions.create(model=comp, prompt=marker, max_tokens=20)
    assert answer.choices[0].text
    [sent] = sent_with(azure_fake, marker)
    assert sent.path == f"/openai/deployments/{DEPLOYMENT}/completions"


def test_wrong_client_secret_names_the_entra_failure_without_leaking_it(
    server: LiveServer, azure_endpoint: Callable[..., str]
) -> None:
    wrong = "Zz~9Z~wrong.entra-client_secret9876543210"
    name = azure_endpoint(microsoft_entra_client_secret_plaintext=wrong)
    resp = invoke(server, name, {"messages": [{"role": "user", "content": "x"}]})
    assert resp.status_code == 400
    body = resp.json()
    assert body["error_code"] == "BAD_REQUEST"
    assert body["message"] == "Received error from openai"
    message = body["external_model_message"]["message"]
    assert message.startswith("Microsoft Entra ID token request failed: invalid_client: AADSTS7000215: Invalid client")
    assert "Trace ID" not in message
    assert wrong not in resp.text and wrong not in server.log()
    assert CLIENT_SECRET not in server.log()


def test_an_echo_of_the_entra_token_or_client_secret_is_masked(
    server: LiveServer, azure_endpoint: Callable[..., str]
) -> None:
    """Derived credentials too: the access token modelgate sends upstream, and the client secret (URL-encoded
    in the form) it sends the token endpoint, come back masked when either echoes what it received."""
    secret = "Ab+c/d=e~entra-secret-0123456789"
    with EchoUpstreamThread() as echo:
        to_upstream = azure_endpoint(openai_api_base=echo.url)
        to_token_endpoint = azure_endpoint("llm/v1/embeddings", microsoft_entra_authority_host=echo.url,
                                           microsoft_entra_client_secret_plaintext=secret)  # fmt: skip
        refused = invoke(server, to_upstream, {"messages": [{"role": "user", "content": "x"}]})
        refused_token = invoke(server, to_token_endpoint, {"input": "x"})
        token = echo.requests[0].headers["authorization"].removeprefix("Bearer ")
        form = echo.requests[1].json
    assert token.startswith("eyJ") and "client_secret=Ab%2Bc%2Fd%3De" in form
    for resp in (refused, refused_token):
        assert resp.status_code == 400, resp.text
        assert "[REDACTED]" in resp.text
    assert token not in refused.text and token not in server.log()
    assert "Ab%2Bc%2Fd%3De" not in refused_token.text and secret not in refused_token.text


def test_unknown_tenant_is_a_400_naming_it(server: LiveServer, azure_endpoint: Callable[..., str]) -> None:
    name = azure_endpoint(microsoft_entra_tenant_id="contoso.onmicrosoft.com")
    resp = invoke(server, name, {"messages": [{"role": "user", "content": "x"}]})
    assert resp.status_code == 400
    assert (
        "invalid_request: AADSTS90002: Tenant 'contoso.onmicrosoft.com' not found."
        in (resp.json()["external_model_message"]["message"])
    )


def test_azure_api_key_goes_in_the_api_key_header(
    oai: openai.OpenAI, azure_fake: FakeAzureOpenAIThread, azure_endpoint: Callable[..., str]
) -> None:
    name = azure_endpoint(
        openai_api_type="azure",
        openai_api_key_plaintext=API_KEY,
        microsoft_entra_client_id=None,
        microsoft_entra_client_secret_plaintext=None,
        microsoft_entra_tenant_id=None,
        microsoft_entra_authority_host=None,
    )
    marker = f"key {name}"
    answer = oai.chat.completions.create(model=name, messages=[{"role": "user", "content": marker}])
    assert answer.choices[0].message.content == f"echo: {marker}"
    [sent] = sent_with(azure_fake, marker)
    assert sent.headers["api-key"] == API_KEY
    assert "authorization" not in sent.headers


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"microsoft_entra_client_id": None}, "openai_api_type 'azuread' needs microsoft_entra_client_id"),
        ({"microsoft_entra_tenant_id": None}, "needs microsoft_entra_tenant_id"),
        ({"microsoft_entra_client_secret_plaintext": None}, "needs microsoft_entra_client_secret (a secret reference)"),
        ({"microsoft_entra_client_secret": "{{secrets/llm/entra}}"}, "not both"),
        ({"openai_api_key_plaintext": API_KEY}, "drop openai_api_key"),
        ({"microsoft_entra_tenant_id": "../evil"}, "microsoft_entra_tenant_id"),
        ({"openai_api_version": None}, "Azure OpenAI needs openai_api_version"),
    ],
)
def test_azuread_config_is_checked_at_create(
    server: LiveServer, azure_fake: FakeAzureOpenAIThread, ep_name: Callable[..., str], change: Any, problem: str
) -> None:
    cfg = {
        "openai_api_type": "azuread",
        "openai_api_base": azure_fake.url,
        "openai_api_version": API_VERSION,
        "microsoft_entra_client_id": CLIENT_ID,
        "microsoft_entra_client_secret_plaintext": CLIENT_SECRET,
        "microsoft_entra_tenant_id": TENANT,
        **change,
    }
    cfg = {k: v for k, v in cfg.items() if v is not None}
    entity = {"external_model": {"name": "gpt-4o", "provider": "openai", "task": "llm/v1/chat", "openai_config": cfg}}
    with server.client() as c:
        resp = c.post("/api/2.0/serving-endpoints", json={"name": ep_name(), "config": {"served_entities": [entity]}})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert problem in resp.json()["message"]
    assert CLIENT_SECRET not in resp.text
