"""ai_query on DuckDB against a live modelgate and the fake OpenAI upstream: every form of the call."""

from __future__ import annotations

import time

import pytest

from modelgate.sql.duckdb_binding import AiQueryConnection, connect
from modelgate.sql.errors import AiQueryError, EndpointCallError
from tests.fakes.openai_payloads import embedding_vector
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.sql.conftest import CHAT, COMPLETIONS, EMBEDDINGS, FAILING, SLOW
from tests.support.live import LiveServer


def bodies(upstream: FakeUpstreamThread) -> list[dict]:
    return [r.json for r in upstream.requests if r.method == "POST"]


def one(aiq: AiQueryConnection, query: str) -> object:
    rows = aiq.fetchall(query)
    assert len(rows) == 1
    return rows[0][0]


def test_chat_positional(aiq: AiQueryConnection, upstream: FakeUpstreamThread) -> None:
    upstream.reset()
    assert one(aiq, f"SELECT ai_query('{CHAT}', 'hello there')") == "echo: hello there"
    assert bodies(upstream) == [{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}]
    assert one(aiq, f"SELECT typeof(ai_query('{CHAT}', 'x'))") == "VARCHAR"


@pytest.mark.parametrize("arrow", ["=>", ":="])
def test_named_arguments(aiq: AiQueryConnection, arrow: str) -> None:
    query = f"SELECT ai_query(request {arrow} 'hi', endpoint {arrow} '{CHAT}', failOnError {arrow} true)"
    assert one(aiq, query) == "echo: hi"


def test_completions_take_a_prompt(aiq: AiQueryConnection, upstream: FakeUpstreamThread) -> None:
    upstream.reset()
    assert one(aiq, f"SELECT ai_query('{COMPLETIONS}', 'say hi')") == "echo: say hi"
    assert bodies(upstream)[0]["prompt"] == "say hi"


def test_embeddings_return_array_float(aiq: AiQueryConnection, upstream: FakeUpstreamThread) -> None:
    upstream.reset()
    rows = aiq.fetchall(f"SELECT ai_query('{EMBEDDINGS}', 'cats'), typeof(ai_query('{EMBEDDINGS}', 'dogs'))")
    assert rows == [(pytest.approx(embedding_vector("cats")), "FLOAT[]")]
    assert [b["input"] for b in bodies(upstream)] == ["cats"]  # typeof() is settled when binding: no request
    # returnType as the third positional argument
    rows = aiq.fetchall(f"SELECT v, typeof(v) FROM (SELECT ai_query('{EMBEDDINGS}', 'cats', 'ARRAY<DOUBLE>') AS v)")
    assert rows[0][1] == "DOUBLE[]"
    assert rows[0][0] == pytest.approx(embedding_vector("cats"))


