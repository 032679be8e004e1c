"""Fixtures for provider tests: the fake provider servers, endpoints created against them, their credentials,
endpoint names and the official OpenAI client."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.ai21_upstream import FakeAI21Thread
from tests.fakes.anthropic_upstream import FakeAnthropicThread
from tests.fakes.bedrock_upstream import FakeBedrockThread
from tests.fakes.cohere_upstream import FakeCohereThread
from tests.fakes.vertex_upstream import FakeVertexThread
from tests.serving.support import endpoint_name
from tests.support.live import LiveServer, create_endpoint

ANTHROPIC_KEY = "sk-ant-test-0123456789"
AI21_KEY = "ai21-test-key-0123456789"
COHERE_KEY = "co-test-key-0123456789"
BEDROCK_ACCESS_KEY = "AKIAFAKEBEDROCK00001"
BEDROCK_SECRET_KEY = "fake/bedrock/secret+key0123456789abcdef"
BEDROCK_REGION = "us-west-2"
BEDROCK_CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
VERTEX_CLIENT_EMAIL = "modelgate-test@proj-1.iam.gserviceaccount.com"
VERTEX_MODELS = "/v1/projects/proj-1/locations/us-central1/publishers/google/models"


@pytest.fixture
def ep_name(request: pytest.FixtureRequest) -> Callable[..., str]:
    def make(suffix: str = "") -> str:
        return endpoint_name(request.node.nodeid, request.node.name, suffix)

    return make


@pytest.fixture
def oai(server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/serving-endpoints", api_key=server.admin_token, max_retries=0) as c:
        yield c


def external(provider: str, model: str, task: str, config_key: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """A served entity for `provider`'s `model` with its config under `config_key`."""
    return {"external_model": {"name": model, "provider": provider, "task": task, config_key: cfg}}


def create(server: LiveServer, name: str, entity: dict[str, Any]) -> str:
    with server.client() as c:
        create_endpoint(c, name, entity)
    return name


# -- Anthropic ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def anthropic_fake() -> Iterator[FakeAnthropicThread]:
    with FakeAnthropicThread(ANTHROPIC_KEY) as fake:
        yield fake


def anthropic_entity(base: str, model: str = "claude-sonnet-4-5", **config: Any) -> dict[str, Any]:
    cfg = {"anthropic_api_base": base, **config}
    if "anthropic_api_key" not in cfg:
        cfg.setdefault("anthropic_api_key_plaintext", ANTHROPIC_KEY)
    return external("anthropic", model, "llm/v1/chat", "anthropic_config", cfg)


@pytest.fixture
def anthropic_endpoint(
    server: LiveServer, anthropic_fake: FakeAnthropicThread, ep_name: Callable[..., str]
) -> Callable[..., str]:
    """`anthropic_endpoint(model="...")` creates an endpoint on the fake and returns its name."""

    def make(model: str = "claude-sonnet-4-5", suffix: str = "", **config: Any) -> str:
        return create(server, ep_name(suffix), anthropic_entity(anthropic_fake.url, model, **config))

    return make


# -- Amazon Bedrock -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bedrock_fake() -> Iterator[FakeBedrockThread]:
    with FakeBedrockThread(BEDROCK_ACCESS_KEY, BEDROCK_SECRET_KEY, BEDROCK_REGION) as fake:
        yield fake


def bedrock_entity(base: str, model: str, task: str, **config: Any) -> dict[str, Any]:
    cfg = {
        "aws_region": BEDROCK_REGION,
        "bedrock_provider": "Anthropic",
        "aws_access_key_id_plaintext": BEDROCK_ACCESS_KEY,
        "aws_secret_access_key_plaintext": BEDROCK_SECRET_KEY,
        "bedrock_endpoint_url": base,
        **config,
    }
    return external("amazon-bedrock", model, task, "amazon_bedrock_config", cfg)


@pytest.fixture
def bedrock_endpoint(
    server: LiveServer, bedrock_fake: FakeBedrockThread, ep_name: Callable[..., str]
) -> Callable[..., str]:
    def make(model: str = BEDROCK_CLAUDE, task: str = "llm/v1/chat", suffix: str = "", **config: Any) -> str:
        return create(server, ep_name(suffix), bedrock_entity(bedrock_fake.url, model, task, **config))

    return make


# -- Cohere ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cohere_fake() -> Iterator[FakeCohereThread]:
    with FakeCohereThread(COHERE_KEY) as fake:
        yield fake


@pytest.fixture
def cohere_endpoint(
    server: LiveServer, cohere_fake: FakeCohereThread, ep_name: Callable[..., str]
) -> Callable[..., str]:
    def make(model: str = "command-a-03-2025", task: str = "llm/v1/chat", **config: Any) -> str:
        cfg = {"cohere_api_base": cohere_fake.url, "cohere_api_key_plaintext": COHERE_KEY, **config}
        return create(server, ep_name(model.replace(".", "-")), external("cohere", model, task, "cohere_config", cfg))

    return make


# -- AI21 Labs ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ai21_fake() -> Iterator[FakeAI21Thread]:
    with FakeAI21Thread(AI21_KEY) as fake:
        yield fake


@pytest.fixture
def ai21_endpoint(server: LiveServer, ai21_fake: FakeAI21Thread, ep_name: Callable[..., str]) -> Callable[..., str]:
    def make(key: str = AI21_KEY, task: str = "llm/v1/chat", **config: Any) -> str:
        cfg = {"ai21labs_api_base": ai21_fake.url, "ai21labs_api_key_plaintext": key, **config}
        entity = external("ai21labs", "jamba-large", task, "ai21labs_config", cfg)
        return create(server, ep_name(task.rsplit("/", 1)[1]), entity)

    return make


# -- Google Cloud Vertex AI -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def key_pair() -> tuple[str, bytes]:
    """A fresh service-account key: (its private PEM, its public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


@pytest.fixture(scope="module")
def vertex_fake(key_pair: tuple[str, bytes]) -> Iterator[FakeVertexThread]:
    with FakeVertexThread(VERTEX_CLIENT_EMAIL, key_pair[1]) as fake:
        yield fake


def service_account_key(private_pem: str) -> str:
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "proj-1",
            "private_key_id": "k1",
            "private_key": private_pem,
            "client_email": VERTEX_CLIENT_EMAIL,
            "client_id": "1",
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )


@pytest.fixture
def vertex_endpoint(
    server: LiveServer, vertex_fake: FakeVertexThread, key_pair: tuple[str, bytes], ep_name: Callable[..., str]
) -> Callable[..., str]:
    def make(model: str = "gemini-2.5-flash", task: str = "llm/v1/chat", **config: Any) -> str:
        cfg = {
            "project_id": "proj-1",
            "region": "us-central1",
            "private_key_plaintext": service_account_key(key_pair[0]),
            "vertex_api_base": vertex_fake.url,
            "vertex_token_uri": vertex_fake.token_uri,
            **config,
        }
        entity = external("google-cloud-vertex-ai", model, task, "google_cloud_vertex_ai_config", cfg)
        return create(server, ep_name("vx"), entity)

    return make
