"""The error tree of llmring-usage.

LLMRingUsageError
├── ConfigurationError (also ValueError)   bad options, raised at wrap or decorate time
└── DeliveryError                          a record could not be delivered (never reaches callers
    │                                      of a wrapped ring: the processor catches it)
    ├── RetryableDeliveryError             connection refused, timeout, 5xx, 429
    │   └── OutcomeUnknownError            the request may have reached the server
    ├── AuthenticationError                401 / 403: the key is wrong; records are kept
    └── RecordRejectedError                other 4xx: the server refuses this record
"""

from __future__ import annotations


class LLMRingUsageError(Exception):
    """Base class of every error this library raises."""


class ConfigurationError(LLMRingUsageError, ValueError):
    """An option given to with_usage_logging, log_usage or UsageLogger is invalid."""


class DeliveryError(LLMRingUsageError):
    """A record could not be delivered to the server."""


class RetryableDeliveryError(DeliveryError):
    """A transient failure: the record is kept and sent again later."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class OutcomeUnknownError(RetryableDeliveryError):
    """The request was sent but no answer came back: the server may hold the record already."""


class AuthenticationError(DeliveryError):
    """The server refused the API key (401 or 403)."""


class RecordRejectedError(DeliveryError):
    """The server refused the record itself (a 4xx other than 401, 403 and 429)."""

    def __init__(self, message: str, *, status_code: int, reason: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.reason = reason
