"""HttpExporter: sends one record to llmring-server's POST /api/v1/log and finds records already there."""

from __future__ import annotations

import email.utils
import time
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn

import httpx

from ..errors import (
    AuthenticationError,
    OutcomeUnknownError,
    RecordRejectedError,
    RetryableDeliveryError,
)
from ..record import CLIENT_TIMESTAMP_KEY, RECORD_ID_KEY, Receipt, UsageRecord

LOG_PATH = "/api/v1/log"
LOGS_PATH = "/api/v1/logs"
_LOGS_PAGE_SIZE = 500
_FIND_WINDOW = timedelta(minutes=10)
"""How far before a record's client timestamp the server's rows are searched for it."""
_MAX_FIND_PAGES = 40
_REASON_CHARS = 500


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


class HttpExporter:
    """Talks to one llmring-server with one pooled httpx client; raises the library's DeliveryErrors."""

    def __init__(
        self,
        server_url: str,
        api_key: str,
        *,
        timeout_s: float,
        max_connections: int,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.server_url,
            headers={"X-API-Key": api_key, "User-Agent": "llmring-usage"},
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
        )

    async def send(self, record: UsageRecord) -> Receipt:
        """POST one record; return the server's receipt or raise a DeliveryError subclass."""
        try:
            response = await self._client.post(LOG_PATH, json=record.to_body())
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise RetryableDeliveryError(f"cannot reach {self.server_url}: {_describe(exc)}") from exc
        except httpx.TransportError as exc:
            # The request may have been written before the failure: the server may hold the row.
            raise OutcomeUnknownError(f"no answer from {self.server_url}: {_describe(exc)}") from exc
        return self._receipt(record, response)

    def _receipt(self, record: UsageRecord, response: httpx.Response) -> Receipt:
        status = response.status_code
        if 200 <= status < 300:
            try:
                return Receipt.from_response(record.record_id, response.json())
            except ValueError as exc:
                raise OutcomeUnknownError(f"unreadable answer (HTTP {status})") from exc
        self._raise_for(response)

    @staticmethod
    def _raise_for(response: httpx.Response) -> NoReturn:
        status = response.status_code
        if status in (401, 403):
            raise AuthenticationError(f"the server refused the API key (HTTP {status})")
        if status == 429:
            raise RetryableDeliveryError(
                "rate limited (HTTP 429)",
                retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status in (502, 504):
            raise OutcomeUnknownError(f"gateway error (HTTP {status})")
        if status >= 500:
            raise RetryableDeliveryError(
                f"server error (HTTP {status})",
                retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
            )
        reason = response.text[:_REASON_CHARS]
        raise RecordRejectedError(
            f"the server rejected the record (HTTP {status}): {reason}",
            status_code=status,
            reason=reason,
        )

    async def find_many(self, records: list[UsageRecord]) -> dict[str, Receipt]:
        """Receipts of those `records` the server already stored, by record id.

        Used before re-sending records whose earlier attempt has an unknown outcome: one scan of
        `GET /api/v1/logs` from shortly before the earliest of them. Raises a DeliveryError when
        the server cannot be asked.
        """
        wanted = {record.record_id for record in records}
        if not wanted:
            return {}
        start = min(_client_time(record) for record in records) - _FIND_WINDOW
        params: dict[str, Any] = {"start_date": start.isoformat(), "limit": _LOGS_PAGE_SIZE}
        origins = {record.origin for record in records}
        if len(origins) == 1 and None not in origins:
            params["origin"] = origins.pop()
        found: dict[str, Receipt] = {}
        for page in range(_MAX_FIND_PAGES):
            params["offset"] = page * _LOGS_PAGE_SIZE
            rows = await self.get_json(LOGS_PATH, params)
            if not isinstance(rows, list):
                raise RetryableDeliveryError(f"unexpected answer from {self.server_url}{LOGS_PATH}")
            for row in rows:
                record_id = (row.get("metadata") or {}).get(RECORD_ID_KEY)
                if record_id in wanted:
                    found[record_id] = Receipt(
                        record_id=record_id,
                        log_id=str(row.get("id", "")),
                        cost=row.get("cost"),
                        timestamp=str(row.get("logged_at", "")),
                    )
            if len(found) == len(wanted) or len(rows) < _LOGS_PAGE_SIZE:
                return found
        raise RetryableDeliveryError("too many rows to search for records of unknown outcome")

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET a JSON document from the server (for stats, logs and health), raising DeliveryErrors."""
        try:
            response = await self._client.get(path, params=params)
        except httpx.TransportError as exc:
            raise RetryableDeliveryError(f"cannot reach {self.server_url}: {_describe(exc)}") from exc
        if response.status_code != 200:
            self._raise_for(response)
        try:
            return response.json()
        except ValueError as exc:  # e.g. an HTML page from a proxy: a DeliveryError, never a crash
            raise RetryableDeliveryError(f"unreadable answer from {self.server_url}{path}") from exc

    async def aclose(self) -> None:
        await self._client.aclose()


def _client_time(record: UsageRecord) -> datetime:
    raw = record.metadata.get(CLIENT_TIMESTAMP_KEY)
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    return datetime.now(timezone.utc) - timedelta(days=1)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
