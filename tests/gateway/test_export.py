"""Exporting inference and usage tables as Parquet (REST and CLI) and Delta Lake (CLI), against live servers."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from modelgate.errors import InvalidParameterValue
from modelgate.gateway.export import TimeRange, inference_table_source, parse_time, record_batches, usage_source
from modelgate.store.db import Database
from tests.conftest import UPSTREAM_KEY
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.gateway.test_usage_and_inference_tables import create_logged_endpoint
from tests.support.live import LiveServer, create_endpoint, external_chat_config

PAYLOAD_TYPES = {
    "databricks_request_id": pa.string(),
    "client_request_id": pa.string(),
    "request_date": pa.date32(),
    "request_time": pa.timestamp("us", tz="UTC"),
    "status_code": pa.int32(),
    "sampling_fraction": pa.float64(),
    "execution_duration_ms": pa.int64(),
    "request": pa.string(),
    "response": pa.string(),
    "logging_error_codes": pa.list_(pa.string()),
    "served_entity_id": pa.string(),
    "requester": pa.string(),
}
USAGE_TYPES = {
    "databricks_request_id": pa.string(),
    "client_request_id": pa.string(),
    "requester": pa.string(),
    "endpoint_name": pa.string(),
    "endpoint_id": pa.string(),
    "served_entity_id": pa.string(),
    "status_code": pa.int32(),
    "usage_date": pa.date32(),
    "request_time": pa.timestamp("us", tz="UTC"),
    "input_token_count": pa.int64(),
    "output_token_count": pa.int64(),
    "input_character_count": pa.int64(),
    "output_character_count": pa.int64(),
    "usage_context": pa.map_(pa.string(), pa.string()),
    "request_streaming": pa.bool_(),
}
# Delta Lake's own type names for the payload table, as Databricks' DDL lists them.
PAYLOAD_DELTA_TYPES = {
    "databricks_request_id": "string",
    "client_request_id": "string",
    "request_date": "date",
    "request_time": "timestamp",
    "status_code": "integer",
    "sampling_fraction": "double",
    "execution_duration_ms": "long",
    "request": "string",
    "response": "string",
    "logging_error_codes": {"type": "array", "elementType": "string", "containsNull": True},
    "served_entity_id": "string",
    "requester": "string",
}


@pytest.fixture(params=["sqlite", "postgres"])
def live(request: pytest.FixtureRequest) -> LiveServer:
    server: LiveServer = request.getfixturevalue("server" if request.param == "sqlite" else "pg_server")
    return server


def _setup(server: LiveServer, upstream: FakeUpstreamThread, name: str) -> None:
    """An endpoint with usage tracking and an inference table, and three queries (one streamed) to it."""
    with server.client() as c:
        create_logged_endpoint(c, name, upstream, "exp")
        for i, text in enumerate(["one two", "three four five"]):
            body = {"messages": [{"role": "user", "content": text}], "client_request_id": f"q-{i}"}
            resp = c.post(f"/serving-endpoints/{name}/invocations", json={**body, "usage_context": {"team": "t"}})
            assert resp.status_code == 200, resp.text
        body = {"messages": [{"role": "user", "content": "six"}], "client_request_id": "q-2", "stream": True}
        with c.stream("POST", f"/serving-endpoints/{name}/invocations", json=body) as r:
            assert r.status_code == 200
            r.read()


def _get_parquet(c: httpx.Client, path: str, rows: int, **params: str) -> pa.Table:
    """GET an export, retrying while the writer has not yet stored `rows` rows."""
    deadline = time.monotonic() + 15
    while True:
        resp = c.get(path, params=params)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "application/vnd.apache.parquet"
        table = pq.read_table(io.BytesIO(resp.content))
        assert int(resp.headers["x-modelgate-row-count"]) == table.num_rows
        if table.num_rows >= rows or time.monotonic() > deadline:
            return table
        time.sleep(0.2)


def _cli(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "modelgate", "export", *args, "--data-dir", str(server.data_dir)]
    return subprocess.run(cmd, env=server.env, capture_output=True, text=True, timeout=120)


def test_rest_exports_parquet_with_databricks_types(live: LiveServer, upstream: FakeUpstreamThread) -> None:
    name = "exp-rest-" + ("pg" if "mg-pg" in str(live.data_dir) else "lite")
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    _setup(live, upstream, name)
    with live.client() as c:
        resp = c.get(f"/api/2.0/serving-endpoints/{name}/inference-table/export")
        assert resp.headers["content-disposition"] == f'attachment; filename="main.exp.{name}_payload.parquet"'
        payload = _get_parquet(c, f"/api/2.0/serving-endpoints/{name}/inference-table/export", 3, format="parquet")
        usage = _get_parquet(c, f"/api/2.0/serving-endpoints/{name}/usage/export", 3, start_time="1h")

        # Time filters: an end before the queries, or a start after them, exports an empty file with the schema.
        before = str(int(started.timestamp() * 1000))
        empty = _get_parquet(c, f"/api/2.0/serving-endpoints/{name}/inference-table/export", 0, end_time=before)
        assert empty.num_rows == 0
        assert dict(zip(empty.schema.names, empty.schema.types, strict=True)) == PAYLOAD_TYPES
        later = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).isoformat()
        assert _get_parquet(c, f"/api/2.0/serving-endpoints/{name}/usage/export", 0, start_time=later).num_rows == 0

    assert payload.schema.names == list(PAYLOAD_TYPES)
    assert dict(zip(payload.schema.names, payload.schema.types, strict=True)) == PAYLOAD_TYPES
    rows = {r["client_request_id"]: r for r in payload.to_pylist()}
    assert set(rows) == {"q-0", "q-1", "q-2"}
    for rid, question in (("q-0", "one two"), ("q-1", "three four five"), ("q-2", "six")):
        row = rows[rid]
        assert row["status_code"] == 200
        assert row["requester"] == "admin"
        assert row["logging_error_codes"] == []
        assert row["sampling_fraction"] == 1.0
        assert row["request_time"] >= started
        assert row["request_date"] == row["request_time"].date()
        assert json.loads(row["request"])["messages"][0]["content"] == question
        assert json.loads(row["response"])["choices"][0]["message"]["content"] == f"echo: {question}"

    assert usage.schema.names == list(USAGE_TYPES)
    assert dict(zip(usage.schema.names, usage.schema.types, strict=True)) == USAGE_TYPES
    by_id = {r["client_request_id"]: r for r in usage.to_pylist()}
    assert set(by_id) == {"q-0", "q-1", "q-2"}
    assert [by_id[k]["input_token_count"] for k in ("q-0", "q-1", "q-2")] == [2, 3, 1]  # the fake counts words
    assert [by_id[k]["output_token_count"] for k in ("q-0", "q-1", "q-2")] == [3, 4, 2]
    assert by_id["q-0"]["usage_context"] == [("team", "t")]
    assert by_id["q-2"]["usage_context"] is None
    assert [by_id[k]["request_streaming"] for k in ("q-0", "q-1", "q-2")] == [False, False, True]
    assert {r["endpoint_name"] for r in by_id.values()} == {name}


def test_cli_exports_delta_and_parquet(live: LiveServer, upstream: FakeUpstreamThread, tmp_path: Path) -> None:
    name = "exp-cli-" + ("pg" if "mg-pg" in str(live.data_dir) else "lite")
    _setup(live, upstream, name)
    with live.client() as c:  # the REST export flushes the server's writer, so the CLI then sees all rows
        _get_parquet(c, f"/api/2.0/serving-endpoints/{name}/usage/export", 3)

    delta_dir = tmp_path / "payload_delta"
    out = _cli(live, "inference-table", name, "--format", "delta", "--out", str(delta_dir), "--since", "1h")
    assert out.returncode == 0, out.stderr
    database = live.env.get("MODELGATE_DATABASE_URL") or str((live.data_dir / "modelgate.db").resolve())
    assert out.stdout.strip() == f"wrote 3 rows of main.exp.{name}_payload from {database} to {delta_dir} (delta)"
    table = DeltaTable(str(delta_dir))
    fields = json.loads(table.schema().to_json())["fields"]
    assert {f["name"]: f["type"] for f in fields} == PAYLOAD_DELTA_TYPES
    data = table.to_pyarrow_table()
    assert data.num_rows == 3
    assert sorted(data.column("client_request_id").to_pylist()) == ["q-0", "q-1", "q-2"]
    assert {json.loads(r)["messages"][0]["content"] for r in data.column("request").to_pylist()} == {
        "one two",
        "three four five",
        "six",
    }

    # An existing table is refused unless asked to append or overwrite.
    again = _cli(live, "inference-table", name, "--format", "delta", "--out", str(delta_dir))
    assert again.returncode != 0
    assert "already exists" in again.stderr
    appended = _cli(
        live, "inference-table", name, "--format", "delta", "--out", str(delta_dir), "--if-exists", "append"
    )
    assert appended.returncode == 0, appended.stderr
    assert DeltaTable(str(delta_dir)).to_pyarrow_table().num_rows == 6
    assert DeltaTable(str(delta_dir)).version() == 1

    # Appending another table's rows is refused with Delta Lake's reason, not a traceback.
    wrong = _cli(live, "usage", name, "--format", "delta", "--out", str(delta_dir), "--if-exists", "append")
    assert wrong.returncode == 1
    assert "Delta Lake refused the write" in wrong.stderr
    assert "Traceback" not in wrong.stderr

    usage_file = tmp_path / "usage.parquet"
    out = _cli(live, "usage", name, "--out", str(usage_file), "--until", "2999-01-01")
    assert out.returncode == 0, out.stderr
    usage = pq.read_table(usage_file)
    assert dict(zip(usage.schema.names, usage.schema.types, strict=True)) == USAGE_TYPES
    assert sorted(usage.column("client_request_id").to_pylist()) == ["q-0", "q-1", "q-2"]
    assert sum(usage.column("input_token_count").to_pylist()) == 6
    assert not list(tmp_path.glob("*.partial"))


def test_rows_stream_in_batches(server: LiveServer, upstream: FakeUpstreamThread, tmp_path: Path) -> None:
    """The export reads and writes a batch at a time: one Parquet row group per batch."""
    name = "exp-batches"
    _setup(server, upstream, name)
    with server.client() as c:
        _get_parquet(c, f"/api/2.0/serving-endpoints/{name}/usage/export", 3)
        _get_parquet(c, f"/api/2.0/serving-endpoints/{name}/inference-table/export", 3)
        ai_gateway = c.get(f"/api/2.0/serving-endpoints/{name}").json()["ai_gateway"]
    db = Database(f"sqlite:///{server.data_dir / 'modelgate.db'}")
    try:
        batches = list(record_batches(db.engine, usage_source(name), TimeRange(), batch_rows=2))
        # A batch also ends once its text passes batch_bytes (payload rows can be 2 MB each).
        by_size = list(record_batches(db.engine, inference_table_source(name, ai_gateway), TimeRange(), batch_bytes=1))
    finally:
        db.dispose()
    assert [b.num_rows for b in batches] == [2, 1]
    assert [b.num_rows for b in by_size] == [1, 1, 1]
    assert [b.column("client_request_id")[0].as_py() for b in by_size] == ["q-0", "q-1", "q-2"]
    writer_path = tmp_path / "b.parquet"
    with pq.ParquetWriter(writer_path, batches[0].schema) as w:
        for b in batches:
            w.write_batch(b)
    assert pq.ParquetFile(writer_path).num_row_groups == 2


def _error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    assert body["error_code"] == code
    message: str = body["message"]
    return message


def test_bad_export_requests_get_databricks_errors(server: LiveServer, upstream: FakeUpstreamThread) -> None:
    name = "exp-bad"
    base = f"/api/2.0/serving-endpoints/{name}"
    reader = server.create_token("exp-reader@example.com")
    with server.client() as c:
        create_endpoint(c, name, external_chat_config(upstream.base_url, api_key=UPSTREAM_KEY))
        ep = c.get(base).json()
        grant = {"access_control_list": [{"user_name": "exp-reader@example.com", "permission_level": "CAN_QUERY"}]}
        assert c.patch(f"/api/2.0/permissions/serving-endpoints/{ep['id']}", json=grant).status_code == 200

        msg = _error(c.get("/api/2.0/serving-endpoints/nope/usage/export"), 404, "RESOURCE_DOES_NOT_EXIST")
        assert "nope" in msg
        msg = _error(c.get(f"{base}/inference-table/export", params={"format": "csv"}), 400, "INVALID_PARAMETER_VALUE")
        assert "parquet" in msg
        msg = _error(c.get(f"{base}/usage/export", params={"format": "delta"}), 400, "INVALID_PARAMETER_VALUE")
        assert "modelgate export" in msg
        msg = _error(c.get(f"{base}/usage/export", params={"start_time": "yesterday"}), 400, "INVALID_PARAMETER_VALUE")
        assert "start_time" in msg
        params = {"start_time": "2026-02-01", "end_time": "2026-01-01"}
        msg = _error(c.get(f"{base}/usage/export", params=params), 400, "INVALID_PARAMETER_VALUE")
        assert "before" in msg

        # Inference tables were never on: no table to export (an empty file would pass for a real export).
        msg = _error(c.get(f"{base}/inference-table/export"), 400, "INVALID_PARAMETER_VALUE")
        assert msg.startswith(f"Endpoint '{name}' writes no inference table")
        # On but nothing logged yet: an empty file with the schema, not an error.
        on = {"inference_table_config": {"catalog_name": "main", "schema_name": "exp", "enabled": True}}
        assert c.put(f"{base}/ai-gateway", json=on).status_code == 200
        resp = c.get(f"{base}/inference-table/export")
        assert resp.status_code == 200, resp.text
        assert pq.read_table(io.BytesIO(resp.content)).schema.names == list(PAYLOAD_TYPES)
    with server.client(reader) as r:
        _error(r.get(f"{base}/inference-table/export"), 403, "PERMISSION_DENIED")


def test_bad_cli_exports_fail_with_a_message(server: LiveServer, tmp_path: Path) -> None:
    out = _cli(server, "inference-table", "no-such-endpoint", "--out", str(tmp_path / "x.parquet"))
    assert out.returncode == 1
    assert "no endpoint named 'no-such-endpoint'" in out.stderr
    out = _cli(server, "usage", "any", "--out", str(tmp_path / "x.parquet"), "--since", "last week")
    assert out.returncode == 1
    assert "'--since' must be epoch milliseconds" in out.stderr
    out = _cli(server, "usage", "any", "--out", str(tmp_path / "x.parquet"), "--if-exists", "append")
    assert out.returncode == 1
    assert "cannot be appended" in out.stderr
    out = _cli(server, "usage", "any", "--out", str(tmp_path / "x.parquet"), "--format", "csv")
    assert out.returncode == 2
    assert not (tmp_path / "x.parquet").exists()


def test_time_forms() -> None:
    now = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    assert parse_time("t", "1767225600000", now=now) == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert parse_time("t", "2026-01-31T12:00:00Z", now=now) == dt.datetime(2026, 1, 31, 12, tzinfo=dt.UTC)
    assert parse_time("t", "2026-01-31T14:00:00+02:00", now=now) == dt.datetime(2026, 1, 31, 12, tzinfo=dt.UTC)
    assert parse_time("t", "2026-01-31", now=now) == dt.datetime(2026, 1, 31, tzinfo=dt.UTC)  # naive means UTC
    assert parse_time("t", "30m", now=now) == now - dt.timedelta(minutes=30)
    assert parse_time("t", "7d", now=now) == now - dt.timedelta(days=7)
    for bad in ("", "soon", "7w", "-5", "99999999999999999999", "2026-13-01"):
        with pytest.raises(InvalidParameterValue, match="'t' must be epoch milliseconds"):
            parse_time("t", bad, now=now)


def test_export_of_a_table_the_endpoint_does_not_write_fails(server: LiveServer, upstream: FakeUpstreamThread) -> None:
    """A PUT .../ai-gateway without inference_table_config turns the table off; exporting then would read the
    default-named table, empty, while the rows sit in main.exp.<name>_payload: it fails instead, saying why."""
    name = "exp-replaced"
    with server.client() as c:
        create_logged_endpoint(c, name, upstream, "exp")
        resp = c.put(f"/api/2.0/serving-endpoints/{name}/ai-gateway", json={"usage_tracking_config": {"enabled": True}})
        assert resp.status_code == 200, resp.text
        rest = c.get(f"/api/2.0/serving-endpoints/{name}/inference-table/export")
    assert rest.status_code == 400
    assert rest.json()["message"].startswith(f"Endpoint '{name}' writes no inference table")
    out = _cli(server, "inference-table", name, "--out", str(server.data_dir / "none.parquet"))
    assert out.returncode != 0 and not out.stdout
    assert f"Endpoint '{name}' writes no inference table" in out.stderr
    assert f"no table 'main.default.{name}_payload' exists" in out.stderr
    assert "PUT .../ai-gateway replaces the whole config" in out.stderr
