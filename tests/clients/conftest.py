"""Fixtures of the client compatibility suite: client virtualenvs, shared endpoints, and a runner for snippets.

Real, unmodified clients run in their own virtualenvs (two client generations cannot share one; see
scripts/client-venvs.sh), in subprocesses, against the session's live `modelgate serve`. Each snippet prints
one JSON object on its last line of stdout; tests assert on it and on what reached the fake upstream.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer, create_endpoint, external_chat_config

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).parent / "scripts"
VENVS = {"new": ROOT / ".venv-clients-new", "lc": ROOT / ".venv-clients-lc"}
CONSTRAINTS = {"new": ROOT / "constraints/clients-new.txt", "lc": ROOT / "constraints/clients-langchain.txt"}
SNIPPET_TIMEOUT_S = 180


def _venv_ready(name: str) -> bool:
    import hashlib

    stamp = VENVS[name] / ".constraints.sha256"
    if not stamp.exists() or not (VENVS[name] / "bin/python").exists():
        return False
    return stamp.read_text().strip() == hashlib.sha256(CONSTRAINTS[name].read_bytes()).hexdigest()


def _unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def client_python(name: str) -> Path:
    """The client venv's python, building the venv first when it is missing or stale (minutes, once)."""
    if not _venv_ready(name):
        proc = subprocess.run(
            [str(ROOT / "scripts/client-venvs.sh"), name], capture_output=True, text=True, timeout=1800, check=False
        )
        if proc.returncode != 0 or not _venv_ready(name):
            _unavailable(
                f"client virtualenv {VENVS[name].name} could not be built (no package index?): "
                f"{(proc.stderr or proc.stdout)[-1500:]}"
            )
    return VENVS[name] / "bin/python"


@dataclass
class Endpoints:
    chat: str
    completions: str
    embeddings: str


@pytest.fixture(scope="session")
def endpoints(server: LiveServer, upstream: FakeUpstreamThread) -> Endpoints:
    """One chat, one completions and one embeddings endpoint for the whole suite (names unique to this run)."""
    tag = "cl-" + secrets.token_hex(3)
    names = Endpoints(f"{tag}-chat", f"{tag}-completions", f"{tag}-embeddings")
    with server.client() as c:
        create_endpoint(c, names.chat, external_chat_config(upstream.base_url, "gpt-4o-mini", entity_name="chat"))
        create_endpoint(
            c,
            names.completions,
            external_chat_config(upstream.base_url, "gpt-3.5-turbo-instruct", task="llm/v1/completions"),
        )
        create_endpoint(
            c,
            names.embeddings,
            external_chat_config(upstream.base_url, "text-embedding-3-small", task="llm/v1/embeddings"),
        )
    return names


def client_env(server: LiveServer, token: str | None = None, **extra: str) -> dict[str, str]:
    """A clean environment: no inherited DATABRICKS_*/OPENAI_* settings, no ~/.databrickscfg, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "OPENAI_", "MLFLOW_"))}
    env.update(
        DATABRICKS_HOST=server.url,
        HOME=str(server.data_dir / "client-home"),
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        PYTHONWARNINGS="ignore",
        PYTHONPATH="",
    )
    if token is not None:
        env["DATABRICKS_TOKEN"] = token
    env.update(extra)
    return env


def run_script(venv: str, script: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run a client program in a client venv; return the JSON object it printed last."""
    python = client_python(venv)
    Path(env["HOME"]).mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [str(python), str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=SNIPPET_TIMEOUT_S,
        check=False,
        cwd=str(script.parent),
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        raise AssertionError(
            f"{script.name} in {venv} exited {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n"
            f"--- stderr\n{proc.stderr[-5000:]}"
        )
    try:
        out: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{script.name} did not end with a JSON line: {lines[-1][:500]}") from exc
    return out


@pytest.fixture
def clean_upstream(upstream: FakeUpstreamThread) -> Iterator[FakeUpstreamThread]:
    upstream.reset()
    yield upstream
    upstream.reset()


def run_program(venv: str, program: Path, env: dict[str, str]) -> str:
    """Run an example program as written (python in a client venv, or bash for curl); return its stdout."""
    cmd = ["bash", str(program)] if program.suffix == ".sh" else [str(client_python(venv)), str(program)]
    Path(env["HOME"]).mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=SNIPPET_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise AssertionError(
            f"{program.name} exited {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n"
            f"--- stderr\n{proc.stderr[-5000:]}"
        )
    return proc.stdout


@dataclass
class ServicePrincipal:
    scim_id: str
    client_id: str
    secret: str


def make_service_principal(server: LiveServer, name: str) -> ServicePrincipal:
    with server.client() as c:
        resp = c.post("/api/2.0/preview/scim/v2/ServicePrincipals", json={"displayName": name})
        assert resp.status_code == 201, resp.text
        sp = resp.json()
        resp = c.post(f"/api/2.0/accounts/servicePrincipals/{sp['id']}/credentials/secrets", json={})
        assert resp.status_code == 200, resp.text
        return ServicePrincipal(sp["id"], sp["applicationId"], resp.json()["secret"])


def grant(server: LiveServer, endpoint: str, sp: ServicePrincipal, level: str) -> None:
    with server.client() as c:
        ep_id = c.get(f"/api/2.0/serving-endpoints/{endpoint}").json()["id"]
        acl = [{"service_principal_name": sp.client_id, "permission_level": level}]
        resp = c.patch(f"/api/2.0/permissions/serving-endpoints/{ep_id}", json={"access_control_list": acl})
        assert resp.status_code == 200, resp.text
