"""Options are checked where they are given, and the server comes from arguments, env or the ring."""

from __future__ import annotations

import logging

import pytest
from _support.records import journal_records, request

from llmring_usage import ConfigurationError, LLMRingExtended, LoggerConfig, log_usage, with_usage_logging
from llmring_usage.config import check_server_url, resolve_config

BAD_OPTIONS = [
    pytest.param({"server_url": "ftp://example.com", "api_key": "k"}, "http", id="non-http-url"),
    pytest.param({"server_url": "localhost:8000", "api_key": "k"}, "http", id="url-without-scheme"),
    pytest.param({"server_url": "http://", "api_key": "k"}, "host", id="url-without-host"),
    pytest.param({"metadata": {"when": object()}}, "JSON", id="non-json-metadata"),
    pytest.param({"metadata": {"x": float("nan")}}, "JSON", id="nan-metadata"),
    pytest.param({"metadata": ["not", "a", "dict"]}, "dict", id="metadata-not-a-dict"),
    pytest.param({"timeout_s": -1}, "timeout_s", id="negative-timeout"),
    pytest.param({"timeout_s": float("nan")}, "timeout_s", id="nan-timeout"),
    pytest.param({"delivery": "sometimes"}, "delivery", id="bad-delivery-mode"),
    pytest.param({"server_url": "http://127.0.0.1:1"}, "API key", id="url-without-key"),
    pytest.param({"origin": ""}, "origin", id="empty-origin"),
]


class TestConfigurationErrors:
    """A bad option raises ConfigurationError (a ValueError) at wrap or decorate time."""

    def test_configuration_error_is_a_value_error(self):
        """Callers catching ValueError also catch bad options."""
        assert issubclass(ConfigurationError, ValueError)

    @pytest.mark.parametrize("options, message", BAD_OPTIONS)
    def test_with_usage_logging_refuses_at_wrap_time(self, make_ring, options, message):
        """with_usage_logging(ring, <bad option>) raises before any call is made."""
        ring = make_ring()
        with pytest.raises(ConfigurationError, match=message):
            with_usage_logging(ring, **options)

    @pytest.mark.parametrize("options, message", BAD_OPTIONS)
    def test_log_usage_refuses_at_decorate_time(self, options, message):
        """log_usage(<bad option>) raises when decorating: the function is never called."""
        calls = []
        with pytest.raises(ConfigurationError, match=message):

            @log_usage(**options)
            async def ask(prompt):
                calls.append(prompt)

        assert calls == []

    @pytest.mark.parametrize("options, message", BAD_OPTIONS)
    def test_llmring_extended_refuses_at_construction(self, provider, registry_url, options, message):
        """LLMRingExtended(<bad option>) raises from its constructor."""
        with pytest.raises(ConfigurationError, match=message):
            LLMRingExtended(registry_url=registry_url, **{"server_url": "", **options})

    def test_bad_provider_override_is_refused(self):
        """log_usage(provider="") is refused when decorating."""
        with pytest.raises(ConfigurationError, match="provider"):
            log_usage(provider="")

    def test_decorating_a_non_callable_is_refused(self):
        """log_usage(...)(42) says it decorates functions."""
        with pytest.raises(ConfigurationError, match="function"):
            log_usage(origin="x")(42)

    def test_env_url_that_is_not_http_is_refused_at_wrap_time(self, make_ring, monkeypatch):
        """A bad LLMRING_SERVER_URL is reported when wrapping, not on the first call."""
        monkeypatch.setenv("LLMRING_SERVER_URL", "file:///tmp/x")
        monkeypatch.setenv("LLMRING_API_KEY", "k")
        with pytest.raises(ConfigurationError, match="http"):
            with_usage_logging(make_ring())

    def test_check_server_url_strips_the_trailing_slash(self):
        """A good URL is kept without its trailing slash."""
        assert check_server_url(" https://usage.example.com/ ") == "https://usage.example.com"


