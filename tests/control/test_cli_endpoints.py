"""`modelgate endpoints`: each command against a live server, found through DATABRICKS_HOST/DATABRICKS_TOKEN."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from modelgate import cli
from tests.conftest import UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer, create_endpoint, external_chat_config, free_port, new_pat

CHAT = {"messages": [{"role": "user", "content": "hello there"}]}


def _run(server: LiveServer, *args: str, token: str | None = None, stdin: str | None = None) -> Result:
    env = {"DATABRICKS_HOST": server.url, "DATABRICKS_TOKEN": token or server.admin_token}
    return CliRunner().invoke(cli.main, ["endpoints", *args], env=env, input=stdin)


@pytest.fixture
def chat_endpoint(server: LiveServer, upstream: FakeUpstreamThread, request: pytest.FixtureRequest) -> str:
    name: str = "cli-" + request.node.name.removeprefix("test_").replace("_", "-")[:40]
    with server.client() as c:
        create_endpoint(c, name, external_chat_config(upstream.base_url))
    return name


def test_list_prints_a_table_and_json(server: LiveServer, chat_endpoint: str) -> None:
    result = _run(server, "list")
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "TASK", "STATE", "CREATOR"]
    assert [chat_endpoint, "llm/v1/chat", "READY", "admin"] in [r.split() for r in rows]
    raw = _run(server, "list", "--json")
    assert raw.exit_code == 0, raw.output
    assert chat_endpoint in [e["name"] for e in json.loads(raw.stdout)["endpoints"]]


def test_get_prints_the_endpoint(server: LiveServer, chat_endpoint: str) -> None:
    result = _run(server, "get", chat_endpoint)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["name"] == chat_endpoint
    assert body["config"]["served_entities"][0]["external_model"]["name"] == "gpt-4o-mini"


def test_create_from_a_file_and_from_stdin_then_delete(
    server: LiveServer, upstream: FakeUpstreamThread, tmp_path: Path
) -> None:
    spec = tmp_path / "endpoint.json"
    spec.write_text(
        json.dumps({"name": "cli-created", "config": {"served_entities": [external_chat_config(upstream.base_url)]}})
    )
    result = _run(server, "create", "--json", str(spec))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == "cli-created"
    assert "sk-upstream-test" not in result.stdout  # the key is never echoed

    body = {"name": "cli-created-stdin", "config": {"served_entities": [external_chat_config(upstream.base_url)]}}
    result = _run(server, "create", "--json", "-", stdin=json.dumps(body))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["state"]["ready"] == "READY"

    for name in ("cli-created", "cli-created-stdin"):
        result = _run(server, "delete", name)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == f"deleted endpoint {name} at {server.url}"
        with server.client() as c:
            assert c.get(f"/api/2.0/serving-endpoints/{name}").status_code == 404


def test_create_refuses_a_duplicate_with_the_servers_error(
    server: LiveServer, chat_endpoint: str, tmp_path: Path
) -> None:
    spec = tmp_path / "dup.json"
    spec.write_text(
        json.dumps({"name": chat_endpoint, "config": {"served_entities": [external_chat_config("http://x")]}})
    )
    result = _run(server, "create", "--json", str(spec))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: RESOURCE_ALREADY_EXISTS: ")


def test_query_prints_the_answer_text(server: LiveServer, chat_endpoint: str) -> None:
    result = _run(server, "query", chat_endpoint, "--json", json.dumps(CHAT))
    assert result.exit_code == 0, result.output
    assert result.stdout == "echo: hello there\n"


def test_query_raw_prints_the_whole_answer(server: LiveServer, chat_endpoint: str) -> None:
    result = _run(server, "query", chat_endpoint, "--raw", "--json", json.dumps(CHAT))
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["choices"][0]["message"]["content"] == "echo: hello there"
    assert answer["usage"]["total_tokens"] > 0


def test_query_completions_prints_the_text(server: LiveServer, upstream: FakeUpstreamThread) -> None:
    with server.client() as c:
        create_endpoint(c, "cli-complete", external_chat_config(upstream.base_url, "gpt-3.5-turbo-instruct",
                                                                 task="llm/v1/completions"))  # fmt: skip
    result = _run(server, "query", "cli-complete", "--json", '{"prompt": "Once upon"}')
    assert result.exit_code == 0, result.output
    assert "Once upon" in result.stdout
    assert not result.stdout.lstrip().startswith("{")


def test_query_stream_prints_tokens_as_they_arrive(server: LiveServer, chat_endpoint: str) -> None:
    """In a real process, so what reaches stdout is what a terminal would show."""
    env = {**os.environ, "DATABRICKS_HOST": server.url, "DATABRICKS_TOKEN": server.admin_token}
    args = ["endpoints", "query", chat_endpoint, "--stream", "--json", json.dumps(CHAT)]
    out = subprocess.run(
        [sys.executable, "-m", "modelgate", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "echo: hello there\n"

    raw = _run(server, "query", chat_endpoint, "--stream", "--raw", "--json", json.dumps(CHAT))
    assert raw.exit_code == 0, raw.output
    events = [json.loads(line) for line in raw.stdout.splitlines()]
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    deltas = [c["delta"].get("content", "") for e in events for c in e["choices"]]
    assert len([d for d in deltas if d]) > 1  # several chunks, not one answer
    assert "".join(deltas) == "echo: hello there"
    assert events[-1]["usage"]["total_tokens"] > 0


def test_query_stream_shows_the_first_tokens_before_the_answer_ends(server: LiveServer) -> None:
    """With an upstream that paces its events 300 ms apart, the first words reach stdout long before the rest:
    the command buffers neither the answer nor its output."""
    with FakeUpstreamThread(api_key=UPSTREAM_KEY, stream_delay_ms=300) as slow:
        with server.client() as c:
            create_endpoint(c, "cli-slow-stream", external_chat_config(slow.base_url))
        env = {**os.environ, "DATABRICKS_HOST": server.url, "DATABRICKS_TOKEN": server.admin_token}
        args = ["endpoints", "query", "cli-slow-stream", "--stream", "--json", json.dumps(CHAT)]
        with subprocess.Popen([sys.executable, "-m", "modelgate", *args], env=env, stdout=subprocess.PIPE) as proc:
            assert proc.stdout is not None
            first = proc.stdout.read(len("echo: "))
            first_at = time.monotonic()
            rest = proc.stdout.read()
            waited_for_rest = time.monotonic() - first_at
            proc.wait(60)
    assert first == b"echo: "
    assert waited_for_rest > 0.6  # four more events, 300 ms apart, were still to come
    assert rest == b"hello there\n"
    assert proc.returncode == 0


class _CannedServer(http.server.ThreadingHTTPServer):
    """Answers every POST and GET with one fixed status, content type and body: what a failing stream or a
    proxy in front of the server sends, which a live modelgate does not on demand."""

    def __init__(self, status: int, content_type: str, body: bytes) -> None:
        canned = (status, content_type, body)

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(canned[0])
                self.send_header("Content-Type", canned[1])
                self.send_header("Content-Length", str(len(canned[2])))
                self.end_headers()
                self.wfile.write(canned[2])

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> _CannedServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def _run_against(url: str, *args: str) -> Result:
    return CliRunner().invoke(
        cli.main, ["endpoints", *args], env={"DATABRICKS_HOST": url, "DATABRICKS_TOKEN": new_pat()}
    )


def test_an_error_event_mid_stream_ends_the_line_and_fails() -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "partial"}}]}
    # What serving/streams.py error_event sends: the Databricks body plus OpenAI's `error`.
    error: dict[str, Any] = {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "upstream went away"}
    error["error"] = {"message": error["message"], "code": error["error_code"], "type": "server_error"}
    body = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(error)}\n\n".encode()
    with _CannedServer(200, "text/event-stream", body) as canned:
        result = _run_against(canned.url, "query", "x", "--stream", "--json", json.dumps(CHAT))
    assert result.exit_code == 1
    assert result.stdout == "partial\n"
    assert result.stderr == "Error: TEMPORARILY_UNAVAILABLE: upstream went away\n"


def test_a_stream_is_read_to_its_last_event_and_garbage_is_an_error() -> None:
    def chunk(text: str) -> str:
        return "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]})

    # Comments and event: fields are skipped; the last event has no blank line after it, nor a [DONE].
    body = f": keep-alive\n\nevent: message\n{chunk('one ')}\n\n{chunk('two')}".encode()
    with _CannedServer(200, "text/event-stream", body) as canned:
        result = _run_against(canned.url, "query", "x", "--stream", "--json", json.dumps(CHAT))
    assert result.exit_code == 0, result.output
    assert result.stdout == "one two\n"

    with _CannedServer(200, "text/event-stream", b"data: oops\n\n") as canned:
        result = _run_against(canned.url, "query", "x", "--stream", "--json", json.dumps(CHAT))
    assert result.exit_code == 1
    assert result.stderr == "Error: the stream sent an event that is not JSON: oops\n"


def test_a_body_that_is_not_a_databricks_error_is_shown_short() -> None:
    page = b"<html><body>" + b"Bad gateway " * 100 + b"</body></html>"
    with _CannedServer(502, "text/html", page) as canned:
        result = _run_against(canned.url, "list")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: HTTP 502: <html><body>Bad gateway")
    assert line.endswith("...") and len(line) < 250


def test_a_missing_endpoint_is_one_line_on_stderr(server: LiveServer) -> None:
    for args in (["get", "cli-nope"], ["delete", "cli-nope"], ["query", "cli-nope", "--json", json.dumps(CHAT)],
                 ["query", "cli-nope", "--stream", "--json", json.dumps(CHAT)]):  # fmt: skip
        result = _run(server, *args)
        assert result.exit_code == 1, args
        assert result.stdout == ""
        assert result.stderr == "Error: RESOURCE_DOES_NOT_EXIST: Endpoint with name 'cli-nope' does not exist.\n"


def test_a_bad_token_says_to_set_databricks_token(server: LiveServer) -> None:
    result = _run(server, "list", token=new_pat())
    assert result.exit_code == 1
    error, hint = result.stderr.splitlines()
    assert error.startswith("Error: UNAUTHENTICATED: ")
    assert hint.startswith("hint: set DATABRICKS_TOKEN")


def test_a_refused_connection_asks_whether_the_server_runs() -> None:
    host = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(
        cli.main, ["endpoints", "list"], env={"DATABRICKS_HOST": host, "DATABRICKS_TOKEN": new_pat()}
    )
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Error: cannot reach {host}")
    assert line.endswith(f"is the server running at {host}?")


def test_flags_win_over_the_environment(server: LiveServer, chat_endpoint: str) -> None:
    env = {"DATABRICKS_HOST": f"http://127.0.0.1:{free_port()}", "DATABRICKS_TOKEN": new_pat()}
    args = ["endpoints", "get", chat_endpoint, "--host", server.url, "--token", server.admin_token]
    result = CliRunner().invoke(cli.main, args, env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == chat_endpoint


def test_no_host_anywhere_is_a_clear_error(tmp_path: Path) -> None:
    env: dict[str, Any] = {"DATABRICKS_HOST": None, "DATABRICKS_TOKEN": None,
                           "DATABRICKS_CONFIG_FILE": str(tmp_path / "none.cfg")}  # fmt: skip
    result = CliRunner().invoke(cli.main, ["endpoints", "list"], env=env)
    assert result.exit_code == 1
    assert "no server: pass --host, set DATABRICKS_HOST" in result.stderr


def test_bad_query_json_is_a_usage_error(server: LiveServer) -> None:
    result = _run(server, "query", "x", "--json", "{not json")
    assert result.exit_code == 2
    assert "not JSON" in result.stderr


@pytest.mark.parametrize("command", ["list", "get", "create", "delete", "query"])
def test_every_command_help_has_an_example(command: str) -> None:
    result = CliRunner().invoke(cli.main, ["endpoints", command, "--help"])
    assert result.exit_code == 0
    assert f"Example:\n    modelgate endpoints {command}" in result.stdout