def test_struct_return_type_asks_for_and_parses_json(aiq: AiQueryConnection, upstream: FakeUpstreamThread) -> None:
    upstream.reset()
    rt = "STRUCT<label: STRING, score: DOUBLE, n: INT, tags: ARRAY<STRING>>"
    value = one(aiq, f"SELECT ai_query('{CHAT}', 'classify me', returnType => '{rt}')")
    assert value == {"label": "Paris", "score": 1.0, "n": 1, "tags": []}
    fmt = bodies(upstream)[0]["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["required"] == ["label", "score", "n", "tags"]
    kind = one(aiq, f"SELECT typeof(ai_query('{CHAT}', 'x', returnType => '{rt}'))")
    assert kind == 'STRUCT("label" VARCHAR, score DOUBLE, n INTEGER, tags VARCHAR[])'  # DuckDB quotes keywords


def test_response_format_json(aiq: AiQueryConnection, upstream: FakeUpstreamThread) -> None:
    upstream.reset()
    value = one(aiq, f"""SELECT ai_query('{CHAT}', 'hi', responseFormat => '{{"type": "json_object"}}')""")
    assert value == '{"echo": "hi"}'
    assert bodies(upstream)[0]["response_format"] == {"type": "json_object"}


def test_response_format_ddl(aiq: AiQueryConnection, upstream: FakeUpstreamThread) -> None:
    upstream.reset()
    fmt = "STRUCT<extraction: STRUCT<city: STRING, population: BIGINT>>"
    value = one(aiq, f"SELECT ai_query('{CHAT}', 'Paris has 2M people', responseFormat => '{fmt}')")
    assert value == '{"city": "Paris", "population": 1}'
    assert bodies(upstream)[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "extraction",
            "schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
                "required": ["city", "population"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    }


def test_model_parameters_go_into_each_request(aiq: AiQueryConnection, upstream: FakeUpstreamThread) -> None:
    upstream.reset()
    params = "named_struct('max_tokens', 2, 'temperature', 0.25, 'top_p', 0.5, 'stop', array('zzz'))"
    rows = aiq.fetchall(
        f"SELECT ai_query('{CHAT}', p, modelParameters => {params}) FROM (VALUES ('one two three'), ('four')) t(p)"
    )
    assert rows == [("echo: one",), ("echo: four",)]
    sent = bodies(upstream)
    assert len(sent) == 2
    for body in sent:
        assert (body["max_tokens"], body["temperature"], body["top_p"], body["stop"]) == (2, 0.25, 0.5, ["zzz"])
    # DuckDB's own struct spelling works too
    assert one(aiq, f"SELECT ai_query('{COMPLETIONS}', 'a b c d', modelParameters => {{'max_tokens': 3}})") == (
        "echo: a b"
    )


def test_fail_on_error_true_fails_the_query(aiq: AiQueryConnection) -> None:
    with pytest.raises(EndpointCallError) as info:
        aiq.fetchall(f"SELECT ai_query('{FAILING}', 'x' || i) FROM range(3) t(i)")
    assert str(info.value).startswith(f"ai_query failed: endpoint '{FAILING}': HTTP 400 BAD_REQUEST: ")
    assert "Injected 400 error" in str(info.value)
    assert (info.value.status, info.value.error_code) == (400, "BAD_REQUEST")


def test_fail_on_error_false_returns_result_and_error(aiq: AiQueryConnection) -> None:
    rows = aiq.fetchall(
        f"SELECT ai_query('{FAILING}', p, failOnError => false), ai_query('{CHAT}', p, failOnError => false), "
        f"typeof(ai_query('{CHAT}', p, failOnError => false)) FROM (VALUES ('a'), (NULL)) t(p)"
    )
    bad, good, kind = rows[0]
    assert bad["result"] is None
    assert bad["errorMessage"].startswith("HTTP 400 BAD_REQUEST: Received error from openai (Injected 400 error")
    assert good == {"result": "echo: a", "errorMessage": None}
    assert kind == "STRUCT(result VARCHAR, errorMessage VARCHAR)"
    assert rows[1][:2] == (None, None)


def test_answer_that_does_not_fit_the_return_type(aiq: AiQueryConnection) -> None:
    value = one(aiq, f"SELECT ai_query('{CHAT}', 'x', returnType => 'ARRAY<INT>', failOnError => false)")
    assert value == {
        "result": None,
        "errorMessage": "the answer is not JSON, so it cannot be read as returnType ARRAY<INT>: 'echo: x'",
    }
    with pytest.raises(EndpointCallError, match=r"cannot be read as returnType ARRAY<INT>"):
        aiq.fetchall(f"SELECT ai_query('{CHAT}', 'x', returnType => 'ARRAY<INT>')")


def test_unknown_endpoint_fails_before_any_row(aiq: AiQueryConnection, upstream: FakeUpstreamThread) -> None:
    upstream.reset()
    with pytest.raises(AiQueryError) as info:
        aiq.fetchall("SELECT ai_query('aiq-no-such-endpoint', 'x')")
    assert str(info.value) == (
        "ai_query: endpoint 'aiq-no-such-endpoint' does not exist (HTTP 404 RESOURCE_DOES_NOT_EXIST: "
        "Endpoint with name 'aiq-no-such-endpoint' does not exist.)"
    )
    assert upstream.requests == []


def test_host_without_a_scheme_on_a_plain_http_server_says_to_add_http(aiq_server: LiveServer) -> None:
    """Without a scheme https:// is assumed (as Databricks' clients do); against plain HTTP the TLS handshake
    fails with WRONG_VERSION_NUMBER, which alone does not say what to change."""
    bare = aiq_server.url.removeprefix("http://")
    con = connect(bare, aiq_server.admin_token, max_retries=0)
    try:
        with pytest.raises(AiQueryError) as info:
            con.fetchall(f"SELECT ai_query('{CHAT}', 'x')")
    finally:
        con.close()
    assert str(info.value).startswith(f"ai_query: cannot reach https://{bare}: ")
    assert str(info.value).endswith(f"needs http:// in front: http://{bare}")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (f"ai_query('{CHAT}', 'x', returnType => 'STRUCT<a INT')",
         "returnType/responseFormat 'STRUCT<a INT' is not a valid DDL type: expected '>' but the text ended"),
        (f"ai_query('{CHAT}', 'x', 'ARRAY<WIBBLE>')",
         "returnType/responseFormat 'ARRAY<WIBBLE>' is not a valid DDL type: unknown type 'WIBBLE'"),
        (f"ai_query('{CHAT}', 'x', returnType => p)",
         "ai_query: returnType must be a string literal such as 'value', got 'p'"),
        (f"ai_query('{CHAT}', 'x', failOnError => 'no')", "ai_query: failOnError must be true or false, got \"'no'\""),
        (f"ai_query('{CHAT}')", "ai_query: missing argument request"),
        (f"ai_query('{CHAT}', 'x', temperature => 1)", "ai_query: unknown argument 'temperature' (known: endpoint, "
         "request, returnType, failOnError, modelParameters, responseFormat, files)"),
        (f"ai_query('{CHAT}', 'x', 'STRING', true, false)", "ai_query takes at most 4 positional arguments "
         "(endpoint, request, returnType, failOnError)"),
        (f"ai_query('{CHAT}', 'x', request => 'y')", "ai_query: argument 'request' is given twice"),
        (f"ai_query('{EMBEDDINGS}', 'x', responseFormat => '{{\"type\": \"json_object\"}}')",
         f"ai_query: responseFormat needs a chat endpoint; '{EMBEDDINGS}' serves llm/v1/embeddings"),
        (f"ai_query('{CHAT}', 'x', responseFormat => 'STRUCT<a: INT, b: INT>')",
         "ai_query: a DDL responseFormat must be a STRUCT with exactly one field, "
         "e.g. 'STRUCT<answer: STRUCT<label: STRING, score: DOUBLE>>'"),
        (f"ai_query('{CHAT}', 'x', modelParameters => named_struct('messages', 1))",
         "ai_query: modelParameters cannot set messages (ai_query sets it per row)"),
        (f"ai_query('{CHAT}', 'x', modelParameters => named_struct('t', p))",
         None),
        (f"ai_query('{CHAT}', 42)",
         f"ai_query: the request for endpoint '{CHAT}' (llm/v1/chat) must be a STRING, got INTEGER"),
    ],
)  # fmt: skip
def test_bad_calls_name_the_problem(aiq: AiQueryConnection, call: str, message: str | None) -> None:
    with pytest.raises(AiQueryError) as info:
        aiq.fetchall(f"SELECT {call} FROM (VALUES ('a')) t(p)")
    if message is None:  # a non-constant modelParameters: DuckDB's own binder message follows ours
        assert str(info.value).startswith("ai_query: modelParameters must be a constant struct such as ")
    else:
        assert str(info.value) == message


