"""The Databricks query docs' examples (tests/clients/examples), run as written against a live modelgate.

Only DATABRICKS_HOST, DATABRICKS_TOKEN and ENDPOINT_NAME come from the environment.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clients.conftest import Endpoints, client_env, run_program
from tests.fakes.openai_payloads import embedding_vector
from tests.support.live import LiveServer

EXAMPLES = Path(__file__).parent / "examples"

# (program, client venv, task) ; the task picks the endpoint and what the output must show.
CASES = [
    ("openai_chat.py", "new", "chat"),
    ("openai_completions.py", "new", "completions"),
    ("openai_embeddings.py", "new", "embeddings"),
    ("mlflow_chat.py", "new", "chat"),
    ("mlflow_completions.py", "new", "completions"),
    ("mlflow_embeddings.py", "new", "embeddings"),
    ("sdk_chat.py", "new", "chat"),
    ("sdk_completions.py", "new", "completions"),
    ("sdk_embeddings.py", "new", "embeddings"),
    ("langchain_chat.py", "lc", "chat"),
    ("langchain_embeddings.py", "lc", "embeddings"),
    ("rest_chat.sh", "new", "chat"),
    ("rest_completions.sh", "new", "completions"),
    ("rest_embeddings.sh", "new", "embeddings"),
]

EXPECTED_TEXT = {
    "openai_chat.py": "echo: What is a mixture of experts model?",
    "openai_completions.py": "echo: Write 3 reasons why you should train an AI model on domain specific data sets.",
    "mlflow_chat.py": "echo: What is a mixture of experts model??",
    "mlflow_completions.py": "echo: What is the capital of France?",
    "sdk_chat.py": "RESPONSE:\necho: What is a mixture of experts model?",
    "sdk_completions.py": "RESPONSE:\necho: What is the capital of France?",
    "langchain_chat.py": "echo: What is MLflow?",
}
EMBEDDED_TEXT = {
    "openai_embeddings.py": "what is databricks",
    "mlflow_embeddings.py": "Here is some text to embed",
    "sdk_embeddings.py": "Embed this sentence!",
    "langchain_embeddings.py": "Can you explain AI?",
}


def test_every_example_is_covered() -> None:
    on_disk = {p.name for p in EXAMPLES.iterdir() if p.suffix in (".py", ".sh")}
    assert on_disk == {name for name, _, _ in CASES}


@pytest.mark.parametrize(("program", "venv", "task"), CASES, ids=[c[0] for c in CASES])
def test_docs_example(program: str, venv: str, task: str, server: LiveServer, endpoints: Endpoints) -> None:
    endpoint = getattr(endpoints, task)
    out = run_program(venv, EXAMPLES / program, client_env(server, server.admin_token, ENDPOINT_NAME=endpoint)).strip()
    if program.endswith(".sh"):
        body = json.loads(out)
        if task == "chat":
            assert body["choices"][0]["message"]["content"] == "echo: What is a mixture of experts model?"
        elif task == "completions":
            assert body["choices"][0]["text"] == "echo: What is the capital of France?"
        else:
            assert body["data"][0]["embedding"] == embedding_vector("Embed this sentence!")
    elif program in EMBEDDED_TEXT:
        printed = [float(x) for x in out.strip("[]").split(",")]
        assert printed == pytest.approx(embedding_vector(EMBEDDED_TEXT[program]), abs=1e-6)
    else:
        assert out == EXPECTED_TEXT[program]
