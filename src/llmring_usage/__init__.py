"""llmring-usage: exactly one usage record for every LLM call made through llmring."""

from .config import LoggerConfig
from .decorator import log_usage
from .delivery.journal import Journal
from .delivery.logger import Counters, FlushReport, UsageLogger
from .errors import (
    AuthenticationError,
    ConfigurationError,
    DeliveryError,
    LLMRingUsageError,
    OutcomeUnknownError,
    RecordRejectedError,
    RetryableDeliveryError,
)
from .extended import LLMRingExtended
from .proxy import UsageLoggingRing, with_usage_logging
from .record import Receipt, UsageRecord

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "Counters",
    "DeliveryError",
    "FlushReport",
    "Journal",
    "LLMRingExtended",
    "LLMRingUsageError",
    "LoggerConfig",
    "OutcomeUnknownError",
    "Receipt",
    "RecordRejectedError",
    "RetryableDeliveryError",
    "UsageLogger",
    "UsageLoggingRing",
    "UsageRecord",
    "log_usage",
    "with_usage_logging",
]
