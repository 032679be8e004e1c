"""`modelgate endpoints`: list, get, create, delete and query serving endpoints over the REST API.

These commands talk to a running server (this one or a Databricks workspace), never to its database, so they
work from any machine. They find it as `modelgate sql` does: --host/--token, then DATABRICKS_HOST /
DATABRICKS_TOKEN, then ~/.databrickscfg (sql/config.py). Each call is one aiohttp request, the client the
package already depends on for ai_query.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import IO, Any, TypeVar
from urllib.parse import quote

import click

F = TypeVar("F", bound=Callable[..., Any])

_API = "/api/2.0/serving-endpoints"


def _connection_options(fn: F) -> F:
    fn = click.option(
        "--profile", default=None, help="~/.databrickscfg profile [default: $DATABRICKS_CONFIG_PROFILE or DEFAULT]."
    )(fn)
    fn = click.option("--token", default=None, help="Access token [default: $DATABRICKS_TOKEN or ~/.databrickscfg].")(
        fn
    )
    fn = click.option("--host", default=None, help="Server URL [default: $DATABRICKS_HOST or ~/.databrickscfg].")(fn)
    return fn


@dataclass
class _Server:
    """Where the commands send requests, and how a failure is told to the user."""

    host: str
    token: str
    scheme_assumed: bool

    @classmethod
    def resolve(cls, host: str | None, token: str | None, profile: str | None) -> _Server:
        from modelgate.sql.client import ClientConfig
        from modelgate.sql.config import resolve_credentials
        from modelgate.sql.errors import AiQueryError

        try:
            host, token = resolve_credentials(host, token, profile)
        except AiQueryError as exc:
            raise click.ClickException(str(exc)) from None
        config = ClientConfig(host, token)  # the same host normalization as ai_query (https:// if no scheme)
        return cls(config.host, config.token, config.scheme_assumed)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON answer of one request; a failure raises click.ClickException with one line to show."""
        return asyncio.run(self._guard(self._call(method, path, body)))

    def stream(self, path: str, body: Any, on_event: Callable[[dict[str, Any]], None]) -> None:
        """POST `body` and hand each SSE `data:` event's JSON to `on_event` as it arrives."""

        async def run() -> None:
            async for event in self._events(path, body):
                on_event(event)

        asyncio.run(self._guard(run()))

    async def _guard(self, coro: Any) -> Any:
        import aiohttp

        try:
            return await coro
        except aiohttp.ClientSSLError as exc:
            hint = ""
            if self.scheme_assumed:
                plain = "http://" + self.host.removeprefix("https://")
                hint = f"; the host had no scheme, so https:// was assumed: a plain-HTTP server needs {plain}"
            raise click.ClickException(f"cannot reach {self.host}: {exc}{hint}") from None
        except TimeoutError:
            raise click.ClickException(f"no answer from {self.host} in time") from None
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise click.ClickException(
                f"cannot reach {self.host} ({exc}): is the server running at {self.host}?"
            ) from None
        except aiohttp.ClientError as exc:
            raise click.ClickException(f"request to {self.host} failed: {exc}") from None

    def _session(self) -> Any:
        import aiohttp

        # No total deadline: a stream may run as long as the model writes; the server bounds each request.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=660)
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        return aiohttp.ClientSession(timeout=timeout, headers=headers)

    async def _call(self, method: str, path: str, body: Any) -> Any:
        data = None if body is None else json.dumps(body)
        async with self._session() as session, session.request(method, self.host + path, data=data) as resp:
            raw = await resp.read()
            if resp.status != 200:
                raise _http_error(resp.status, raw)
            try:
                return json.loads(raw) if raw else {}
            except ValueError:
                raise click.ClickException(f"HTTP 200 with a body that is not JSON: {_snippet(raw)}") from None

    async def _events(self, path: str, body: Any) -> AsyncIterator[dict[str, Any]]:
        async with self._session() as session, session.post(self.host + path, data=json.dumps(body)) as resp:
            if resp.status != 200:
                raise _http_error(resp.status, await resp.read())
            if not resp.content_type.startswith("text/event-stream"):  # the server chose not to stream
                yield _stream_event(await resp.read())
                return
            data: list[bytes] = []
            async for raw_line in resp.content:
                line = raw_line.rstrip(b"\r\n")
                if line.startswith(b"data:"):
                    data.append(line[5:].removeprefix(b" "))
                elif not line and data:  # a blank line ends an event; comments and other fields are skipped
                    payload, data = b"\n".join(data), []
                    if payload == b"[DONE]":
                        return
                    yield _stream_event(payload)
            if data and data != [b"[DONE]"]:  # a last event without its blank line
                yield _stream_event(b"\n".join(data))


