"""`modelgate serve --config FILE`: endpoints declared in YAML, secrets only as references."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelgate import cli
from tests.control.checks import API, assert_error, chat_body
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer, free_port, new_pat

KEY_VAR = "MG_TEST_CONFIG_UPSTREAM_KEY"
UNSET_VAR = "MG_TEST_CONFIG_NEVER_SET"


def _endpoint_yaml(name: str, base_url: str, key_field: str, key_value: str) -> str:
    return f"""
  - name: {name}
    tags:
      - key: source
        value: config-file
    config:
      served_entities:
        - name: main
          external_model:
            name: gpt-4o-mini
            provider: openai
            task: llm/v1/chat
            openai_config:
              openai_api_base: {base_url}
              {key_field}: "{key_value}"
"""


def _serve_and_fail(tmp_path: Path, config: Path) -> subprocess.CompletedProcess[str]:
    """Run `modelgate serve --config` expecting it to refuse; fail the test if it keeps serving."""
    live = LiveServer(tmp_path / "data", config_file=config)
    args = [*live.args]
    args[args.index("--port") + 1] = str(free_port())
    try:
        return subprocess.run(args, env=live.env, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"modelgate serve accepted {config.name} and kept running")


def test_config_file_endpoints_are_created_idempotently_with_env_secrets(tmp_path: Path) -> None:
    key = "sk-from-env-" + secrets.token_hex(8)
    name, broken = "cfg-chat", "cfg-unset-key"
    with FakeUpstreamThread(api_key=key) as upstream:
        config = tmp_path / "endpoints.yaml"
        config.write_text(
            "endpoints:"
            + _endpoint_yaml(name, upstream.base_url, "openai_api_key", "{{env/" + KEY_VAR + "}}")
            + _endpoint_yaml(broken, upstream.base_url, "openai_api_key", "{{env/" + UNSET_VAR + "}}")
        )
        env = {KEY_VAR: key}
        data_dir = tmp_path / "data"
        with LiveServer(data_dir, config_file=config, env=env) as first, first.client() as c:
            ep = c.get(f"{API}/{name}")
            assert ep.status_code == 200, ep.text
            first_view = ep.json()
            assert first_view["creator"] == "admin"
            assert first_view["tags"] == [{"key": "source", "value": "config-file"}]
            openai_config = first_view["config"]["served_entities"][0]["external_model"]["openai_config"]
            assert openai_config["openai_api_key"] == "{{env/" + KEY_VAR + "}}"

            resp = c.post(f"/serving-endpoints/{name}/invocations", json=chat_body("from yaml"))
            assert resp.status_code == 200, resp.text
            assert resp.json()["choices"][0]["message"]["content"] == "echo: from yaml"
            sent = [r for r in upstream.requests if r.path == "/v1/chat/completions"]
            assert len(sent) == 1
            assert sent[0].headers["authorization"] == f"Bearer {key}"

            # A reference to a variable the server lacks fails the query, naming the variable, not the value.
            unset = c.post(f"/serving-endpoints/{broken}/invocations", json=chat_body())
            assert_error(unset, 503, "TEMPORARILY_UNAVAILABLE", contains=UNSET_VAR)
            assert key not in first.log()

        with LiveServer(data_dir, config_file=config, env=env) as second, second.client() as c:
            listed = [e["name"] for e in c.get(API).json()["endpoints"]]
            assert sorted(listed) == sorted([name, broken])
            again = c.get(f"{API}/{name}").json()
            assert again["id"] == first_view["id"]
            assert again["creation_timestamp"] == first_view["creation_timestamp"]
            assert again["tags"] == first_view["tags"]
            assert (
                again["config"]["served_entities"][0]["external_model"]
                == (first_view["config"]["served_entities"][0]["external_model"])
            )
            resp = c.post(f"/serving-endpoints/{name}/invocations", json=chat_body("after restart"))
            assert resp.status_code == 200, resp.text
        assert len([r for r in upstream.requests if r.path == "/v1/chat/completions"]) == 2


def test_plaintext_secret_in_config_file_stops_the_process(tmp_path: Path) -> None:
    config = tmp_path / "endpoints.yaml"
    config.write_text(
        "endpoints:" + _endpoint_yaml("cfg-plain", "http://127.0.0.1:9/v1", "openai_api_key_plaintext", "sk-oops")
    )
    out = _serve_and_fail(tmp_path, config)
    assert out.returncode != 0
    output = out.stdout + out.stderr
    assert "endpoints[0].config.served_entities[0].external_model.openai_config.openai_api_key_plaintext" in output
    assert "{{env/<NAME>}}" in output  # says what to write instead
    assert "sk-oops" not in output
    assert "Traceback" not in output


REFUSED = [
    pytest.param("endpoints: [\n", "cannot read config file", id="not-yaml"),
    pytest.param("- name: x\n", "top level must be a mapping", id="top-level-list"),
    pytest.param("endpoint:\n  - name: x\n", "unknown top-level keys ['endpoint']", id="unknown-top-level-key"),
    pytest.param("endpoints:\n  - name: 'bad name'\n", "endpoints[0]: name", id="bad-endpoint-name"),
    pytest.param("endpoints:\n  - tags: []\n", "missing required field 'name'", id="no-name"),
    pytest.param(
        "endpoints:\n  - name: x\n    config:\n      served_entities:\n        - custom_provider_config:\n"
        "            bearer_token_auth: {token_plaintext: sk-oops}\n",
        "bearer_token_auth.token_plaintext",
        id="nested-plaintext",
    ),
    pytest.param(
        "endpoints:\n  - name: x\n    config:\n      served_entities:\n        - external_model:\n"
        "            name: m\n            provider: openai\n            task: llm/v1/chat\n"
        "            openai_config: {openai_api_key: '{{env/MODELGATE_ADMIN_TOKEN}}'}\n",
        "openai_config.openai_api_key: environment variable 'MODELGATE_ADMIN_TOKEN' holds modelgate's own "
        "credentials and can never be referenced",
        id="env-reference-to-modelgate-s-own-token",
    ),
]


@pytest.mark.parametrize(("text", "message"), REFUSED)
def test_bad_config_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    """The same checks through the CLI in-process (a subprocess each would only add start-up time)."""
    config = tmp_path / "endpoints.yaml"
    config.write_text(text)
    env = {"MODELGATE_ADMIN_TOKEN": new_pat(), "MODELGATE_DATABASE_URL": ""}
    args = ["serve", "--port", "9", "--data-dir", str(tmp_path / "data"), "--config", str(config)]
    result = CliRunner().invoke(cli.main, args, env=env)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "sk-oops" not in result.output
    assert not (tmp_path / "data").exists()  # refused before touching the store


def test_config_the_server_rejects_stops_startup(tmp_path: Path) -> None:
    """Valid YAML the endpoint service refuses (an unknown provider) aborts startup, saying why."""
    config = tmp_path / "endpoints.yaml"
    config.write_text(
        "endpoints:\n  - name: cfg-acme\n    config:\n      served_entities:\n        - external_model:\n"
        "            name: m\n            provider: acme\n            task: llm/v1/chat\n"
    )
    out = _serve_and_fail(tmp_path, config)
    assert out.returncode != 0
    assert "Unknown external model provider 'acme'" in out.stdout + out.stderr


def test_config_option_needs_an_existing_file(tmp_path: Path) -> None:
    out = _serve_and_fail(tmp_path, tmp_path / "missing.yaml")
    assert out.returncode == 2
    assert "missing.yaml" in out.stderr
    assert "does not exist" in out.stderr
