"""What an endpoint's AI Gateway config records of each query, sampling included."""

from __future__ import annotations

from sqlalchemy import MetaData

from modelgate.gateway.tables import (
    USAGE_BARE,
    USAGE_FULL,
    RecordingPlan,
    payload_table,
    recording_plan,
    usage_table,
)

TABLE = {"enabled": True, "catalog_name": "main", "schema_name": "logs", "table_name_prefix": "chat"}


def test_nothing_on_records_nothing() -> None:
    assert recording_plan("chat", None) is None
    assert recording_plan("chat", {"usage_tracking_config": {"enabled": False}}) is None


def test_usage_only_and_table_only() -> None:
    assert recording_plan("chat", {"usage_tracking_config": {"enabled": True}}) == RecordingPlan(True, None)
    plan = recording_plan("chat", {"inference_table_config": TABLE})
    assert plan == RecordingPlan(False, "main.logs.chat_payload", 1.0)
    assert all(plan.keeps_payload() for _ in range(100))


def test_a_plan_without_a_table_keeps_no_payload() -> None:
    plan = recording_plan("chat", {"usage_tracking_config": {"enabled": True}})
    assert plan is not None
    assert not any(plan.keeps_payload() for _ in range(100))


def test_sampling_keeps_about_its_fraction() -> None:
    plan = recording_plan("chat", {"inference_table_config": {**TABLE, "sampling_fraction": 0.25}})
    assert plan is not None and plan.sampling_fraction == 0.25
    kept = sum(plan.keeps_payload() for _ in range(20_000))
    # Binomial(20000, 0.25): the mean is 5000, the standard deviation ~61; this bound is over 8 of them.
    assert 4500 < kept < 5500


def test_row_shapes_cover_their_tables() -> None:
    """A full shape names every column but the row key; a bare one leaves out only the optional columns."""
    metadata = MetaData()
    usage_columns = {c.name for c in usage_table(metadata).columns} - {"id"}
    assert set(USAGE_FULL.columns) == usage_columns and len(USAGE_FULL.columns) == len(usage_columns)
    assert set(USAGE_FULL.columns) - set(USAGE_BARE.columns) == {"client_request_id", "usage_context"}
    plan = recording_plan("chat", {"inference_table_config": TABLE})
    assert plan is not None and plan.payload_shapes is not None
    bare, full = plan.payload_shapes
    assert bare.table == full.table == "main.logs.chat_payload"
    payload_columns = {c.name for c in payload_table(metadata, full.table).columns} - {"id"}
    assert set(full.columns) == payload_columns and len(full.columns) == len(payload_columns)
    assert set(full.columns) - set(bare.columns) == {"client_request_id"}
    usage_only = recording_plan("chat", {"usage_tracking_config": {"enabled": True}})
    assert usage_only is not None and usage_only.payload_shapes is None
