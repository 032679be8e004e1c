"""A real `modelgate serve` process for tests, on a free port with its own data dir."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def new_pat() -> str:
    return "dapi" + secrets.token_hex(16)


class LiveServer:
    def __init__(
        self,
        data_dir: Path,
        *,
        database_url: str | None = None,
        config_file: Path | None = None,
        env: dict[str, str] | None = None,
        admin_token: str | None = None,
        extra_args: list[str] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.start_timeout = start_timeout
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token = admin_token or new_pat()
        self.log_path = data_dir / "server.log"
        self.env = {
            **os.environ,
            "MODELGATE_ADMIN_TOKEN": self.admin_token,
            "PYTHONUNBUFFERED": "1",
            # Test servers start with no endpoints unless a test asks for the built-in embedding one.
            "MODELGATE_EXPOSE_DEFAULT_MODELS": "0",
            **(env or {}),
        }
        if database_url:
            self.env["MODELGATE_DATABASE_URL"] = database_url
        else:
            self.env.pop("MODELGATE_DATABASE_URL", None)
        self.args = [
            sys.executable, "-m", "modelgate", "serve",
            "--port", str(self.port), "--data-dir", str(data_dir), "--log-level", "warning",
        ]  # fmt: skip
        if config_file is not None:
            self.args += ["--config", str(config_file)]
        self.args += extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float | None = None) -> LiveServer:
        timeout = timeout or self.start_timeout
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"modelgate exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"modelgate did not become healthy in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- conveniences -----------------------------------------------------------------------------
    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def create_token(self, user: str, *, admin: bool = False) -> str:
        """A token for `user` (created if new), made with the CLI against this server's store."""
        args = [sys.executable, "-m", "modelgate", "tokens", "create", "--user", user, "--data-dir", str(self.data_dir)]
        if admin:
            args.append("--admin")
        out = subprocess.run(args, env=self.env, check=True, capture_output=True, text=True)
        return out.stdout.strip()


def external_chat_config(
    upstream_base: str,
    model: str = "gpt-4o-mini",
    *,
    task: str = "llm/v1/chat",
    api_key: str = "sk-upstream-test",
    entity_name: str | None = None,
) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "external_model": {
            "name": model,
            "provider": "openai",
            "task": task,
            "openai_config": {"openai_api_base": upstream_base, "openai_api_key_plaintext": api_key},
        }
    }
    if entity_name:
        entity["name"] = entity_name
    return entity


def create_endpoint(client: httpx.Client, name: str, *entities: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {"name": name, "config": {"served_entities": list(entities)}, **extra}
    resp = client.post("/api/2.0/serving-endpoints", json=body)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data
