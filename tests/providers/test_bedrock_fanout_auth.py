"""Provider `amazon-bedrock`: `n` > 1 fanned out over Converse (streaming too), temporary credentials (session
token signed into `X-Amz-Security-Token`) and botocore's default credential chain, against the fake Bedrock
runtime, which verifies every SigV4 signature with botocore."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import pytest
from botocore.credentials import RefreshableCredentials
from cryptography.fernet import Fernet

from modelgate.errors import BadRequest
from modelgate.protocol.chat import ChatRequest
from modelgate.providers.base import ProviderDeps
from modelgate.providers.bedrock import BedrockProvider
from modelgate.providers.bedrock_auth import BedrockCredentials
from modelgate.providers.http import HttpClient, new_http_client
from modelgate.secrets import SecretCipher, SecretResolver
from tests.fakes.bedrock_upstream import FakeBedrockThread
from tests.providers.client_calls import chat_text, invoke, stream_fanned_out
from tests.providers.conftest import BEDROCK_REGION
from tests.providers.sent import sent_with
from tests.support.live import LiveServer

TEMP_KEY = "ASIAFAKETEMPORARY001"
TEMP_SECRET = "temporary/secret+key0123456789abcdef"
TEMP_TOKEN = "IQoJb3JpZ2luX2VjEFAKE//session+token=="
PROFILE_ARN = "arn:aws:iam::123456789012:instance-profile/modelgate"


def test_n_fans_out_into_concurrent_converse_calls(
    oai: openai.OpenAI,
    bedrock_fake: FakeBedrockThread,
    bedrock_endpoint: Callable[..., str],
) -> None:
    name = bedrock_endpoint()
    marker = f"three answers {name}"
    answer = oai.chat.completions.create(model=name, messages=[{"role": "user", "content": marker}], n=3)
    assert [c.index for c in answer.choices] == [0, 1, 2]
    assert all(c.message.content == f"echo: {marker}" for c in answer.choices)
    assert all(c.finish_reason == "stop" for c in answer.choices)
    sent = sent_with(bedrock_fake, marker)
    assert len(sent) == 3
    assert all("n" not in r.json and r.path.endswith("/converse") for r in sent)
    words = len(marker.split())
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (3 * words, 3 * (words + 1))
    assert answer.usage.total_tokens == 3 * (2 * words + 1)


def test_n_fans_out_when_streaming(
    server: LiveServer,
    bedrock_fake: FakeBedrockThread,
    bedrock_endpoint: Callable[..., str],
) -> None:
    name = bedrock_endpoint()
    marker = f"two streams {name}"
    events = stream_fanned_out(server, name, marker, 2)
    usage = events[-1]["usage"]
    words = len(marker.split())
    assert events[-1]["choices"] == []
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (2 * words, 2 * (words + 1))
    assert [r.path.rsplit("/", 1)[1] for r in sent_with(bedrock_fake, marker)] == ["converse-stream"] * 2


@pytest.mark.parametrize("stream", [False, True])
def test_temporary_credentials_sign_the_session_token(
    oai: openai.OpenAI,
    bedrock_fake: FakeBedrockThread,
    bedrock_endpoint: Callable[..., str],
    stream: bool,
) -> None:
    bedrock_fake.add_credentials(TEMP_KEY, TEMP_SECRET, TEMP_TOKEN)
    name = bedrock_endpoint(
        aws_access_key_id_plaintext=TEMP_KEY,
        aws_secret_access_key_plaintext=TEMP_SECRET,
        aws_session_token_plaintext=TEMP_TOKEN,
    )
    marker = f"temporary {stream} {name}"
    messages: Any = [{"role": "user", "content": marker}]
    text = chat_text(oai, name, messages, stream=stream)
    assert text == f"echo: {marker}"
    [sent] = sent_with(bedrock_fake, marker)
    assert sent.headers["x-amz-security-token"] == TEMP_TOKEN
    assert "x-amz-security-token" in sent.headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert f"Credential={TEMP_KEY}/" in sent.headers["authorization"]


def test_wrong_session_token_is_refused_without_leaking_it(
    server: LiveServer,
    bedrock_fake: FakeBedrockThread,
    bedrock_endpoint: Callable[..., str],
) -> None:
    bedrock_fake.add_credentials(TEMP_KEY, TEMP_SECRET, TEMP_TOKEN)
    wrong = "IQoJb3JpZ2luX2VjEXPIRED//old+token=="
    name = bedrock_endpoint(
        aws_access_key_id_plaintext=TEMP_KEY,
        aws_secret_access_key_plaintext=TEMP_SECRET,
        aws_session_token_plaintext=wrong,
    )
    resp = invoke(server, name, {"messages": [{"role": "user", "content": "x"}]})
    assert resp.status_code == 400
    assert resp.json() == {
        "error_code": "BAD_REQUEST",
        "message": "Received error from amazon-bedrock",
        "external_model_message": {"message": "The security token included in the request is invalid."},
    }
    for secret in (wrong, TEMP_SECRET):
        assert secret not in resp.text and secret not in server.log()


# -- botocore's default credential chain (no keys in the config) --------------------------------------
@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with new_http_client(max_connections=10, read_timeout_s=30) as session:
        yield session


def chain_provider(http: HttpClient, base: str) -> BedrockProvider:
    """The provider built in-process, so the test controls the environment its credential chain reads."""
    raw = {
        "aws_region": BEDROCK_REGION,
        "bedrock_provider": "anthropic",
        "instance_profile_arn": PROFILE_ARN,
        "bedrock_endpoint_url": base,
        "retry_budget_s": 0,
    }
    config = BedrockProvider.parse_config(raw)
    deps = ProviderDeps(http=http, secrets=SecretResolver(SecretCipher(Fernet.generate_key())))
    return BedrockProvider("anthropic.claude-3-5-haiku-20241022-v1:0", "llm/v1/chat", config, deps)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> pytest.MonkeyPatch:
    """An environment where the chain finds only what a test puts in environment variables."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    return monkeypatch


