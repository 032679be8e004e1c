"""Engine `openai_server` through a live modelgate: a fake OpenAI-compatible server run as a real child process.

The fake (tests/fakes/fake_inference_server.py) is started by modelgate from the model's command line, as vLLM
or llama-server would be; the tests query it with the openai client and watch the child's pids.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.control.checks import assert_error
from tests.support.live import LiveServer

FAKE = str(Path(__file__).resolve().parents[1] / "fakes" / "fake_inference_server.py")
MODELS = "/api/2.0/modelgate/models"
API = "/api/2.0/serving-endpoints"


def fake_command(pid_file: Path, *extra: str) -> list[str]:
    return [sys.executable, FAKE, "--port", "{port}", "--model", "{model_path}", "--served-model-name",
            "{served_name}", "--pid-file", str(pid_file), *extra]  # fmt: skip


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hf-model")
    (folder / "config.json").write_text('{"model_type": "llama"}')
    return folder


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(tmp_path_factory.mktemp("mg-subprocess")) as server:
        yield server


def register(c: httpx.Client, **body: Any) -> dict[str, Any]:
    resp = c.post(MODELS, json=body)
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


def deployment(c: httpx.Client, endpoint: str) -> dict[str, Any]:
    resp = c.get(f"{API}/{endpoint}")
    assert resp.status_code == 200, resp.text
    state: dict[str, Any] = resp.json()["config"]["served_entities"][0]["state"]
    return state


def wait_for(c: httpx.Client, endpoint: str, wanted: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (state := deployment(c, endpoint))["deployment"] != wanted:
        assert time.monotonic() < deadline, f"{endpoint}: {state} (wanted {wanted})"
        time.sleep(0.1)
    return state


def starts(pid_file: Path) -> list[tuple[int, int]]:
    """(pid, port) of each start of the fake so far."""
    if not pid_file.exists():
        return []
    return [(int(p), int(q)) for p, q in (line.split() for line in pid_file.read_text().splitlines())]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as gone.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def wait_gone(pid: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < deadline, f"process {pid} is still running"
        time.sleep(0.1)


def openai_client(server: LiveServer) -> OpenAI:
    return OpenAI(base_url=server.url + "/serving-endpoints", api_key=server.admin_token, max_retries=0)


def test_chat_streaming_and_not_after_the_readiness_wait_then_crash_and_restart(
    live: LiveServer, model_dir: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    name = f"fake-{uuid.uuid4().hex[:6]}"
    endpoint = f"databricks-{name}"
    with live.client() as c:
        created = register(c, name=name, task="llm/v1/chat", engine="openai_server", path=str(model_dir),
                           endpoint=endpoint, command=fake_command(pid_file, "--startup-delay", "3"))  # fmt: skip
        assert created["source"] == "registered" and created["entity_name"] == f"system.ai.{name}"
        # The fake sleeps 3 s before listening: the endpoint is creating and queries get 503 + Retry-After.
        assert deployment(c, endpoint)["deployment"] == "DEPLOYMENT_CREATING"
        early = c.post(
            f"/serving-endpoints/{endpoint}/invocations", json={"messages": [{"role": "user", "content": "x"}]}
        )
        assert_error(early, 503, "TEMPORARILY_UNAVAILABLE", contains="still starting")
        assert early.headers["retry-after"] == "5"
        assert c.get(f"{API}/{endpoint}").json()["state"]["ready"] == "NOT_READY"
        wait_for(c, endpoint, "DEPLOYMENT_READY")
        assert c.get(f"{API}/{endpoint}").json()["state"]["ready"] == "READY"

        client = openai_client(live)
        messages: Any = [{"role": "user", "content": "hello there world"}]
        answer = client.chat.completions.create(model=endpoint, messages=messages, max_tokens=16)
        assert answer.choices[0].message.content == "echo: hello there world"
        assert answer.choices[0].finish_reason == "stop"
        assert answer.usage is not None and answer.usage.completion_tokens == 4
        chunks = list(client.chat.completions.create(model=endpoint, messages=messages, max_tokens=16, stream=True))
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert text == "echo: hello there world"
        assert len([ch for ch in chunks if ch.choices and ch.choices[0].delta.content]) == 4  # one per word
        assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
        short = client.chat.completions.create(model=endpoint, messages=messages, max_tokens=2)
        assert short.choices[0].finish_reason == "length"

        [(pid, port)] = starts(pid_file)
        info = httpx.get(f"http://127.0.0.1:{port}/__control/info").json()
        assert info["model_path"] == str(model_dir) and info["served_name"] == name
        assert all(r["body"]["model"] == name for r in info["requests"])  # the served name went upstream

        # The process dies: the deployment restarts it (503 + Retry-After meanwhile), then queries work again.
        assert httpx.post(f"http://127.0.0.1:{port}/__control/exit").status_code == 200
        state = wait_for(c, endpoint, "DEPLOYMENT_CREATING", timeout=10)
        assert "exited with code 3" in state["deployment_state_message"]
        during = c.post(f"/serving-endpoints/{endpoint}/invocations", json={"messages": messages})
        assert_error(during, 503, "TEMPORARILY_UNAVAILABLE", contains="restarting")
        assert during.headers["retry-after"] == "5"
        wait_for(c, endpoint, "DEPLOYMENT_READY")
        again = client.chat.completions.create(model=endpoint, messages=messages)
        assert again.choices[0].message.content == "echo: hello there world"
        (_, _), (new_pid, _) = starts(pid_file)
        assert new_pid != pid and not alive(pid)

        # An endpoint still serves it: removing the model is refused; once the endpoint is gone, it is removed
        # and its process stopped.
        refused = c.delete(f"{MODELS}/{name}")
        assert_error(refused, 400, "INVALID_PARAMETER_VALUE", contains=f"still served by endpoint(s) {endpoint}")
        assert c.delete(f"{API}/{endpoint}").status_code == 200
        assert c.delete(f"{MODELS}/{name}").status_code == 200
        wait_gone(new_pid)
        assert_error(c.get(f"{MODELS}/{name}"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_completions_and_embeddings_are_proxied(live: LiveServer, model_dir: Path, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    with live.client() as c:
        for task in ("completions", "embeddings"):
            register(c, name=f"{task}-{tag}", task=f"llm/v1/{task}", engine="openai_server", path=str(model_dir),
                     endpoint=f"{task}-{tag}", command=fake_command(tmp_path / task))  # fmt: skip
        wait_for(c, f"completions-{tag}", "DEPLOYMENT_READY")
        wait_for(c, f"embeddings-{tag}", "DEPLOYMENT_READY")
    client = openai_client(live)
    done = client.completions.create(model=f"completions-{tag}", prompt="one two", max_tokens=8)
    assert done.choices[0].text == "echo: one two" and done.choices[0].finish_reason == "stop"
    streamed = list(client.completions.create(model=f"completions-{tag}", prompt="one two", max_tokens=8, stream=True))
    assert "".join(ch.choices[0].text for ch in streamed if ch.choices) == "echo: one two"
    emb = client.embeddings.create(model=f"embeddings-{tag}", input=["a", "bbb"])
    assert [len(d.embedding) for d in emb.data] == [8, 8]
    assert emb.data[0].embedding != emb.data[1].embedding
    with live.client() as c:  # a chat request to an embeddings model is a clear 400
        wrong = c.post(
            f"/serving-endpoints/embeddings-{tag}/invocations", json={"messages": [{"role": "user", "content": "x"}]}
        )
        assert wrong.status_code == 400, wrong.text


def test_a_command_that_fails_at_start_fails_the_deployment_with_its_output(
    live: LiveServer, model_dir: Path, tmp_path: Path
) -> None:
    name = f"nogpu-{uuid.uuid4().hex[:6]}"
    with live.client() as c:
        command = fake_command(tmp_path / "pids", "--fail", "CUDA error: no CUDA-capable device is detected")
        register(c, name=name, task="llm/v1/chat", engine="openai_server", path=str(model_dir), endpoint=name,
                 command=command)  # fmt: skip
        state = wait_for(c, name, "DEPLOYMENT_FAILED")
        message = state["deployment_state_message"]
        assert message.startswith("The inference server exited with code 1 before it was ready.")
        assert message.endswith("ERROR: CUDA error: no CUDA-capable device is detected")
        resp = c.post(f"/serving-endpoints/{name}/invocations", json={"messages": [{"role": "user", "content": "x"}]})
        assert_error(resp, 503, "TEMPORARILY_UNAVAILABLE", contains="no CUDA-capable device")
        listed = {m["name"]: m for m in c.get(MODELS).json()["models"]}
        assert listed[name]["state"]["deployment"] == "DEPLOYMENT_FAILED"

        missing = f"missing-{uuid.uuid4().hex[:6]}"
        register(c, name=missing, task="llm/v1/chat", engine="openai_server", path=str(model_dir), endpoint=missing,
                 command=["/nonexistent/vllm", "serve", "{model_path}", "--port", "{port}"])  # fmt: skip
        state = wait_for(c, missing, "DEPLOYMENT_FAILED")
        assert "'/nonexistent/vllm' could not be started" in state["deployment_state_message"]


def test_a_server_that_is_not_ready_in_time_is_stopped_and_fails(
    live: LiveServer, model_dir: Path, tmp_path: Path
) -> None:
    name = f"slow-{uuid.uuid4().hex[:6]}"
    pid_file = tmp_path / "pids"
    with live.client() as c:
        register(c, name=name, task="llm/v1/chat", engine="openai_server", path=str(model_dir), endpoint=name,
                 start_timeout_s=1, command=fake_command(pid_file, "--startup-delay", "60"))  # fmt: skip
        state = wait_for(c, name, "DEPLOYMENT_FAILED")
        assert "was not ready within 1s (start_timeout_s)" in state["deployment_state_message"]
        assert "fake inference server: loading" in state["deployment_state_message"]
    [(pid, _port)] = starts(pid_file)
    wait_gone(pid)


def test_shutdown_stops_the_child_process(tmp_path: Path, model_dir: Path) -> None:
    pid_file = tmp_path / "pids"
    with LiveServer(tmp_path / "data") as server, server.client() as c:
        register(c, name="child", task="llm/v1/chat", engine="openai_server", path=str(model_dir),
                 endpoint="databricks-child", command=fake_command(pid_file))  # fmt: skip
        wait_for(c, "databricks-child", "DEPLOYMENT_READY")
        [(pid, _port)] = starts(pid_file)
        assert alive(pid)
    wait_gone(pid, timeout=5)
