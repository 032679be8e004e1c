"""GGUF files as model paths of the transformers engine: converted once to a bf16 folder, cached, served.

The file is the tiny random Llama written with the `gguf` package's writer (conftest.write_tiny_gguf).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path

import pytest

from modelgate.engines import gguf_checkpoint
from modelgate.engines.catalog import READY, LocalCatalog, parse_entries
from modelgate.engines.gguf_checkpoint import hf_folder_for
from modelgate.protocol.chat import ChatRequest
from tests.engines.test_engines import wait_ready
from tests.engines.test_live import wait_deployment
from tests.engines.test_subprocess import MODELS
from tests.support.live import LiveServer


def test_a_gguf_file_becomes_a_bf16_folder_of_the_same_model(tiny_llama: Path, tiny_gguf: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = hf_folder_for(tiny_gguf, tmp_path)
    assert folder.parent == tmp_path / "gguf" and folder.name.startswith("tiny-llama-")
    config = json.loads((folder / "config.json").read_text())
    assert config["dtype"] == "bfloat16" and config["tie_word_embeddings"] is True  # the file has no output tensor
    assert not [p for p in folder.parent.iterdir() if p.name.endswith(".tmp")]

    source, copy = AutoTokenizer.from_pretrained(tiny_llama), AutoTokenizer.from_pretrained(folder)
    text = "The cat jumps over the fence"
    assert copy(text)["input_ids"] == source(text)["input_ids"]
    chat = [{"role": "user", "content": "hi"}]
    assert copy.apply_chat_template(chat, tokenize=False) == source.apply_chat_template(chat, tokenize=False)
    assert (copy.eos_token, copy.pad_token) == (source.eos_token, source.pad_token)

    ids = torch.tensor([source(text)["input_ids"]])
    with torch.no_grad():
        want = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)(ids).logits
        got = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)(ids).logits
    assert (got - want).abs().max() < 0.02  # bf16 rounding of the weights; q/k un-permuted right
    assert torch.equal(got.argmax(-1), want.argmax(-1))


def test_the_copy_is_reused_and_a_changed_file_gets_a_new_one(
    tiny_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(tiny_gguf.read_bytes())
    first = hf_folder_for(gguf, tmp_path / "cache")

    def no_conversion(path: Path, out: Path) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(gguf_checkpoint, "convert", no_conversion)
    assert hf_folder_for(gguf, tmp_path / "cache") == first  # a restart reuses the copy
    st = gguf.stat()
    os.utime(gguf, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # the file changed
    with pytest.raises(AssertionError, match="converted again"):
        hf_folder_for(gguf, tmp_path / "cache")


def test_a_failed_conversion_leaves_nothing_behind(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(Exception):  # noqa: B017 (whatever the GGUF reader raises)
        hf_folder_for(bad, tmp_path / "cache")
    assert list((tmp_path / "cache" / "gguf").iterdir()) == []


def test_the_catalog_serves_a_gguf_path(tiny_gguf: Path, tmp_path: Path) -> None:
    entries = parse_entries([{"name": "g", "task": "llm/v1/chat", "engine": "transformers", "path": str(tiny_gguf)}])
    catalog = LocalCatalog(entries, cache_dir=tmp_path)
    backend = catalog.backend("system.ai.g", "1")
    assert wait_ready(catalog, "system.ai.g") == (READY, None)
    request = ChatRequest.model_validate(
        {"messages": [{"role": "user", "content": "the cat"}], "max_tokens": 4, "temperature": 0}
    )
    answer = asyncio.run(backend.chat(request))
    assert answer["usage"]["completion_tokens"] == 4
    assert [p.name for p in (tmp_path / "gguf").iterdir()] == [hf_folder_for(tiny_gguf, tmp_path).name]
    asyncio.run(catalog.close())


def test_a_gguf_path_registered_over_rest_is_served(server: LiveServer, tiny_gguf: Path) -> None:
    name = f"gguf-{uuid.uuid4().hex[:6]}"
    body = {"name": name, "task": "llm/v1/chat", "engine": "transformers", "path": str(tiny_gguf),
            "endpoint": f"databricks-{name}"}  # fmt: skip
    with server.client() as c:
        created = c.post(MODELS, json=body)
        assert created.status_code == 200, created.text
        assert wait_deployment(c, f"databricks-{name}") == {"deployment": "DEPLOYMENT_READY"}
        chat = {"messages": [{"role": "user", "content": "the dog"}], "max_tokens": 3, "temperature": 0}
        resp = c.post(f"/serving-endpoints/databricks-{name}/invocations", json=chat)
        assert resp.status_code == 200, resp.text
        assert resp.json()["usage"]["completion_tokens"] == 3
        # The bf16 copy lives in the server's data dir, where a restart finds it.
        assert [p.name for p in (server.data_dir / "models" / "gguf").iterdir() if p.name.startswith("tiny-llama-")]
        assert c.delete(f"/api/2.0/serving-endpoints/databricks-{name}").status_code == 200
        assert c.delete(f"{MODELS}/{name}").status_code == 200
