"""LLMRingExtended: an LLMRingSession that logs its own usage with no extra code."""

from __future__ import annotations

import inspect
import warnings

from _support.records import journal_records, request
from llmring.schemas import Message
from llmring.service_extended import LLMRingSession

from llmring_usage import LLMRingExtended, with_usage_logging


class TestLLMRingExtended:
    """It is a session, it warns of nothing, and each of its chat methods logs once."""

    def test_is_a_session_without_deprecation_warning(self, make_ring):
        """Constructing it emits no DeprecationWarning (llmring's alias of the same name does)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            session = make_ring(cls=LLMRingExtended, origin="my-app")
        assert isinstance(session, LLMRingSession)
        assert [w for w in caught if issubclass(w.category, DeprecationWarning)] == []

    def test_chat_methods_stay_coroutine_functions(self, make_ring):
        """chat and chat_with_conversation are still coroutine functions."""
        session = make_ring(cls=LLMRingExtended)
        assert inspect.iscoroutinefunction(session.chat)
        assert inspect.iscoroutinefunction(session.chat_with_conversation)

    def test_wrapping_it_again_returns_it(self, make_ring):
        """with_usage_logging(session) sees it already logs and returns it (no second logger)."""
        session = make_ring(cls=LLMRingExtended)
        assert with_usage_logging(session) is session

    async def test_chat_logs_once_with_its_origin(self, make_ring):
        """session.chat gives one record carrying the session's origin."""
        session = make_ring(cls=LLMRingExtended, origin="my-app")
        response = await session.chat(request("openai:gpt-4o-mini"))
        assert response.usage["completion_tokens"] == 286
        (record,) = journal_records(session.usage_logger)
        assert (record.origin, record.model, record.output_tokens) == ("my-app", "gpt-4o-mini", 286)

    async def test_chat_with_conversation_logs_once_with_the_conversation(self, make_ring):
        """chat_with_conversation (which calls chat inside) gives one record linked to the id."""
        session = make_ring(cls=LLMRingExtended)
        await session.chat_with_conversation(request("smart"), conversation_id="conv-42")
        (record,) = journal_records(session.usage_logger)
        assert record.id_at_origin == "conv-42"
        assert record.metadata["conversation_id"] == "conv-42"
        assert (record.provider, record.alias) == ("anthropic", "smart")

    async def test_chat_with_alias_and_stream_log_once_each(self, make_ring):
        """chat_with_alias and a fully read chat_stream give one record each."""
        session = make_ring(cls=LLMRingExtended)
        await session.chat_with_alias("fast", [Message(role="user", content="hi")])
        chunks = [c async for c in session.chat_stream(request("anthropic:claude-haiku-4-5-20251001"))]
        assert chunks
        records = journal_records(session.usage_logger)
        assert [(r.alias, r.provider) for r in records] == [("fast", "openai"), (None, "anthropic")]

    async def test_logger_options_are_accepted(self, make_ring, tmp_path):
        """llmring-usage options (metadata, journal_path) go to the logger, the rest to the session."""
        session = make_ring(cls=LLMRingExtended, metadata={"team": "search"}, journal_path=tmp_path / "j.db")
        await session.chat(request("openai:gpt-4o-mini"))
        assert session.usage_logger.journal.path == tmp_path / "j.db"
        (record,) = journal_records(session.usage_logger)
        assert record.metadata["team"] == "search"
