"""Shared fixtures: an isolated environment, the fake provider, real rings, the real server.

Fixtures
    isolated_env (autouse)  HOME, XDG dirs and llmring's registry cache in a tmp dir; no LLMRING_*,
                            no provider keys or base URLs from the outside environment.
    provider                a running ``FakeProvider`` whose env is applied (reset per test).
    registry_url            ``file://`` URL of the offline registry (see llmring_usage.testing).
    lockfile                path of a lockfile binding ``fast`` and ``smart``.
    make_ring               ``make_ring(cls=LLMRing, **kwargs)``: a real ring on the above,
                            closed at teardown; ``server_url=""`` (no builtin logging) unless given.
    llmring_server          session: ``RealServer`` in bridge mode over a fresh PostgreSQL database.
    server                  the same server, restarted around the test if a test stopped it.
    strict_server           a second instance, strict key validation, same database.
    hung_server, refusing_port, fault_proxy   fault tools (see tests/_support/faults.py).

Without PostgreSQL the server fixtures fail under CI=true and skip otherwise.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import _support.server as server_support
import pytest
from _support.env import FOREIGN_ENV
from _support.faults import FaultProxy, HungServer, RefusingPort
from _support.server import RealServer

try:
    from llmring_usage.testing import (
        FakeProvider,
        closing_usage_loggers,
        write_lockfile,
        write_registry,
    )
except ImportError:  # the package is not installed: use the source tree
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from llmring_usage.testing import (
        FakeProvider,
        closing_usage_loggers,
        write_lockfile,
        write_registry,
    )

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# --------------------------------------------------------------------------- environment


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Give each test its own HOME (llmring's registry cache, our journal) and a clean env."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for name in list(os.environ):
        if name.startswith("LLMRING_") or name in FOREIGN_ENV:
            monkeypatch.delenv(name, raising=False)
    no_proxy = ",".join(p for p in (os.environ.get("NO_PROXY", ""), "127.0.0.1,localhost") if p)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.setenv("no_proxy", no_proxy)
    # llmring computes its registry cache dir from Path.home() at import time.
    from llmring.registry import RegistryClient

    monkeypatch.setattr(RegistryClient, "CACHE_DIR", home / ".cache" / "llmring" / "registry", raising=True)
    return home


@pytest.fixture(autouse=True)
def _close_new_loggers() -> Iterator[None]:
    """Close every usage logger a test created, so no worker thread outlives it."""
    with closing_usage_loggers(timeout_s=1.0):
        yield


# --------------------------------------------------------------------------- provider, ring


@pytest.fixture(scope="session")
def _provider_session() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def provider(_provider_session: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> FakeProvider:
    """The fake OpenAI/Anthropic endpoint, reset, with its env applied for this test."""
    _provider_session.reset()
    for name, value in _provider_session.env().items():
        monkeypatch.setenv(name, value)
    return _provider_session


@pytest.fixture(scope="session")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``file://`` URL of the offline registry (read-only: never written by llmring)."""
    return write_registry(tmp_path_factory.mktemp("registry"))


@pytest.fixture
def lockfile(tmp_path: Path) -> Path:
    """A lockfile binding ``fast`` -> openai:gpt-4o-mini, ``smart`` -> anthropic haiku 4.5."""
    return write_lockfile(tmp_path / "llmring.lock")


@pytest.fixture
async def make_ring(
    provider: FakeProvider, registry_url: str, lockfile: Path
) -> AsyncIterator[Callable[..., Any]]:
    """Factory for real rings on the fake provider; every ring it made is closed at teardown."""
    from llmring import LLMRing

    rings: list[Any] = []

    def make(cls: type = LLMRing, **kwargs: Any) -> Any:
        kwargs.setdefault("registry_url", registry_url)
        kwargs.setdefault("lockfile_path", str(lockfile))
        kwargs.setdefault("server_url", "")
        ring = cls(**kwargs)
        rings.append(ring)
        return ring

    yield make
    for ring in reversed(rings):
        await ring.close()
        server_client = getattr(ring, "server_client", None)
        if server_client is not None:
            await server_client.close()


# --------------------------------------------------------------------------- real server


def _require_postgres() -> None:
    if server_support.postgres_reachable():
        return
    if server_support.try_start_postgres() and server_support.postgres_reachable():
        return
    message = (
        f"PostgreSQL is not reachable at {server_support.ADMIN_DSN} (tried pg_ctlcluster start). "
        "The real llmring-server tests need it."
    )
    if IN_CI:
        pytest.fail("CI=true and " + message, pytrace=False)
    pytest.skip("SKIPPED OUTSIDE CI ONLY (CI=true fails instead): " + message)


@pytest.fixture(scope="session")
def server_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the session's servers, dropped at the end."""
    _require_postgres()
    dsn = server_support.create_database()
    try:
        yield dsn
    finally:
        server_support.drop_database(dsn)


@pytest.fixture(scope="session")
def llmring_server(server_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    """The real llmring-server 0.1.3 in bridge mode (any key accepted, stored verbatim)."""
    yield from _serving(RealServer(server_database, tmp_path_factory.mktemp("llmring-server"), mode="bridge"))


@pytest.fixture
def server(llmring_server: RealServer) -> Iterator[RealServer]:
    """The session's bridge server, running at the start and restarted after the test if needed."""
    yield from _running(llmring_server)


@pytest.fixture(scope="session")
def _strict_server_session(
    llmring_server: RealServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealServer]:
    # Started after the bridge server, so its migrations have already run on this database.
    server_support.prepare_strict_schema(llmring_server.database_url)
    yield from _serving(
        RealServer(
            llmring_server.database_url, tmp_path_factory.mktemp("llmring-server-strict"), mode="strict"
        )
    )


@pytest.fixture
def strict_server(_strict_server_session: RealServer) -> Iterator[RealServer]:
    """A second server over the same database validating keys strictly (``await add_key(key)``)."""
    yield from _running(_strict_server_session)


def _serving(real: RealServer) -> Iterator[RealServer]:
    """Start a session's server, and stop it at the end (its log kept on request)."""
    real.start()
    try:
        yield real
    finally:
        real.stop()
        _keep_log_on_failure(real)


def _running(real: RealServer) -> Iterator[RealServer]:
    """A session's server running for a test, and running again after it if the test stopped it."""
    real.start()
    yield real
    if not real.is_running:
        real.start()


def _keep_log_on_failure(real: RealServer) -> None:
    target = os.environ.get("LLMRING_USAGE_TEST_LOG_DIR")
    if target and real.log_path.exists():
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(real.log_path, Path(target) / real.log_path.name)


# --------------------------------------------------------------------------- fault tools


@pytest.fixture
def hung_server() -> Iterator[HungServer]:
    """A TCP server that accepts and never answers."""
    with HungServer() as hung:
        yield hung


@pytest.fixture
def refusing_port() -> Iterator[RefusingPort]:
    """A port where every connection is refused."""
    with RefusingPort() as refusing:
        yield refusing


@pytest.fixture
def fault_proxy(server: RealServer) -> Iterator[FaultProxy]:
    """A ``FaultProxy`` in front of the real bridge server (starts in ``pass`` mode)."""
    with FaultProxy(server.url) as proxy:
        yield proxy