def test_nulls_in_nulls_out(aiq: AiQueryConnection, upstream: FakeUpstreamThread) -> None:
    upstream.reset()
    rows = aiq.fetchall(
        f"SELECT ai_query('{CHAT}', p), ai_query('{EMBEDDINGS}', p) FROM (VALUES ('a'), (NULL), ('b')) t(p)"
    )
    assert [r[0] for r in rows] == ["echo: a", None, "echo: b"]
    assert rows[1][1] is None
    assert len(bodies(upstream)) == 4
    assert one(aiq, f"SELECT ai_query('{CHAT}', NULL)") is None


def test_row_order_over_thousands_of_rows(aiq: AiQueryConnection) -> None:
    n = 2100  # two DuckDB chunks (2,048 + 52)
    rows = aiq.fetchall(f"SELECT i, ai_query('{CHAT}', 'row ' || i) FROM range({n}) t(i)")
    assert rows == [(i, f"echo: row {i}") for i in range(n)]
    assert aiq.client.progress.done == n


def test_requests_run_concurrently(aiq_server: LiveServer) -> None:
    with connect(aiq_server.url, aiq_server.admin_token, concurrency=32) as con:
        started = time.monotonic()
        rows = con.fetchall(f"SELECT ai_query('{SLOW}', 'r' || i) FROM range(128) t(i)")
        elapsed = time.monotonic() - started
    assert [r[0] for r in rows] == [f"echo: r{i}" for i in range(128)]
    assert elapsed < 6.0  # one at a time this would take 12.8 s; 32 in flight about 0.4 s


