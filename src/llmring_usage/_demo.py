"""The demo behind `llmring-usage demo`: a handful of real LLMRing calls through with_usage_logging.

With a provider key in the environment the calls go to that provider; without one (or with
`simulate=True`) they go to a local `FakeProvider` on 127.0.0.1 that answers like OpenAI and
Anthropic, with an offline registry for prices. llmring's registry cache is redirected to a
temporary directory for the run (llmring deletes that cache when a ring closes), and every
environment change is undone at the end, so the demo leaves nothing behind but its records.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ENV_SERVER_URL, default_journal_path
from .delivery.logger import FlushReport
from .errors import ConfigurationError
from .proxy import with_usage_logging
from .stats import last_seq, records_after
from .testing import FakeProvider, write_lockfile, write_registry

DEMO_ORIGIN = "llmring-usage-demo"
OPENAI_MODEL = "openai:gpt-4o-mini"
ANTHROPIC_MODEL = "anthropic:claude-haiku-4-5-20251001"
_PROMPT = "In two sentences: why keep a usage record for every call to a language model?"
_MAX_TOKENS = 300
_FLUSH_TIMEOUT_S = 2.0
"""How long the demo waits for records still on their way (a dead server costs that once)."""
_CLOSE_TIMEOUT_S = 1.0
_SNIPPET_CHARS = 56
SIMULATED_JOURNAL_NAME = "demo.db"
"""Simulated records go to their own journal beside the default one, so that a logger with a real
server that later opens the default journal never sends made-up usage to a team's dashboard."""


def simulated_journal_path() -> Path:
    return default_journal_path().with_name(SIMULATED_JOURNAL_NAME)


@dataclass
class DemoCall:
    """One call the demo made and what came of it."""

    method: str
    model_ref: str
    detail: str = ""
    error: str | None = None


@dataclass
class DemoResult:
    simulated: bool
    provider_url: str | None
    journal_path: Path
    server_url: str | None
    calls: list[DemoCall] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    report: FlushReport | None = None
    notes: list[str] = field(default_factory=list)


def anthropic_usable() -> bool:
    """llmring 1.4 passes `temperature` to messages.create(), which anthropic >= 1 refuses."""
    try:
        version = importlib.metadata.version("anthropic")
    except importlib.metadata.PackageNotFoundError:
        return False
    return int(version.split(".", 1)[0]) < 1


def has_provider_key() -> bool:
    return bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("ANTHROPIC_API_KEY"))


