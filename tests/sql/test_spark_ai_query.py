"""ai_query on a local PySpark session (the distributed binding), against the live server and fake upstream."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from modelgate.sql.errors import AiQueryError
from modelgate.sql.spark_binding import SparkAiQuery, register
from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.sql.conftest import CHAT, EMBEDDINGS, FAILING
from tests.support.live import LiveServer

pyspark = pytest.importorskip("pyspark")


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable  # workers must import modelgate too
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"  # stay on loopback
    session = (
        SparkSession.builder.master("local[2]")
        .appName("modelgate-ai-query-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "64")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def aiq(spark: Any, aiq_server: LiveServer) -> Iterator[SparkAiQuery]:
    spark.createDataFrame(
        [(i, f"question {i}" if i % 10 else None) for i in range(200)], "id INT, q STRING"
    ).repartition(2).createOrReplaceTempView("questions")
    binding = register(spark, aiq_server.url, aiq_server.admin_token, concurrency=16, max_retries=1)
    yield binding
    binding.close()


def test_chat_keeps_row_order_and_nulls_across_partitions(aiq: SparkAiQuery) -> None:
    rows = aiq.sql(f"SELECT id, ai_query('{CHAT}', q) AS a FROM questions ORDER BY id").collect()
    assert len(rows) == 200
    for row in rows:
        assert row["a"] == (None if row["id"] % 10 == 0 else f"echo: question {row['id']}")


def test_named_arguments_and_model_parameters(aiq: SparkAiQuery, upstream: FakeUpstreamThread) -> None:
    upstream.reset()
    row = aiq.sql(
        f"SELECT ai_query(endpoint => '{CHAT}', request => 'spark hi', "
        "modelParameters => named_struct('max_tokens', 7, 'temperature', 0.2)) AS a"
    ).first()
    assert row["a"] == "echo: spark hi"
    sent = [r.json for r in upstream.requests if r.json and "spark hi" in str(r.json.get("messages"))]
    assert len(sent) == 1
    assert sent[0]["max_tokens"] == 7 and sent[0]["temperature"] == 0.2


def test_embeddings_return_float_arrays(aiq: SparkAiQuery) -> None:
    row = aiq.sql(f"SELECT ai_query('{EMBEDDINGS}', 'embed me') AS v").first()
    assert isinstance(row["v"], list) and len(row["v"]) == 8
    assert all(isinstance(x, float) for x in row["v"])
    schema = aiq.sql(f"SELECT ai_query('{EMBEDDINGS}', 'x') AS v").schema
    assert schema["v"].dataType.simpleString() == "array<float>"


def test_fail_on_error_false_gives_result_and_error_message(aiq: SparkAiQuery) -> None:
    rows = aiq.sql(
        f"SELECT ai_query('{FAILING}', 'boom', failOnError => false) AS r, "
        f"ai_query('{CHAT}', 'fine', failOnError => false) AS ok"
    ).collect()
    failed, ok = rows[0]["r"], rows[0]["ok"]
    assert failed["result"] is None and "Injected 400 error" in failed["errorMessage"]
    assert ok["result"] == "echo: fine" and ok["errorMessage"] is None


def test_fail_on_error_true_fails_the_query_with_the_endpoint_error(aiq: SparkAiQuery) -> None:
    with pytest.raises(Exception, match="Injected 400 error"):
        aiq.sql(f"SELECT ai_query('{FAILING}', 'boom') AS r").collect()


def test_bad_calls_fail_before_any_row_is_sent(aiq: SparkAiQuery) -> None:
    with pytest.raises(AiQueryError, match="no-such-endpoint"):
        aiq.sql("SELECT ai_query('no-such-endpoint', 'x')")
    with pytest.raises(AiQueryError, match="returnType"):
        aiq.sql(f"SELECT ai_query('{CHAT}', 'x', returnType => 'STRUCT<')")


def test_struct_return_type_and_response_formats(aiq: SparkAiQuery, upstream: FakeUpstreamThread) -> None:
    rt = "STRUCT<label: STRING, score: DOUBLE, n: INT, tags: ARRAY<STRING>>"
    df = aiq.sql(f"SELECT ai_query('{CHAT}', 'classify me', returnType => '{rt}') AS v")
    assert df.schema["v"].dataType.simpleString() == "struct<label:string,score:double,n:int,tags:array<string>>"
    assert df.first()["v"].asDict() == {"label": "Paris", "score": 1.0, "n": 1, "tags": []}
    upstream.reset()
    row = aiq.sql(
        f"""SELECT ai_query('{CHAT}', 'json please', responseFormat => '{{"type": "json_object"}}') AS j,
                   ai_query('{CHAT}', 'Paris has 2M people',
                            responseFormat => 'STRUCT<extraction: STRUCT<city: STRING, population: BIGINT>>') AS d"""
    ).first()
    assert row["j"] == '{"echo": "json please"}'
    assert row["d"] == '{"city": "Paris", "population": 1}'
    formats = sorted(
        r.json["response_format"]["type"] for r in upstream.requests if r.json and "response_format" in r.json
    )
    assert formats == ["json_object", "json_schema"]