async def test_default_chain_credentials_with_session_token(
    bedrock_fake: FakeBedrockThread,
    http: HttpClient,
    aws_env: pytest.MonkeyPatch,
) -> None:
    bedrock_fake.add_credentials(TEMP_KEY, TEMP_SECRET, TEMP_TOKEN)
    aws_env.setenv("AWS_ACCESS_KEY_ID", TEMP_KEY)
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", TEMP_SECRET)
    aws_env.setenv("AWS_SESSION_TOKEN", TEMP_TOKEN)
    provider = chain_provider(http, bedrock_fake.url)
    marker = "from the chain"
    answer = await provider.chat(ChatRequest.model_validate({"messages": [{"role": "user", "content": marker}]}))
    assert answer["choices"][0]["message"]["content"] == f"echo: {marker}"
    [sent] = sent_with(bedrock_fake, marker)
    assert sent.headers["x-amz-security-token"] == TEMP_TOKEN
    assert f"Credential={TEMP_KEY}/" in sent.headers["authorization"]


async def test_default_chain_without_credentials_is_a_clear_400(http: HttpClient, aws_env: pytest.MonkeyPatch) -> None:
    provider = chain_provider(http, "http://127.0.0.1:9")
    with pytest.raises(BadRequest, match="default AWS credential chain found none"):
        await provider.chat(ChatRequest.model_validate({"messages": [{"role": "user", "content": "x"}]}))


async def test_expiring_chain_credentials_are_refreshed() -> None:
    """Chain credentials that expire (instance profile, web identity) are refreshed by botocore before use."""
    refreshed = []

    def refresh() -> dict[str, str]:
        refreshed.append(1)
        later = datetime.now(UTC) + timedelta(hours=1)
        return {"access_key": "ASIANEW", "secret_key": "new", "token": "new-token", "expiry_time": later.isoformat()}

    soon = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()  # inside botocore's mandatory refresh window
    old = {"access_key": "ASIAOLD", "secret_key": "old", "token": "old-token", "expiry_time": soon}
    creds = BedrockCredentials(None, None, None)
    creds._chain = RefreshableCredentials.create_from_metadata(old, refresh, "test")
    first = await creds.current()
    assert (first.access_key, first.token, len(refreshed)) == ("ASIANEW", "new-token", 1)
    second = await creds.current()  # still fresh: no refresh
    assert (second.access_key, len(refreshed)) == ("ASIANEW", 1)
