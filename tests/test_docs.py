"""The examples in README.md and docs/*.md run as written, with only host, token and upstream substituted."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
SETUP_MARKERS = ("./scripts/", ".modelgate/admin-token", "export DATABRICKS_HOST", "pip install")


def runnable_blocks(doc: Path) -> list[tuple[str, str]]:
    blocks = []
    for lang, code in FENCE.findall(doc.read_text()):
        if lang in ("bash", "python") and not any(m in code for m in SETUP_MARKERS):
            blocks.append((lang, code))
    return blocks


def yaml_blocks(doc: Path) -> list[str]:
    return [code for lang, code in FENCE.findall(doc.read_text()) if lang == "yaml"]


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCS_WITH_EXAMPLES = [d for d in DOCS if d.name in ("README.md", "serving.md", "ai_gateway.md", "security.md")]


@pytest.fixture(scope="module")
def doc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(tmp_path_factory.mktemp("mg-docs")) as live:
        yield live


def _env(server: LiveServer, upstream: FakeUpstreamThread) -> dict[str, str]:
    return {
        **os.environ,
        "DATABRICKS_HOST": server.url,
        "DATABRICKS_TOKEN": server.admin_token,
        "OPENAI_API_BASE": upstream.base_url,
        "OPENAI_API_KEY": UPSTREAM_KEY,
    }


@pytest.mark.parametrize("doc", DOCS_WITH_EXAMPLES, ids=lambda d: d.name)
def test_examples_run(
    doc: Path, tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstreamThread, request: pytest.FixtureRequest
) -> None:
    blocks = runnable_blocks(doc)
    assert blocks, f"{doc.name} has no runnable examples"
    if doc.name == "ai_gateway.md":  # it configures the README's endpoint, so create that first
        readme = runnable_blocks(ROOT / "README.md")
        blocks = [next(b for b in readme if "api/2.0/serving-endpoints" in b[1]), *blocks]
    # The README queries the built-in chat and embedding models, which test servers leave out unless asked.
    server_env = request.getfixturevalue("builtin_models_env") if doc.name == "README.md" else None
    # The examples run where a reader would: a folder whose .venv is the one modelgate is installed in (the
    # README calls .venv/bin/modelgate), and where the files they write (reviews.parquet) do not land in the repo.
    workdir = tmp_path_factory.mktemp("mg-doc-cwd-" + doc.stem)
    (workdir / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    with LiveServer(tmp_path_factory.mktemp("mg-doc-" + doc.stem), env=server_env) as server:
        env = _env(server, upstream)
        for i, (lang, code) in enumerate(blocks):
            cmd = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
            # 180 s: the README's first example waits for the built-in models to load.
            out = subprocess.run(cmd, env=env, cwd=workdir, capture_output=True, text=True, timeout=180)
            where = f"{doc.name} example {i + 1} ({lang}):\n{code}\n--- stdout\n{out.stdout}\n--- stderr\n{out.stderr}"
            assert out.returncode == 0, where
            assert "error_code" not in out.stdout, where
            assert out.stdout.strip(), where


def test_readme_sql_example_summarizes_each_review(
    upstream: FakeUpstreamThread, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The README's `modelgate sql` example runs as written on a plain install (no extra to add): it writes its
    reviews.parquet, then asks the endpoint once per row (the fake echoes each prompt)."""
    readme = runnable_blocks(ROOT / "README.md")
    create = next(code for _, code in readme if "api/2.0/serving-endpoints" in code)
    [sql] = [code for _, code in readme if "modelgate sql" in code]
    workdir = tmp_path_factory.mktemp("mg-readme-sql")
    (workdir / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    with LiveServer(tmp_path_factory.mktemp("mg-readme-sql-data")) as server:
        env = _env(server, upstream)
        subprocess.run(["bash", "-c", create], env=env, check=True, capture_output=True)
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", sql], env=env, cwd=workdir, capture_output=True,
                             text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "echo: Summarize: Great battery, weak speaker." in out.stdout
    assert "echo: Summarize: Arrived broken." in out.stdout
    assert "2 rows" in out.stdout


def test_readme_query_answers(upstream: FakeUpstreamThread, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The README's OpenAI example prints the model's answer (the fake echoes the question)."""
    blocks = [code for lang, code in runnable_blocks(ROOT / "README.md") if lang == "python"]
    creates = [code for lang, code in runnable_blocks(ROOT / "README.md") if "api/2.0/serving-endpoints" in code]
    with LiveServer(tmp_path_factory.mktemp("mg-readme")) as server:
        env = _env(server, upstream)
        subprocess.run(["bash", "-c", creates[0]], env=env, check=True, capture_output=True)
        out = subprocess.run([sys.executable, "-c", blocks[0]], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "echo: What is a mixture of experts model?"


def test_config_file_example_is_valid(tmp_path: Path, upstream: FakeUpstreamThread) -> None:
    """The YAML example in docs/serving.md starts a server whose endpoint answers."""
    (yaml_text,) = yaml_blocks(ROOT / "docs" / "serving.md")
    config = tmp_path / "endpoints.yaml"
    # Point the example at the fake upstream instead of api.openai.com; nothing else changes.
    config.write_text(
        yaml_text.replace("openai_config:\n", f"openai_config:\n              openai_api_base: {upstream.base_url}\n")
    )
    with (
        LiveServer(tmp_path / "data", config_file=config, env={"OPENAI_API_KEY": UPSTREAM_KEY}) as server,
        server.client() as c,
    ):
        resp = c.post(
            "/serving-endpoints/team-chat/invocations", json={"messages": [{"role": "user", "content": "hi"}]}
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["choices"][0]["message"]["content"] == "echo: hi"
        assert c.get("/api/2.0/serving-endpoints/team-chat").json()["tags"] == [{"key": "team", "value": "search"}]


def test_every_setting_is_documented() -> None:
    """Each MODELGATE_* variable the code reads appears in the README's settings table."""
    readme = (ROOT / "README.md").read_text()
    code = "\n".join(p.read_text() for p in (ROOT / "src" / "modelgate").rglob("*.py"))
    names = set(re.findall(r'"(MODELGATE_[A-Z_]+)"', code))
    assert names, "no settings found"
    missing = sorted(n for n in names if n not in readme)
    assert not missing, f"settings missing from the README: {missing}"


def test_docs_agree_with_the_code_on_the_built_in_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in embedding endpoint is on unless MODELGATE_EXPOSE_DEFAULT_MODELS=0: every page says so."""
    from modelgate.engines.exposure import EXPOSE_DEFAULTS_ENV, exposes_defaults

    monkeypatch.delenv(EXPOSE_DEFAULTS_ENV, raising=False)
    assert exposes_defaults()
    [row] = [ln for ln in (ROOT / "README.md").read_text().splitlines() if ln.startswith(f"| `{EXPOSE_DEFAULTS_ENV}`")]
    assert row.split("|")[2].strip() == "on"
    for doc in DOCS:
        text = doc.read_text()
        assert f"{EXPOSE_DEFAULTS_ENV}=1" not in text, f"{doc.name} says the endpoint must be switched on"
        if EXPOSE_DEFAULTS_ENV in text and doc.name != "README.md":
            assert f"{EXPOSE_DEFAULTS_ENV}=0" in text, f"{doc.name} names the setting but not how to turn it off"


def test_ai_gateway_examples_are_cumulative() -> None:
    """A PUT .../ai-gateway replaces the whole config, so each example keeps everything the one before set
    (a reader who runs them in turn would otherwise lose usage tracking, the inference table, the limits)."""
    doc = (ROOT / "docs" / "ai_gateway.md").read_text()
    assert "A PUT replaces the endpoint's whole AI Gateway config" in doc
    bodies = [json.loads(m) for m in re.findall(r"-X PUT \S+/ai-gateway -d '(\{.*?\})'", doc, re.S)]
    assert len(bodies) >= 2
    for before, after in itertools.pairwise(bodies):
        assert {k: after.get(k) for k in before} == before


def test_readme_python_examples_say_what_to_install() -> None:
    """A README snippet that imports a package the server's .venv lacks says, just before it, to install it."""
    import ast

    text = (ROOT / "README.md").read_text()
    for match in FENCE.finditer(text):
        if match[1] != "python":
            continue
        lead = text[: match.start()].rstrip().rsplit("\n\n", 1)[-1]
        modules = set()
        for node in ast.walk(ast.parse(match[2])):
            if isinstance(node, ast.Import):
                modules |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules.add(node.module.split(".")[0])
        for module in sorted(modules - set(sys.stdlib_module_names) - {"modelgate"}):
            assert f"pip install {module}" in lead, f"the README's {module} example does not say to install it"
