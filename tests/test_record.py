"""UsageRecord is exactly the body of POST /api/v1/log; Receipt is the server's answer."""

from __future__ import annotations

import json

import pydantic
import pytest

from llmring_usage import Receipt, UsageRecord
from llmring_usage.record import RECORD_ID_KEY, new_record_id


def _record(**overrides) -> UsageRecord:
    fields = {
        "model": "gpt-4o-mini",
        "provider": "openai",
        "input_tokens": 14,
        "output_tokens": 286,
        "metadata": {RECORD_ID_KEY: "abc123", "model_alias": "openai:gpt-4o-mini"},
    }
    fields.update(overrides)
    return UsageRecord(**fields)


class TestUsageRecord:
    """The pydantic model of the server's UsageLogRequest."""

    def test_fields_match_the_servers_usage_log_request(self):
        """Every field name is one llmring-server's UsageLogRequest accepts, and vice versa."""
        from llmring_server.models.usage import UsageLogRequest

        assert set(UsageRecord.model_fields) == set(UsageLogRequest.model_fields)

    def test_body_leaves_out_unset_optional_fields(self):
        """to_body() omits None fields (the server then applies its own defaults)."""
        body = _record().to_body()
        assert "cost" not in body and "alias" not in body and "latency_ms" not in body
        assert body["cached_input_tokens"] == 0
        assert body["metadata"]["model_alias"] == "openai:gpt-4o-mini"

    def test_body_is_accepted_by_the_servers_model(self):
        """A full record validates as the server's UsageLogRequest with the same values."""
        from llmring_server.models.usage import UsageLogRequest

        record = _record(cost=0.0001737, latency_ms=120, alias="fast", profile="default", id_at_origin="c1")
        parsed = UsageLogRequest.model_validate(record.to_body())
        assert (parsed.model, parsed.input_tokens, parsed.output_tokens) == ("gpt-4o-mini", 14, 286)
        assert float(parsed.cost) == pytest.approx(0.0001737)
        assert parsed.id_at_origin == "c1"

    def test_json_round_trip(self):
        """from_json(to_json()) gives an equal record."""
        record = _record(cost=0.5, latency_ms=3, origin="app")
        assert UsageRecord.from_json(record.to_json()) == record
        assert json.loads(record.to_json())["origin"] == "app"

    def test_record_id_comes_from_metadata(self):
        """record_id reads the client-generated id from metadata, empty when absent."""
        assert _record().record_id == "abc123"
        assert _record(metadata={}).record_id == ""

    @pytest.mark.parametrize(
        "field, value",
        [
            ("input_tokens", -1),
            ("output_tokens", -1),
            ("cached_input_tokens", -1),
            ("cost", -0.1),
            ("latency_ms", -5),
        ],
    )
    def test_negative_numbers_are_refused(self, field, value):
        """Token counts, cost and latency cannot be negative."""
        with pytest.raises(pydantic.ValidationError):
            _record(**{field: value})

    def test_unknown_fields_are_refused_and_records_are_frozen(self):
        """A field the server does not know is an error; a record cannot be changed."""
        with pytest.raises(pydantic.ValidationError):
            _record(conversation_id="x")
        record = _record()
        with pytest.raises(pydantic.ValidationError):
            record.model = "other"  # type: ignore[misc]

    def test_new_record_ids_are_unique(self):
        """Each call gets its own client-generated id."""
        assert len({new_record_id() for _ in range(1000)}) == 1000


class TestReceipt:
    """The server's answer to one POST, kept for the caller."""

    def test_from_response_reads_log_id_cost_and_timestamp(self):
        """log_id, cost (as a float) and timestamp are taken from the server's JSON."""
        receipt = Receipt.from_response(
            "abc", {"log_id": "f4c9", "cost": "0.0001737", "timestamp": "2026-01-01T00:00:00"}
        )
        assert receipt == Receipt("abc", "f4c9", 0.0001737, "2026-01-01T00:00:00")

    def test_missing_cost_is_none(self):
        """An answer without a cost gives cost None, not 0."""
        assert Receipt.from_response("abc", {"log_id": "x"}).cost is None