class TestResolution:
    """explicit arguments > LLMRING_SERVER_URL / LLMRING_API_KEY > the ring's own server."""

    def test_explicit_arguments_win_over_env_and_ring(self, make_ring, monkeypatch):
        """server_url= and api_key= are used even when env and ring name other servers."""
        monkeypatch.setenv("LLMRING_SERVER_URL", "http://env.example:1")
        monkeypatch.setenv("LLMRING_API_KEY", "env-key")
        ring = make_ring(server_url="http://ring.example:1", api_key="ring-key")
        config = with_usage_logging(ring, server_url="http://explicit.example:1", api_key="explicit-key")
        assert (config.usage_logger.config.server_url, config.usage_logger.config.api_key) == (
            "http://explicit.example:1",
            "explicit-key",
        )

    def test_env_wins_over_the_ring(self, make_ring, monkeypatch):
        """With no arguments, LLMRING_SERVER_URL / LLMRING_API_KEY beat the ring's own server."""
        ring = make_ring(server_url="http://ring.example:1", api_key="ring-key")
        monkeypatch.setenv("LLMRING_SERVER_URL", "http://env.example:1")
        monkeypatch.setenv("LLMRING_API_KEY", "env-key")
        config = with_usage_logging(ring).usage_logger.config
        assert (config.server_url, config.api_key) == ("http://env.example:1", "env-key")

    def test_ring_server_is_the_fallback(self, make_ring):
        """With no arguments and no env, the ring's own server_url and API key are used."""
        ring = make_ring(server_url="http://ring.example:1", api_key="ring-key")
        config = with_usage_logging(ring).usage_logger.config
        assert (config.server_url, config.api_key) == ("http://ring.example:1", "ring-key")

    def test_url_and_key_resolve_independently(self, make_ring, monkeypatch):
        """An explicit URL with the key from the environment works (URL and key each fall back)."""
        monkeypatch.setenv("LLMRING_API_KEY", "env-key")
        config = with_usage_logging(make_ring(), server_url="http://explicit.example:1").usage_logger.config
        assert (config.server_url, config.api_key) == ("http://explicit.example:1", "env-key")

    def test_delivery_mode_from_env(self, monkeypatch):
        """LLMRING_USAGE_DELIVERY chooses the mode when none is given."""
        monkeypatch.setenv("LLMRING_USAGE_DELIVERY", "background")
        assert resolve_config().delivery == "background"
        assert resolve_config(delivery="inline").delivery == "inline"

    def test_no_server_anywhere_means_no_sending(self):
        """Without a URL anywhere the logger does not send (journal only)."""
        config = resolve_config()
        assert config.server_url is None
        assert LoggerConfig().server_url is None

    def test_journal_path_follows_home(self, isolated_env):
        """The default journal lives under the (test's) XDG data home."""
        assert str(resolve_config().journal_path).startswith(str(isolated_env))

    def test_config_repr_hides_the_api_key(self):
        """The API key never shows in the configuration's repr."""
        config = LoggerConfig(server_url="http://127.0.0.1:1", api_key="sk-secret-123")
        assert "sk-secret-123" not in repr(config)


class TestJournalOnly:
    """With no server configured, every record lands in the local journal and nothing warns."""

    async def test_records_land_in_the_journal_without_a_warning_per_call(self, make_ring, caplog):
        """Three chats give three pending journal rows and no warning from llmring-usage."""
        caplog.set_level(logging.INFO, logger="llmring_usage")
        ring = with_usage_logging(make_ring(), origin="offline")
        for _ in range(3):
            response = await ring.chat(request("openai:gpt-4o-mini"))
            assert response.usage["completion_tokens"] == 286
        counts = ring.usage_logger.journal.counts()
        assert (counts.pending, counts.delivered) == (3, 0)
        assert ring.usage_logger.sends is False
        assert [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "llmring_usage"] == []

    async def test_journaled_record_is_complete(self, make_ring):
        """The journaled record has model, provider, tokens, cost and the origin given."""
        ring = with_usage_logging(make_ring(), origin="offline")
        await ring.chat(request("openai:gpt-4o-mini"))
        (record,) = journal_records(ring.usage_logger)
        assert (record.model, record.provider, record.origin) == ("gpt-4o-mini", "openai", "offline")
        assert (record.input_tokens, record.output_tokens) == (14, 286)
        assert record.cost == pytest.approx(14 * 0.15 / 1e6 + 286 * 0.60 / 1e6, abs=1e-12)