@contextlib.contextmanager
def _patched_env(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


@contextlib.contextmanager
def _patched_attr(owner: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


@contextlib.contextmanager
def _quiet(logger_name: str, level: int) -> Iterator[None]:
    target = logging.getLogger(logger_name)
    old = target.level
    target.setLevel(level)
    try:
        yield
    finally:
        target.setLevel(old)


def run_demo(
    *,
    server_url: str | None = None,
    api_key: str | None = None,
    journal_path: str | Path | None = None,
    simulate: bool = False,
) -> DemoResult:
    """Make the demo's calls and return what they logged. Raises ConfigurationError on bad options."""
    from llmring.registry import RegistryClient

    simulated = simulate or not has_provider_key()
    if simulated and journal_path is None and not (server_url or os.environ.get(ENV_SERVER_URL)):
        journal_path = simulated_journal_path()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="llmring-usage-demo-")))
        stack.enter_context(_patched_attr(RegistryClient, "CACHE_DIR", tmp / "registry-cache"))
        # llmring warns that a ring without a server does not log: that is the point here.
        stack.enter_context(_quiet("llmring", logging.ERROR))
        provider_url = None
        notes: list[str] = []
        registry_url: str | None = None
        use_anthropic = anthropic_usable()
        if simulated:
            fake = stack.enter_context(FakeProvider())
            provider_url = fake.url
            stack.enter_context(_patched_env(fake.env()))
            registry_url = write_registry(tmp / "registry")
            use_openai = True
        else:
            use_openai = bool(os.environ.get("OPENAI_API_KEY"))
            use_anthropic = use_anthropic and bool(os.environ.get("ANTHROPIC_API_KEY"))
        if not use_anthropic and (simulated or os.environ.get("ANTHROPIC_API_KEY")):
            notes.append(
                "Anthropic calls skipped: llmring 1.4 fails with anthropic >= 1 "
                "(pip install 'anthropic<1' to include them)"
            )
        if not (use_openai or use_anthropic):
            raise ConfigurationError(
                "ANTHROPIC_API_KEY is set but the installed anthropic package (>= 1) fails with llmring "
                "1.4: pip install 'anthropic<1', or run `llmring-usage demo --simulate`"
            )
        primary = OPENAI_MODEL if use_openai else ANTHROPIC_MODEL
        secondary = ANTHROPIC_MODEL if use_anthropic else primary
        lockfile = write_lockfile(tmp / "llmring.lock", {"fast": primary, "smart": secondary})

        from llmring.service_extended import LLMRingSession

        ring = LLMRingSession(
            origin=DEMO_ORIGIN,
            registry_url=registry_url,
            lockfile_path=str(lockfile),
            server_url="",
            enable_conversations=False,
        )
        logged = with_usage_logging(
            ring,
            server_url=server_url,
            api_key=api_key,
            journal_path=journal_path,
            origin=DEMO_ORIGIN,
            metadata={"demo": True, "simulated": simulated},
        )
        usage_logger = logged.usage_logger
        result = DemoResult(
            simulated=simulated,
            provider_url=provider_url,
            journal_path=usage_logger.journal.path,
            server_url=usage_logger.config.server_url,
            notes=notes,
        )
        start = last_seq(usage_logger.journal)
        result.calls = asyncio.run(_calls(logged, primary, secondary))
        result.report = usage_logger.flush(_FLUSH_TIMEOUT_S)
        result.records = records_after(usage_logger.journal, start)
        usage_logger.close(timeout_s=_CLOSE_TIMEOUT_S)
    return result


async def _calls(ring: Any, primary: str, secondary: str) -> list[DemoCall]:
    from llmring.schemas import LLMRequest, Message

    def messages() -> list[Any]:
        return [Message(role="user", content=_PROMPT)]

    def request(model: str) -> Any:
        return LLMRequest(model=model, messages=messages(), max_tokens=_MAX_TOKENS)

    async def stream(model: str) -> str:
        chunks = 0
        text = []
        async for chunk in ring.chat_stream(request(model)):
            chunks += 1
            text.append(chunk.delta or "")
        return f"{chunks} chunks: {_snippet(''.join(text))}"

    async def plain() -> str:
        return _snippet((await ring.chat(request(primary))).content)

    async def alias() -> str:
        return _snippet(
            (await ring.chat_with_alias("fast", messages=messages(), max_tokens=_MAX_TOKENS)).content
        )

    conversation_id = uuid.uuid4()

    async def conversation() -> str:
        response = await ring.chat_with_conversation(request(secondary), conversation_id=conversation_id)
        return f"conversation {str(conversation_id)[:8]}: {_snippet(response.content, 32)}"

    plan: list[tuple[DemoCall, Any]] = [
        (DemoCall("chat", primary), plain),
        (DemoCall("chat_with_alias", f"fast -> {primary}"), alias),
        (DemoCall("chat_stream", f"smart -> {secondary}"), lambda: stream("smart")),
        (DemoCall("chat_with_conversation", secondary), conversation),
    ]
    if secondary != OPENAI_MODEL and primary == OPENAI_MODEL:
        plan.append((DemoCall("chat_stream", OPENAI_MODEL), lambda: stream(OPENAI_MODEL)))
    try:
        for call, run in plan:
            try:
                call.detail = await run()
            except Exception as exc:  # one failed call must not end the demo
                call.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        await ring.close()
    return [call for call, _ in plan]


def _snippet(text: str | None, size: int = _SNIPPET_CHARS) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= size else flat[: size - 1] + "…"