def test_retries_honour_retry_after(aiq: AiQueryConnection, upstream: FakeUpstreamThread) -> None:
    upstream.reset()
    upstream.fail_next(429, count=2, retry_after=1)
    started = time.monotonic()
    assert one(aiq, f"SELECT ai_query('{CHAT}', 'patience')") == "echo: patience"
    assert time.monotonic() - started >= 1.9  # two waits of Retry-After: 1
    assert [r.status for r in upstream.requests] == [429, 429, 200]
    assert aiq.client.progress.retries == 2


def test_retries_give_up_after_max_retries(aiq_server: LiveServer, upstream: FakeUpstreamThread) -> None:
    upstream.reset()
    upstream.fail_next(503, count=3, retry_after=1)
    with connect(aiq_server.url, aiq_server.admin_token, max_retries=0) as con:
        value = one(con, f"SELECT ai_query('{CHAT}', 'x', failOnError => false)")
    assert value["result"] is None
    assert value["errorMessage"].startswith("HTTP 503 TEMPORARILY_UNAVAILABLE: ")
    upstream.reset()


def test_credentials_from_env_and_databrickscfg(
    aiq_server: LiveServer, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    cfg = Path(str(tmp_path)) / "databrickscfg"
    cfg.write_text(f"[DEFAULT]\nhost = {aiq_server.url}\ntoken = {aiq_server.admin_token}\n[other]\nhost = x\n")
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    monkeypatch.delenv("DATABRICKS_TOKEN", raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(cfg))
    with connect() as con:
        assert one(con, f"SELECT ai_query('{CHAT}', 'cfg')") == "echo: cfg"
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi" + "0" * 32)  # env wins over the file: a wrong token
    with connect() as con, pytest.raises(AiQueryError, match=f"cannot look up endpoint '{CHAT}': HTTP 401"):
        con.fetchall(f"SELECT ai_query('{CHAT}', 'cfg')")
    monkeypatch.delenv("DATABRICKS_TOKEN")
    with pytest.raises(AiQueryError, match="no token: pass --token"):
        connect(profile="other", token="")


def test_unaliased_calls_are_named_as_written(aiq: AiQueryConnection) -> None:
    """DuckDB would head the column with the rewritten CASE ... UDF expression; it gets the call's own text."""
    call = f"ai_query('{CHAT}', 'Summarize: ' || p)"
    result = aiq.execute(f"SELECT {call}, p, ai_query('{CHAT}', p) AS named, upper({call}) FROM (VALUES ('a')) t(p)")
    columns = [d[0] for d in result.description]
    assert columns[:3] == [call, "p", "named"]
    assert result.fetchall()[0][:3] == ("echo: Summarize: a", "a", "echo: a")


@pytest.mark.parametrize(
    ("sql", "context"),
    [
        # A syntax error before a call: the caret under what the user typed.
        (f"SELEC ai_query('{CHAT}', 'x') AS a", "LINE 1: SELEC ai_query('aiq-chat', 'x') AS a\n        ^^^^^"),
        # An unknown column inside a call's request: the caret under it, in the call as written.
        (f"SELECT ai_query('{CHAT}', revew) FROM (VALUES ('a')) t(review)",
         "LINE 1: SELECT ai_query('aiq-chat', revew) FROM (VALUES ('a')) t(review)\n"
         "                                    ^^^^^"),
        # After a call: offsets past the rewritten text map back too.
        (f"SELECT ai_query('{CHAT}', 'x') AS a FROM nowhere_table",
         "LINE 1: SELECT ai_query('aiq-chat', 'x') AS a FROM nowhere_table\n"
         "                                                   ^^^^^^^^^^^^^"),
    ],
)  # fmt: skip
def test_duckdb_errors_quote_the_sql_as_written(aiq: AiQueryConnection, sql: str, context: str) -> None:
    import duckdb

    with pytest.raises(duckdb.Error) as info:
        aiq.execute(sql)
    message = str(info.value)
    assert "__modelgate_aiq" not in message and "CASE WHEN" not in message, message
    assert message.endswith("\n\n" + context), message