def _stream_event(payload: bytes) -> dict[str, Any]:
    try:
        event = json.loads(payload)
    except ValueError:
        raise click.ClickException(f"the stream sent an event that is not JSON: {_snippet(payload)}") from None
    if isinstance(event, dict) and "error_code" in event:  # failed after the stream began
        raise _error_from_body(0, event)
    if not isinstance(event, dict):
        raise click.ClickException(f"the stream sent an event that is not a JSON object: {_snippet(payload)}")
    return event


class _EndpointError(click.ClickException):
    """A Databricks error body shown as one line, with a hint for the failures a terminal user can fix."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def show(self, file: IO[Any] | None = None) -> None:
        super().show(file)
        if self.hint:
            click.echo(f"hint: {self.hint}", err=True)


def _http_error(status: int, raw: bytes) -> click.ClickException:
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and ("error_code" in body or "message" in body):
        return _error_from_body(status, body)
    return _EndpointError(f"HTTP {status}: {_snippet(raw)}", _hint(status))


def _error_from_body(status: int, body: dict[str, Any]) -> click.ClickException:
    code = body.get("error_code") or (f"HTTP {status}" if status else "ERROR")
    message = " ".join(str(body.get("message") or "").split())  # one line, whatever the server put in it
    return _EndpointError(f"{code}: {message}" if message else str(code), _hint(status))


def _hint(status: int) -> str | None:
    if status == 401:
        return "set DATABRICKS_TOKEN (or pass --token) to a valid token for this server"
    if status == 403:
        return "the token's user lacks the permission this call needs (CAN_VIEW, CAN_QUERY or CAN_MANAGE)"
    return None


def _snippet(raw: bytes) -> str:
    text = " ".join(raw.decode(errors="replace").split())
    return text[:200] + ("..." if len(text) > 200 else "") if text else "(empty body)"


def _path(name: str) -> str:
    return f"{_API}/{quote(name, safe='')}"


def _invocations(name: str) -> str:
    return f"/serving-endpoints/{quote(name, safe='')}/invocations"


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=what) from None


@click.group()
def endpoints() -> None:
    """Serving endpoints on a running server: list, get, create, delete, query.

    The server and token come from --host/--token, else DATABRICKS_HOST/DATABRICKS_TOKEN, else
    ~/.databrickscfg, as for `modelgate sql` and the Databricks CLI.

    \b
    Example:
      export DATABRICKS_HOST=http://127.0.0.1:8080 DATABRICKS_TOKEN=$(cat .modelgate/admin-token)
      modelgate endpoints list
    """


@endpoints.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the server's JSON body instead of a table.")
@_connection_options
def list_endpoints(as_json: bool, host: str | None, token: str | None, profile: str | None) -> None:
    """List the endpoints you can see: name, task, state, creator.

    \b
    Example:
      modelgate endpoints list
      modelgate endpoints list --json
    """
    body = _Server.resolve(host, token, profile).call("GET", _API)
    if as_json:
        _print_json(body)
        return
    rows = [_row(e) for e in body.get("endpoints") or []]
    if not rows:
        click.echo("no endpoints", err=True)
        return
    header = ("NAME", "TASK", "STATE", "CREATOR")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


def _row(endpoint: dict[str, Any]) -> tuple[str, str, str, str]:
    state = endpoint.get("state") or {}
    shown = str(state.get("ready") or "-")
    if state.get("config_update") not in (None, "NOT_UPDATING"):
        shown += f" ({state['config_update']})"
    return (str(endpoint.get("name", "")), str(endpoint.get("task") or "-"), shown, str(endpoint.get("creator") or "-"))


@endpoints.command("get")
@click.argument("name")
@_connection_options
def get_endpoint(name: str, host: str | None, token: str | None, profile: str | None) -> None:
    """Print an endpoint's JSON (GET /api/2.0/serving-endpoints/NAME).

    \b
    Example:
      modelgate endpoints get my-chat
    """
    _print_json(_Server.resolve(host, token, profile).call("GET", _path(name)))


@endpoints.command("create")
@click.option(
    "--json", "json_file", required=True, type=click.File("r"), help="File with the request body ('-': stdin)."
)
@_connection_options
def create_endpoint(json_file: IO[str], host: str | None, token: str | None, profile: str | None) -> None:
    """Create an endpoint from a JSON body (the REST API's schema) and print it.

    \b
    Example:
      modelgate endpoints create --json my-chat.json
      echo '{"name": "my-chat", "config": {"served_entities": [...]}}' | modelgate endpoints create --json -
    """
    body = _parse_json(json_file.read(), "--json")
    _print_json(_Server.resolve(host, token, profile).call("POST", _API, body))


@endpoints.command("delete")
@click.argument("name")
@_connection_options
def delete_endpoint(name: str, host: str | None, token: str | None, profile: str | None) -> None:
    """Delete an endpoint.

    \b
    Example:
      modelgate endpoints delete my-chat
    """
    server = _Server.resolve(host, token, profile)
    server.call("DELETE", _path(name))
    click.echo(f"deleted endpoint {name} at {server.host}")


@endpoints.command("query")
@click.argument("name")
@click.option("--json", "body_text", required=True, help="The request body, as JSON ('-': read it from stdin).")
@click.option("--stream", is_flag=True, help="Stream the answer: print tokens as they arrive.")
@click.option("--raw", is_flag=True, help="Print the whole JSON answer (with --stream: each event, one a line).")
@_connection_options
def query_endpoint(
    name: str, body_text: str, stream: bool, raw: bool, host: str | None, token: str | None, profile: str | None
) -> None:
    """Query an endpoint; prints the answer's text for chat and completions, the JSON otherwise.

    \b
    Example:
      modelgate endpoints query my-chat --json '{"messages": [{"role": "user", "content": "Hello!"}]}'
      modelgate endpoints query my-chat --stream --json '{"messages": [{"role": "user", "content": "Hi"}]}'
    """
    body = _parse_json(sys.stdin.read() if body_text == "-" else body_text, "--json")
    if not isinstance(body, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--json")
    server = _Server.resolve(host, token, profile)
    path = _invocations(name)
    if not (stream or body.get("stream") is True):
        answer = server.call("POST", path, body)
        text = None if raw else _answer_text(answer)
        if text is None:
            _print_json(answer)
        else:
            click.echo(text)
        return
    body["stream"] = True
    printed = False

    def on_event(event: dict[str, Any]) -> None:
        nonlocal printed
        if raw:
            click.echo(json.dumps(event))
            return
        text = _chunk_text(event)
        if text:
            click.echo(text, nl=False)  # click.echo flushes: each token shows at once, even into a pipe
            printed = True

    try:
        server.stream(path, body, on_event)
    finally:
        if printed:
            click.echo()  # end the answer's line, also before an error that cut it short


def _content_text(content: Any) -> str | None:
    """A message's or delta's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "".join(parts) if parts else None
    return None


def _answer_text(answer: Any) -> str | None:
    """The text of a chat or completions answer (choices joined by newlines); None for anything else."""
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not isinstance(choices, list) or not choices:
        return None
    texts = []
    for choice in choices:
        if not isinstance(choice, dict):
            return None
        text = _content_text((choice.get("message") or {}).get("content")) if "message" in choice else None
        text = choice.get("text") if text is None and isinstance(choice.get("text"), str) else text
        if text is None:
            return None  # e.g. a tool call with no text: the JSON says more than an empty line would
        texts.append(text)
    return "\n".join(texts)


def _chunk_text(event: dict[str, Any]) -> str:
    out = []
    for choice in event.get("choices") or []:
        if isinstance(choice, dict):
            text = _content_text((choice.get("delta") or {}).get("content"))
            out.append(text if text is not None else str(choice.get("text") or ""))
    return "".join(out)
