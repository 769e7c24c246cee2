"""HttpExporter: how llmring-server's answers and transport failures map onto the error tree."""

from __future__ import annotations

import email.utils
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from _support.records import identified_record

from llmring_usage.delivery.exporter import HttpExporter, parse_retry_after
from llmring_usage.errors import (
    AuthenticationError,
    OutcomeUnknownError,
    RecordRejectedError,
    RetryableDeliveryError,
)
from llmring_usage.record import UsageRecord

KEY = "sk-secret-key-1234"


def make_record(origin: str = "exporter") -> UsageRecord:
    return identified_record(origin)


def exporter_for(handler) -> HttpExporter:
    return HttpExporter(
        "http://usage.test/", KEY, timeout_s=1.0, max_connections=2, transport=httpx.MockTransport(handler)
    )


async def send_with(response: httpx.Response | Exception) -> object:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(response, Exception):
            raise response
        return response

    exporter = exporter_for(handler)
    try:
        return await exporter.send(make_record())
    finally:
        await exporter.aclose()


class TestSend:
    """One POST: a receipt, or the error that says what to do next."""

    async def test_success_gives_receipt(self):
        """A 200 answer becomes a Receipt with the server's log id, cost and timestamp."""
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json={"log_id": "L1", "cost": 0.0001737, "timestamp": "T"})

        exporter = exporter_for(handler)
        record = make_record()
        receipt = await exporter.send(record)
        await exporter.aclose()
        assert (receipt.record_id, receipt.log_id, receipt.cost, receipt.timestamp) == (
            record.record_id,
            "L1",
            0.0001737,
            "T",
        )
        assert seen[0].url.path == "/api/v1/log" and seen[0].headers["X-API-Key"] == KEY

    @pytest.mark.parametrize("status", [401, 403])
    async def test_auth_refusal(self, status):
        """401 and 403 raise AuthenticationError, whose message does not carry the key."""
        with pytest.raises(AuthenticationError) as caught:
            await send_with(httpx.Response(status, json={"detail": "no"}))
        assert KEY not in str(caught.value)

    async def test_429_carries_retry_after(self):
        """429 is retryable and carries the server's Retry-After in seconds."""
        with pytest.raises(RetryableDeliveryError) as caught:
            await send_with(httpx.Response(429, headers={"Retry-After": "3"}))
        assert caught.value.retry_after_s == 3.0
        assert not isinstance(caught.value, OutcomeUnknownError)

    @pytest.mark.parametrize("status", [500, 503])
    async def test_5xx_is_retryable_with_known_outcome(self, status):
        """500/503 come from the server itself: retry, no need to ask whether it stored the row."""
        with pytest.raises(RetryableDeliveryError) as caught:
            await send_with(httpx.Response(status))
        assert not isinstance(caught.value, OutcomeUnknownError)

    @pytest.mark.parametrize("status", [502, 504])
    async def test_gateway_errors_have_unknown_outcome(self, status):
        """502/504 from a gateway: the server behind it may have stored the row."""
        with pytest.raises(OutcomeUnknownError):
            await send_with(httpx.Response(status))

    async def test_validation_error_is_rejected_with_reason(self):
        """422 is not retried: RecordRejectedError with the status and the server's reason."""
        with pytest.raises(RecordRejectedError) as caught:
            await send_with(httpx.Response(422, text='{"detail": "bad tokens"}'))
        assert caught.value.status_code == 422 and "bad tokens" in caught.value.reason

    async def test_connect_error_is_retryable_with_known_outcome(self):
        """A refused connection never reached the server: retryable, outcome known."""
        with pytest.raises(RetryableDeliveryError) as caught:
            await send_with(httpx.ConnectError("refused"))
        assert not isinstance(caught.value, OutcomeUnknownError)

    @pytest.mark.parametrize("error", [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("cut")])
    async def test_lost_answer_has_unknown_outcome(self, error):
        """A timeout or a cut after the request was written leaves the outcome unknown."""
        with pytest.raises(OutcomeUnknownError):
            await send_with(error)

    async def test_unreadable_success_has_unknown_outcome(self):
        """A 200 whose body is not JSON: the row may exist, the receipt is unknown."""
        with pytest.raises(OutcomeUnknownError):
            await send_with(httpx.Response(200, text="<html>"))


class TestFindMany:
    """Reading back GET /api/v1/logs to find records whose outcome is unknown."""

    async def test_finds_ids_across_pages_from_before_the_earliest(self):
        """Matches on metadata.record_id across 500-row pages; start_date is before the records."""
        records = [make_record() for _ in range(2)]
        filler = [{"id": f"x{i}", "metadata": {"record_id": f"other-{i}"}} for i in range(500)]
        pages = [
            filler,
            [{"id": "L9", "cost": 0.1, "logged_at": "T", "metadata": {"record_id": records[1].record_id}}],
        ]
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            offset = int(request.url.params["offset"])
            return httpx.Response(200, json=pages[offset // 500] if offset // 500 < len(pages) else [])

        exporter = exporter_for(handler)
        found = await exporter.find_many(records)
        await exporter.aclose()
        assert list(found) == [records[1].record_id] and found[records[1].record_id].log_id == "L9"
        assert [request.url.params["offset"] for request in seen] == ["0", "500"]
        assert seen[0].url.params["origin"] == "exporter"
        start = datetime.fromisoformat(seen[0].url.params["start_date"])
        assert start < datetime.now(timezone.utc) - timedelta(minutes=5)

    async def test_empty_list_asks_nothing(self):
        """No records: no request."""

        def handler(request: httpx.Request) -> httpx.Response:
            raise AssertionError("no request expected")

        exporter = exporter_for(handler)
        assert await exporter.find_many([]) == {}
        await exporter.aclose()

    async def test_unreachable_server_raises(self):
        """A server that cannot be asked raises a DeliveryError, so the record is not resent blind."""

        def handler(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("refused")

        exporter = exporter_for(handler)
        with pytest.raises(RetryableDeliveryError):
            await exporter.find_many([make_record()])
        await exporter.aclose()


class TestParseRetryAfter:
    """Retry-After in seconds or as an HTTP date."""

    def test_seconds(self):
        """Delta-seconds, never negative."""
        assert parse_retry_after("2") == 2.0
        assert parse_retry_after(" 1.5 ") == 1.5
        assert parse_retry_after("-4") == 0.0

    def test_http_date(self):
        """An HTTP date gives the seconds until then."""
        when = email.utils.formatdate(time.time() + 30, usegmt=True)
        assert 25 <= parse_retry_after(when) <= 31

    @pytest.mark.parametrize("value", [None, "", "soon"])
    def test_absent_or_unreadable(self, value):
        """Missing or unreadable headers give None."""
        assert parse_retry_after(value) is None
