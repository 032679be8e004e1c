"""`modelgate sql` end to end: Parquet in, ai_query, Parquet out; the progress line; errors; Ctrl-C."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.sql.conftest import CHAT, SLOW
from tests.support.live import LiveServer

ROWS = 1000


@pytest.fixture(scope="module")
def questions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("aiq-cli") / "questions.parquet"
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT i AS id, 'question ' || i AS prompt FROM range({ROWS}) t(i)) TO '{path}' (FORMAT parquet)"
    )
    con.close()
    return path


def env_for(server: LiveServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")}
    return {**env, "DATABRICKS_HOST": server.url, "DATABRICKS_TOKEN": server.admin_token, "PYTHONUNBUFFERED": "1"}


def copy_sql(src: Path, dst: Path) -> str:
    return (
        f"COPY (SELECT id, ai_query('{CHAT}', prompt) AS answer FROM '{src}' ORDER BY id) TO '{dst}' (FORMAT parquet)"
    )


def check_answers(path: Path) -> None:
    con = duckdb.connect()
    rows = con.execute(f"SELECT id, answer FROM '{path}'").fetchall()
    con.close()
    assert rows == [(i, f"echo: question {i}") for i in range(ROWS)]


def test_parquet_to_parquet_without_a_terminal_is_silent(
    aiq_server: LiveServer, questions: Path, tmp_path: Path
) -> None:
    out = tmp_path / "answers.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "modelgate", "sql", copy_sql(questions, out)],
        env=env_for(aiq_server), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (proc.returncode, proc.stderr, proc.stdout) == (0, "", "")
    check_answers(out)


def test_parquet_to_parquet_on_a_terminal_shows_progress(
    aiq_server: LiveServer, questions: Path, tmp_path: Path
) -> None:
    out, script = tmp_path / "answers.parquet", tmp_path / "job.sql"
    script.write_text(f"-- a job\n{copy_sql(questions, out)};\n")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelgate", "sql", "--file", str(script)],
        env=env_for(aiq_server), stdout=subprocess.PIPE, stderr=slave,
    )  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stdout, _ = proc.communicate(timeout=120)
    reader.join(10)
    os.close(master)
    terminal = b"".join(chunks).decode()
    assert proc.returncode == 0, terminal
    assert stdout == b""
    final = terminal.replace("\r\n", "\n").split("\r")[-1]
    assert final.startswith(f"ai_query {ROWS:,}/{ROWS:,} rows 100% [")
    assert "rows/s  0 errors" in final
    check_answers(out)


def test_prints_a_table(aiq_server: LiveServer) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "modelgate", "sql", "--host", aiq_server.url, "--token", aiq_server.admin_token,
         f"SELECT i, ai_query('{CHAT}', 'hi ' || i) AS answer FROM range(2) t(i)"],
        env={k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == (
        "+---+------------+\n"
        "| i | answer     |\n"
        "+---+------------+\n"
        "| 0 | echo: hi 0 |\n"
        "| 1 | echo: hi 1 |\n"
        "+---+------------+\n"
        "2 rows\n"
    )


def test_errors_exit_1_with_the_message(aiq_server: LiveServer) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "modelgate", "sql", "SELECT ai_query('aiq-nope', 'x')"],
        env=env_for(aiq_server), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: ai_query: endpoint 'aiq-nope' does not exist (HTTP 404 ")
    missing = subprocess.run(
        [sys.executable, "-m", "modelgate", "sql", "SELECT 1"],
        env={**env_for(aiq_server), "DATABRICKS_HOST": "", "DATABRICKS_CONFIG_FILE": os.devnull},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "no server: pass --host, set DATABRICKS_HOST" in missing.stderr


def test_ctrl_c_stops_cleanly(aiq_server: LiveServer, upstream: FakeUpstreamThread) -> None:
    upstream.reset()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelgate", "sql", "--concurrency", "4",
         f"SELECT ai_query('{SLOW}', 'r' || i) FROM range(2000) t(i)"],
        env=env_for(aiq_server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while len(upstream.requests) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(upstream.requests) >= 8
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert proc.returncode == 130, stderr
    assert stdout == ""
    assert stderr == "Interrupted: stopped the query and the requests in flight.\n"
    sent = len(upstream.requests)
    time.sleep(0.3)
    assert len(upstream.requests) == sent  # nothing more was sent after it stopped
