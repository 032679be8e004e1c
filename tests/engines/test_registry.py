"""Registering catalog models over REST and the CLI: validation, sources, persistence, and other processes.

Models here are only registered, not loaded (no endpoint asks for them), except `openai_server` ones, which
start the fake inference server (tests/fakes/fake_inference_server.py) as a child process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from modelgate.engines.catalog import ENGINES, parse_entries, parse_entry
from modelgate.engines.openai_server import command_line
from modelgate.errors import InvalidParameterValue
from tests.control.checks import assert_error
from tests.engines.test_subprocess import API, FAKE, MODELS
from tests.support.live import LiveServer


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hf")
    (folder / "config.json").write_text('{"model_type": "llama"}')
    return folder


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gguf") / "model.gguf"
    path.write_bytes(b"GGUF" + bytes(60))
    return path


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, hf_dir: Path) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("mg-registry")
    config = data_dir / "modelgate.yaml"
    models = [{"name": "from-config", "task": "llm/v1/chat", "engine": "transformers", "path": str(hf_dir)}]
    config.write_text(json.dumps({"models": models}))
    with LiveServer(data_dir, config_file=config) as server:
        yield server


def chat_model(name: str, path: Path, **extra: Any) -> dict[str, Any]:
    return {"name": name, "task": "llm/v1/chat", "engine": "transformers", "path": str(path), **extra}


def fake_server_model(name: str, path: Path, **extra: Any) -> dict[str, Any]:
    command = [sys.executable, FAKE, "--port", "{port}", "--served-model-name", "{served_name}"]
    return {"name": name, "task": "llm/v1/chat", "engine": "openai_server", "path": str(path), "command": command,
            **extra}  # fmt: skip


def cli(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "modelgate", "models", *args, "--data-dir", str(server.data_dir)]
    return subprocess.run(argv, env=server.env, capture_output=True, text=True, timeout=60)


def wait_until(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
    return value


# -- the engine registry and entries ----------------------------------------------------------------


def test_engine_registry_and_entry_defaults(hf_dir: Path) -> None:
    assert set(ENGINES) == {"transformers", "sentence_transformers", "openai_server"}
    assert ENGINES["openai_server"].tasks == ("llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings")
    [entry] = parse_entries([chat_model("x", hf_dir)])
    assert entry.dtype == "auto" and entry.source == "config"
    with pytest.raises(InvalidParameterValue, match=r"unknown engine 'vllm'; this server has: openai_server"):
        parse_entry(chat_model("x", hf_dir, engine="vllm"))
    with pytest.raises(InvalidParameterValue, match="needs exactly one of 'command' and 'preset'"):
        parse_entry({**chat_model("x", hf_dir), "engine": "openai_server"})
    with pytest.raises(InvalidParameterValue, match="options of engine 'openai_server'"):
        parse_entry(chat_model("x", hf_dir, preset="vllm"))
    vllm = parse_entry({**chat_model("llama", hf_dir), "engine": "openai_server", "preset": "vllm"})
    assert command_line(vllm, "/m/llama", 8123) == [
        "vllm", "serve", "/m/llama", "--served-model-name", "llama", "--host", "127.0.0.1", "--port", "8123"
    ]  # fmt: skip
    llama_cpp = vllm.model_copy(update={"preset": "llama-server"})
    assert command_line(llama_cpp, "/m/x.gguf", 9) == [
        "llama-server", "-m", "/m/x.gguf", "--host", "127.0.0.1", "--port", "9", "-np", "8"
    ]  # fmt: skip


# -- REST ---------------------------------------------------------------------------------------------


def test_register_list_get_and_remove_over_rest(live: LiveServer, hf_dir: Path, gguf_file: Path) -> None:
    name = f"reg-{uuid.uuid4().hex[:6]}"
    with live.client() as c:
        created = c.post(MODELS, json=chat_model(name, hf_dir, dtype="bfloat16"))
        assert created.status_code == 200, created.text
        body = created.json()
        assert body["entity_name"] == f"system.ai.{name}" and body["source"] == "registered"
        assert body["dtype"] == "bfloat16" and body["state"] == {"deployment": "NOT_LOADED"}
        assert isinstance(body["creator"], str) and body["creator"]
        assert isinstance(body["creation_timestamp"], int)
        gguf = f"gguf-{uuid.uuid4().hex[:6]}"
        resp = c.post(MODELS, json={**fake_server_model(gguf, gguf_file), "start_timeout_s": 30})
        assert resp.status_code == 200, resp.text
        assert resp.json()["command"][1] == FAKE  # admins see the command line

        listed = {m["name"]: m for m in c.get(MODELS).json()["models"]}
        assert listed[name]["source"] == "registered"
        assert listed["from-config"]["source"] == "config"
        assert listed["all-minilm-l6-v2"]["source"] == "default"
        assert listed["all-minilm-l6-v2"]["task"] == "llm/v1/embeddings"
        assert listed["smollm2-135m-instruct"]["source"] == "default"
        assert listed["smollm2-135m-instruct"]["task"] == "llm/v1/chat"
        one = c.get(f"{MODELS}/system.ai.{name}")
        assert one.status_code == 200 and one.json()["path"] == str(hf_dir)

        assert c.delete(f"{MODELS}/{name}").status_code == 200
        assert c.delete(f"{MODELS}/{gguf}").status_code == 200
        assert_error(c.get(f"{MODELS}/{name}"), 404, "RESOURCE_DOES_NOT_EXIST", contains=f"Model '{name}'")
        assert name not in {m["name"] for m in c.get(MODELS).json()["models"]}


def test_bad_registrations_are_clear_400s(live: LiveServer, hf_dir: Path, gguf_file: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    cases: list[tuple[dict[str, Any], str, str]] = [
        (chat_model("a", tmp_path / "nope"), "INVALID_PARAMETER_VALUE", "does not exist"),
        (chat_model("a", tmp_path / "empty"), "INVALID_PARAMETER_VALUE", "without config.json"),
        (chat_model("a", gguf_file, task="llm/v1/embeddings", engine="sentence_transformers"),
         "INVALID_PARAMETER_VALUE", "loads a Hugging Face model folder"),
        (fake_server_model("a", tmp_path / "notes.txt"), "INVALID_PARAMETER_VALUE", "nor a GGUF file"),
        (chat_model("a", tmp_path / "notes.txt"), "INVALID_PARAMETER_VALUE", "nor a GGUF file"),
        (chat_model("a", hf_dir, engine="vllm"), "INVALID_PARAMETER_VALUE", "unknown engine 'vllm'"),
        (chat_model("a", hf_dir, task="llm/v1/embeddings"), "INVALID_PARAMETER_VALUE", "engine 'transformers' serves"),
        (chat_model("a b", hf_dir), "INVALID_PARAMETER_VALUE", "name"),
        (chat_model("a", hf_dir, colour="red"), "INVALID_PARAMETER_VALUE", "colour"),
        (chat_model("all-minilm-l6-v2", hf_dir), "RESOURCE_ALREADY_EXISTS", "already in the catalog"),
        (chat_model("from-config", hf_dir), "RESOURCE_ALREADY_EXISTS", "already in the catalog"),
    ]
    with live.client() as c:
        for body, code, text in cases:
            assert_error(c.post(MODELS, json=body), 400, code, contains=text)
        assert_error(c.post(MODELS, content=b"[1]"), 400, "BAD_REQUEST")

        name = f"dup-{uuid.uuid4().hex[:6]}"
        assert c.post(MODELS, json=chat_model(name, hf_dir)).status_code == 200
        assert_error(
            c.post(MODELS, json=chat_model(name, hf_dir)), 400, "RESOURCE_ALREADY_EXISTS", contains="remove it"
        )
        # An endpoint name that is taken is refused before anything is stored.
        other = f"taken-{uuid.uuid4().hex[:6]}"
        taken = c.post(MODELS, json=chat_model(other, hf_dir, endpoint=f"ep-{other}"))
        assert taken.status_code == 200, taken.text
        again = c.post(MODELS, json=chat_model(f"third-{other}", hf_dir, endpoint=f"ep-{other}"))
        assert_error(again, 400, "RESOURCE_ALREADY_EXISTS", contains="already exists")
        assert f"third-{other}" not in {m["name"] for m in c.get(MODELS).json()["models"]}

        assert_error(c.delete(f"{MODELS}/from-config"), 400, "INVALID_PARAMETER_VALUE", contains="config file")
        assert_error(c.delete(f"{MODELS}/all-minilm-l6-v2"), 400, "INVALID_PARAMETER_VALUE", contains="built in")
        assert_error(c.delete(f"{MODELS}/never-{uuid.uuid4().hex[:4]}"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_only_admins_register_and_everyone_signed_in_lists(live: LiveServer, hf_dir: Path) -> None:
    token = live.create_token(f"user-{uuid.uuid4().hex[:6]}@example.com")
    with live.client(token) as c:
        assert_error(c.post(MODELS, json=chat_model("mine", hf_dir)), 403, "PERMISSION_DENIED", contains="admins")
        assert_error(c.delete(f"{MODELS}/from-config"), 403, "PERMISSION_DENIED")
        listed = c.get(MODELS)
        assert listed.status_code == 200
        assert all("command" not in m for m in listed.json()["models"])
    assert_error(httpx.get(live.url + MODELS), 401, "UNAUTHENTICATED")


# -- other processes, restarts and the CLI ---------------------------------------------------------------


def test_a_registration_reaches_other_processes_and_survives_a_restart(
    tmp_path: Path, hf_dir: Path, gguf_file: Path
) -> None:
    data_dir = tmp_path / "data"
    first = LiveServer(data_dir).start()
    try:
        second = LiveServer(data_dir, admin_token=first.admin_token).start()
        try:
            with first.client() as c:
                assert c.post(MODELS, json=chat_model("shared", hf_dir)).status_code == 200
            with second.client() as c2:
                # The other process can serve it at once: an endpoint created there names the model.
                ep = c2.post(API, json={"name": "ep-shared", "config": {"served_entities": [
                    {"entity_name": "system.ai.shared", "entity_version": "1"}]}})  # fmt: skip
                assert ep.status_code == 200, ep.text
                # And it lists it, having polled the generation counter.
                wait_until(lambda: "shared" in {m["name"] for m in c2.get(MODELS).json()["models"]})
                assert c2.delete(f"{API}/ep-shared").status_code == 200
                assert c2.delete(f"{MODELS}/shared").status_code == 200
            with first.client() as c:
                wait_until(lambda: "shared" not in {m["name"] for m in c.get(MODELS).json()["models"]})
                assert c.post(MODELS, json=chat_model("kept", hf_dir)).status_code == 200
        finally:
            second.stop()
    finally:
        first.stop()
    with LiveServer(data_dir, admin_token=first.admin_token) as again, again.client() as c:
        kept = c.get(f"{MODELS}/kept")
        assert kept.status_code == 200 and kept.json()["source"] == "registered"


def test_cli_adds_lists_and_removes_and_the_running_server_creates_the_endpoint(
    live: LiveServer, hf_dir: Path, tmp_path: Path
) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    command = f"{sys.executable} {FAKE} --port {{port}} --served-model-name {{served_name}}"
    out = cli(live, "add", name, "--task", "llm/v1/chat", "--engine", "openai_server", "--path", str(hf_dir),
              "--command", command, "--endpoint", f"databricks-{name}")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"registered system.ai.{name}" in out.stdout
    with live.client() as c:
        view = wait_until(lambda: (r := c.get(f"{API}/databricks-{name}")).status_code == 200 and r.json())
        assert view["config"]["served_entities"][0]["entity_name"] == f"system.ai.{name}"
        model = c.get(f"{MODELS}/{name}").json()
        assert model["source"] == "registered" and model["creator"] == "cli"
        assert model["command"][1] == FAKE

    listed = cli(live, "list")
    assert listed.returncode == 0
    assert any(
        line.startswith(f"system.ai.{name}\tllm/v1/chat\topenai_server\t") for line in listed.stdout.splitlines()
    )

    bad = cli(live, "add", "x", "--task", "llm/v1/chat", "--engine", "transformers", "--path", str(tmp_path / "no"))
    assert bad.returncode != 0 and "does not exist" in bad.stderr
    dup = cli(live, "add", name, "--task", "llm/v1/chat", "--engine", "transformers", "--path", str(hf_dir))
    assert dup.returncode != 0 and "already registered" in dup.stderr

    refused = cli(live, "remove", name)
    assert refused.returncode != 0 and f"still served by endpoint(s) databricks-{name}" in refused.stderr
    with live.client() as c:
        assert c.delete(f"{API}/databricks-{name}").status_code == 200
        removed = cli(live, "remove", name)
        assert removed.returncode == 0, removed.stderr
        wait_until(lambda: c.get(f"{MODELS}/{name}").status_code == 404)
        # The endpoint the CLI asked for was made once; deleting it does not bring it back.
        assert c.get(f"{API}/databricks-{name}").status_code == 404


# -- docs/local_models.md -----------------------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "local_models.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def test_the_docs_examples_are_valid(live: LiveServer, hf_dir: Path) -> None:
    blocks = FENCE.findall(DOC.read_text())
    yaml_models = [m for lang, code in blocks if lang == "yaml" for m in yaml.safe_load(code)["models"]]
    engines = {e.engine for e in parse_entries(yaml_models)}
    assert engines == {"transformers", "openai_server"}
    [curl] = [code for lang, code in blocks if lang == "bash" and "/api/2.0/modelgate/models" in code]
    env = {**os.environ, "DATABRICKS_HOST": live.url, "DATABRICKS_TOKEN": live.admin_token}
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", curl.replace("/models/my-llama", str(hf_dir))],
                         env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    registered = json.loads(out.stdout)
    assert (registered["entity_name"], registered["source"]) == ("system.ai.my-llama", "registered")
    with live.client() as c:
        assert c.get(f"{API}/databricks-my-llama").status_code == 200
    [cli_block] = [code for lang, code in blocks if lang == "" and "modelgate models add" in code]
    assert "modelgate models list" in cli_block and "modelgate models remove my-llama" in cli_block
