"""In-process models load one at a time: transformers' first imports race when two threads make them at once
(the built-in chat and embedding models, loading side by side at start, left the chat model FAILED)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from modelgate.engines import catalog
from modelgate.engines.catalog import READY, Deployment, EngineSpec, ModelEntry


class _Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0

    def create(self, entry: ModelEntry, path: str, cache_dir: Path) -> Any:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.2)
        with self.lock:
            self.running -= 1
        return object()


def _load_all(engine: str, count: int, tmp_path: Path) -> list[Deployment]:
    deployments = [
        Deployment(ModelEntry.model_construct(name=f"m{i}", engine=engine, path=str(tmp_path)), tmp_path)
        for i in range(count)
    ]
    for d in deployments:
        d.ensure_started()
    deadline = time.monotonic() + 10
    while any(d.state != READY for d in deployments) and time.monotonic() < deadline:
        time.sleep(0.02)
    return deployments


@pytest.mark.parametrize(("backend", "most"), [("in_process", 1), ("managed_server", 3)])
def test_in_process_loads_take_turns(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, backend: str, most: int) -> None:
    recorder = _Recorder()
    backend_of = catalog._in_process_backend if backend == "in_process" else catalog._proxy_backend
    spec = EngineSpec(("llm/v1/chat",), recorder.create, "hf_folder", backend_of)
    monkeypatch.setitem(catalog.ENGINES, "recorded", spec)
    deployments = _load_all("recorded", 3, tmp_path)
    assert [d.state for d in deployments] == [READY] * 3
    assert recorder.most == most
