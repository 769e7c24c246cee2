"""Helpers for tests of code that uses llmring: a local fake provider, a registry and a lockfile.

Nothing here needs pytest or the network; only the standard library is used, so the same helpers
serve the command-line demo.

``FakeProvider``
    An OpenAI- and Anthropic-compatible HTTP endpoint on 127.0.0.1 (a free port), served from a
    background thread. It answers the calls llmring 1.4.0's providers make:

    - ``POST /v1/chat/completions`` (OpenAI chat; streamed when ``stream`` is true, the usage then
      in a trailing chunk whose ``choices`` is ``[]`` when ``stream_options.include_usage`` is set,
      as OpenAI does: llmring 1.4.0 yields no usage at all for such a stream, which is the real
      behaviour and is kept on purpose),
    - ``POST /v1/responses`` (OpenAI Responses API: llmring uses it for ``o1*`` models and files),
    - ``POST /v1/messages`` (Anthropic; streamed with the real event sequence ``message_start``,
      ``content_block_*``, ``message_delta`` carrying the cumulative usage, ``message_stop``).

    Point the SDKs at it with ``provider.env()`` (``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL`` and
    fake keys), set in the environment *before* ``LLMRing()`` is built: llmring registers a
    provider only when its key variable is set.

``write_registry(directory)``
    Writes an offline llmring model registry and returns the ``file://`` URL for
    ``LLMRing(registry_url=...)``.

``write_lockfile(path, aliases)``
    Writes an llmring lockfile binding aliases, for ``LLMRing(lockfile_path=...)``.

``closing_usage_loggers(timeout_s)``
    A context manager that closes every usage logger created inside it (their worker threads
    stop) and forgets the shared ones, so that each test starts with loggers of its own.

Pitfalls found with llmring 1.4.0:

- The registry cache ``~/.cache/llmring/registry/<provider>_current.json`` is keyed by provider
  only and reused for 24 h *whatever the registry URL*; ``LLMRing.close()`` deletes it. Give each
  test its own ``HOME``; ``RegistryClient.CACHE_DIR`` is computed from ``Path.home()`` when llmring
  is imported, so also point ``llmring.registry.RegistryClient.CACHE_DIR`` into the new home.
- Retries multiply provider requests. The SDKs retry 408/409/429/5xx twice by default unless the
  answer carries ``x-should-retry: false``, which ``fail_next`` sends unless ``sdk_retry=True``.
  On top of that llmring's ``retry_async`` (non-streaming calls only) tries once more when the
  error text mentions ``429``, ``502``, ``503``, ``504``, "rate limit", "unavailable",
  "timeout"... (env ``LLMRING_RETRY_ATTEMPTS``, default 2 attempts; 1 turns it off). So
  ``fail_next(429)`` with ``count=1`` is retried by llmring and the call succeeds; a 500 is not.
- llmring keeps a circuit breaker per provider instance and model: after 3 failed calls to one
  model it refuses further calls to that model for 10 s without sending anything.
- A registry entry with ``max_input_tokens`` makes llmring download a tiktoken encoding; the
  registry written here has none.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_CONTENT",
    "DEFAULT_INPUT_TOKENS",
    "DEFAULT_OUTPUT_TOKENS",
    "FakeProvider",
    "REGISTRY_MODELS",
    "write_lockfile",
    "write_registry",
]

DEFAULT_INPUT_TOKENS = 14
DEFAULT_OUTPUT_TOKENS = 286
DEFAULT_CONTENT = (
    "Usage logging records, for every call to a language model, which model answered, how many "
    "tokens went in and out, and what the call cost. Keeping one record per call lets a team see "
    "where its budget goes, compare models on real traffic, and notice regressions early. The "
    "record should be written even when the logging server is slow or down, so a local journal "
    "that is replayed later is a sensible safeguard. Streaming calls deserve the same care: the "
    "usage arrives at the end of the stream and must not be lost when the caller stops reading."
)
_FAKE_API_KEY = "sk-fake-llmring-usage-testing"
_STREAM_WORDS_PER_CHUNK = 4
_DEFAULT_JOIN_TIMEOUT_S = 5.0

# Prices in dollars per million tokens, in the schema of llmring's RegistryModel.
REGISTRY_MODELS: dict[str, dict[str, dict[str, Any]]] = {
    "openai": {
        "gpt-4o-mini": {
            "display_name": "GPT-4o mini",
            "dollars_per_million_tokens_input": 0.15,
            "dollars_per_million_tokens_output": 0.60,
            "dollars_per_million_tokens_cached_input": 0.075,
            "max_output_tokens": 16384,
            "supports_caching": True,
            "api_endpoint": "chat",
        },
        "gpt-4o": {
            "display_name": "GPT-4o",
            "dollars_per_million_tokens_input": 2.50,
            "dollars_per_million_tokens_output": 10.00,
            "dollars_per_million_tokens_cached_input": 1.25,
            "max_output_tokens": 16384,
            "supports_caching": True,
            "api_endpoint": "chat",
        },
    },
    "anthropic": {
        "claude-haiku-4-5-20251001": {
            "display_name": "Claude Haiku 4.5",
            "dollars_per_million_tokens_input": 1.00,
            "dollars_per_million_tokens_output": 5.00,
            "dollars_per_million_tokens_cache_read": 0.10,
            "dollars_per_million_tokens_cache_write_5m": 1.25,
            "max_output_tokens": 64000,
            "supports_caching": True,
        },
        "claude-sonnet-4-5-20250929": {
            "display_name": "Claude Sonnet 4.5",
            "dollars_per_million_tokens_input": 3.00,
            "dollars_per_million_tokens_output": 15.00,
            "dollars_per_million_tokens_cache_read": 0.30,
            "dollars_per_million_tokens_cache_write_5m": 3.75,
            "max_output_tokens": 64000,
            "supports_caching": True,
        },
    },
}


# --------------------------------------------------------------------------- registry, lockfile


def write_registry(directory: str | Path) -> str:
    """Write an offline llmring registry under ``directory`` and return its ``file://`` URL.

    Files: ``<directory>/<provider>/models.json`` for openai and anthropic (the only files llmring's
    ``RegistryClient`` reads: ``{"models": {"provider:model": {...}}}``) and a ``manifest.json``
    (read only by llmring-server when the directory is served over HTTP).

    llmring caches what it read under ``~/.cache/llmring/registry/`` keyed by provider only, and
    reuses that cache whatever the URL: isolate ``HOME`` in tests.
    """
    root = Path(directory).resolve()
    now = datetime.now(timezone.utc).isoformat()
    for provider, models in REGISTRY_MODELS.items():
        provider_dir = root / provider
        provider_dir.mkdir(parents=True, exist_ok=True)
        entries = {
            f"{provider}:{name}": {
                "provider": provider,
                "model_name": name,
                "is_active": True,
                "supports_streaming": True,
                "supports_function_calling": True,
                "supports_json_mode": True,
                **info,
            }
            for name, info in models.items()
        }
        document = {"provider": provider, "version": 1, "updated_at": now, "models": entries}
        (provider_dir / "models.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    manifest = {
        "version": 1,
        "updated_at": now,
        "providers": sorted(REGISTRY_MODELS),
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return root.as_uri()


def write_lockfile(
    path: str | Path,
    aliases: Mapping[str, str | list[str]] | None = None,
    profile: str = "default",
) -> Path:
    """Write an llmring lockfile at ``path`` binding ``aliases`` in ``profile``; return the path.

    ``aliases`` maps an alias to ``"provider:model"`` (or a list of them, first is primary); the
    default binds ``fast`` to ``openai:gpt-4o-mini`` and ``smart`` to
    ``anthropic:claude-haiku-4-5-20251001``. A path ending in ``.json`` is written as JSON, anything
    else as TOML (llmring's own format, ``llmring.lock``). Use with ``LLMRing(lockfile_path=...)``.
    """
    if aliases is None:
        aliases = {"fast": "openai:gpt-4o-mini", "smart": "anthropic:claude-haiku-4-5-20251001"}
    bindings: list[dict[str, Any]] = []
    for alias, refs in aliases.items():
        models = [refs] if isinstance(refs, str) else list(refs)
        for ref in models:
            if ":" not in ref:
                raise ValueError(f"model reference {ref!r} must look like 'provider:model'")
        bindings.append({"alias": alias, "models": models})
    now = datetime.now(timezone.utc).isoformat()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".json":
        document = {
            "version": "1.0",
            "created_at": now,
            "updated_at": now,
            "default_profile": profile,
            "metadata": {"source": "llmring_usage.testing"},
            "profiles": {profile: {"name": profile, "bindings": bindings, "registry_versions": {}}},
        }
        target.write_text(json.dumps(document, indent=2), encoding="utf-8")
        return target
    lines = [
        'version = "1.0"',
        f"created_at = {_toml_str(now)}",
        f"updated_at = {_toml_str(now)}",
        f"default_profile = {_toml_str(profile)}",
        "",
        "[metadata]",
        'source = "llmring_usage.testing"',
        "",
        f"[profiles.{_toml_str(profile)}]",
        f"name = {_toml_str(profile)}",
    ]
    for binding in bindings:
        lines += [
            "",
            f"[[profiles.{_toml_str(profile)}.bindings]]",
            f"alias = {_toml_str(binding['alias'])}",
            "models = [" + ", ".join(_toml_str(m) for m in binding["models"]) + "]",
        ]
    lines += ["", f"[profiles.{_toml_str(profile)}.registry_versions]", ""]
    target.write_text("\n".join(lines), encoding="utf-8")
    return target


@contextlib.contextmanager
def closing_usage_loggers(timeout_s: float = 1.0) -> Iterator[None]:
    """Close every UsageLogger created inside the block and forget the shared ones among them."""
    from .delivery.logger import close_loggers, live_loggers

    before = live_loggers()
    try:
        yield
    finally:
        close_loggers(live_loggers() - before, timeout_s=timeout_s)


def _toml_str(value: str) -> str:
    # JSON string escaping is valid TOML basic-string escaping for these characters.
    return json.dumps(value)


# --------------------------------------------------------------------------- fake provider


class _StreamBroken(Exception):
    """Raised inside the handler to cut a stream's connection on purpose."""


class FakeProvider:
    """A local OpenAI- and Anthropic-compatible endpoint serving realistic answers with usage.

    Usage:

        with FakeProvider() as provider:
            os.environ.update(provider.env())   # before LLMRing() is built
            ...

    Every answer reports ``input_tokens`` prompt tokens and ``output_tokens`` completion tokens.
    ``cached_input_tokens`` of the prompt are reported as cached, with each provider's meaning:
    OpenAI counts them inside ``prompt_tokens`` (``prompt_tokens_details.cached_tokens`` /
    ``input_tokens_details.cached_tokens``); Anthropic reports ``input_tokens`` *without* them and
    ``cache_read_input_tokens`` beside. The answer's ``model`` echoes the requested model.
    ``delay_s`` is slept before each answer (settable while running).

    ``requests`` lists every ``(path, json_body)`` received, failed ones included.
    """

    def __init__(
        self,
        *,
        input_tokens: int = DEFAULT_INPUT_TOKENS,
        output_tokens: int = DEFAULT_OUTPUT_TOKENS,
        cached_input_tokens: int = 0,
        content: str | None = None,
        delay_s: float = 0.0,
    ) -> None:
        if cached_input_tokens > input_tokens:
            raise ValueError("cached_input_tokens cannot exceed input_tokens")
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.cached_input_tokens = cached_input_tokens
        self.content = content if content is not None else DEFAULT_CONTENT
        self.delay_s = delay_s
        self._initial = (input_tokens, output_tokens, cached_input_tokens, self.content, delay_s)
        self._lock = threading.Lock()
        self._requests: list[tuple[str, Any]] = []
        self._failures: list[tuple[int, dict[str, Any] | None, bool]] = []
        self._stream_break_after: int | None = None
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._port: int | None = None

    # ---- lifecycle

    def start(self) -> FakeProvider:
        """Start serving on a free port of 127.0.0.1 (no-op when already running)."""
        with self._lock:
            if self._server is not None:
                return self
            server = _Server(("127.0.0.1", self._port or 0), _Handler)
            server.fake = self
            self._server = server
            self._port = server.server_address[1]
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"FakeProvider:{self._port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut open connections; safe to call twice."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            connections = list(self._connections)
            self._connections.clear()
        if server is None:
            return
        server.shutdown()
        server.server_close()
        for conn in connections:
            _shutdown_quietly(conn)
        if thread is not None:
            thread.join(_DEFAULT_JOIN_TIMEOUT_S)

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def is_running(self) -> bool:
        return self._server is not None

    # ---- addresses

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the provider must have been started once)."""
        if self._port is None:
            raise RuntimeError("FakeProvider is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def openai_base_url(self) -> str:
        """The value for ``OPENAI_BASE_URL`` (the OpenAI SDK appends ``/chat/completions``)."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The value for ``ANTHROPIC_BASE_URL`` (the Anthropic SDK appends ``/v1/messages``)."""
        return self.url

    def env(self) -> dict[str, str]:
        """Environment variables that point llmring's OpenAI and Anthropic SDKs here."""
        return {
            "OPENAI_BASE_URL": self.openai_base_url,
            "OPENAI_API_KEY": _FAKE_API_KEY,
            "ANTHROPIC_BASE_URL": self.anthropic_base_url,
            "ANTHROPIC_API_KEY": _FAKE_API_KEY,
        }

    # ---- inspection and faults

    @property
    def requests(self) -> list[tuple[str, Any]]:
        """A copy of every ``(path, parsed JSON body)`` received so far, in order."""
        with self._lock:
            return list(self._requests)

    def fail_next(
        self,
        status: int,
        body: dict[str, Any] | None = None,
        count: int = 1,
        *,
        sdk_retry: bool = False,
    ) -> None:
        """Answer the next ``count`` provider requests with ``status`` and an error body.

        The body defaults to the provider's own error shape. Unless ``sdk_retry`` is true the
        answer carries ``x-should-retry: false`` so the SDKs do not retry it (they otherwise retry
        429 and 5xx twice); llmring's own retry may still repeat the call (see the module doc).
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._failures.extend([(status, body, sdk_retry)] * count)

    def stream_error_after(self, n_chunks: int) -> None:
        """Make the next streamed answer cut its connection after ``n_chunks`` content chunks."""
        with self._lock:
            self._stream_break_after = n_chunks

    def reset(self) -> None:
        """Forget requests and pending faults; restore the settings given to the constructor."""
        with self._lock:
            self._requests.clear()
            self._failures.clear()
            self._stream_break_after = None
            (
                self.input_tokens,
                self.output_tokens,
                self.cached_input_tokens,
                self.content,
                self.delay_s,
            ) = self._initial

    # ---- used by the handler

    def _record(
        self, path: str, body: Any
    ) -> tuple[tuple[int, dict[str, Any] | None, bool] | None, int | None]:
        with self._lock:
            self._requests.append((path, body))
            failure = self._failures.pop(0) if self._failures else None
            stream_break = None
            if failure is None and isinstance(body, dict) and body.get("stream"):
                stream_break, self._stream_break_after = self._stream_break_after, None
            return failure, stream_break

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _chunks(self) -> list[str]:
        words = self.content.split(" ")
        pieces = []
        for i in range(0, len(words), _STREAM_WORDS_PER_CHUNK):
            piece = " ".join(words[i : i + _STREAM_WORDS_PER_CHUNK])
            pieces.append(piece if i == 0 else " " + piece)
        return pieces or [""]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default of 5 drops connections under concurrent calls
    block_on_close = False
    allow_reuse_address = True
    fake: FakeProvider


def _shutdown_quietly(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "FakeProvider/1.0"
    # Headers and body go out in two writes: without TCP_NODELAY each answer on a kept-alive
    # connection waits ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.fake._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet: tests read FakeProvider.requests instead

    # ---- HTTP verbs

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0]
        if path in ("/health", "/"):
            self._send_json(200, {"status": "ok"})
        elif path == "/v1/models":
            data = [
                {"id": name, "object": "model", "created": 0, "owned_by": provider}
                for provider, models in REGISTRY_MODELS.items()
                for name in models
            ]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_json(404, _openai_error(404, f"Unknown path {path}"))

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        fake = self.server.fake
        failure, stream_break = fake._record(path, body)
        if fake.delay_s > 0:
            time.sleep(fake.delay_s)
        is_anthropic = path.startswith("/v1/messages")
        if failure is not None:
            status, error_body, sdk_retry = failure
            if error_body is None:
                error_body = _anthropic_error(status) if is_anthropic else _openai_error(status)
            headers = {} if sdk_retry else {"x-should-retry": "false"}
            self._send_json(status, error_body, headers)
            return
        if not isinstance(body, dict):
            self._send_json(400, _openai_error(400, "Request body must be a JSON object"))
            return
        model = str(body.get("model") or "unknown-model")
        stream = bool(body.get("stream"))
        try:
            if path == "/v1/chat/completions":
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                if stream:
                    self._send_stream(_openai_chat_events(fake, model, include_usage), stream_break)
                else:
                    self._send_json(200, _openai_chat_body(fake, model))
            elif path == "/v1/responses":
                if stream:
                    self._send_stream(_openai_responses_events(fake, model), stream_break)
                else:
                    self._send_json(200, _openai_response_object(fake, model, "completed"))
            elif path == "/v1/messages":
                if stream:
                    self._send_stream(_anthropic_events(fake, model), stream_break)
                else:
                    self._send_json(200, _anthropic_body(fake, model))
            else:
                self._send_json(404, _openai_error(404, f"Unknown path {path}"))
        except _StreamBroken:
            self.close_connection = True
            _shutdown_quietly(self.connection)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # ---- writers

    def _send_json(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-request-id", "req_" + uuid.uuid4().hex[:24])
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _send_stream(self, events: Iterator[tuple[str | None, str, bool]], break_after: int | None) -> None:
        """Write server-sent events with chunked encoding (so a cut is visible to the client)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", "req_" + uuid.uuid4().hex[:24])
        self.end_headers()
        content_chunks = 0
        for event, data, is_content in events:
            if is_content and break_after is not None and content_chunks >= break_after:
                raise _StreamBroken
            text = (f"event: {event}\n" if event else "") + f"data: {data}\n\n"
            payload = text.encode("utf-8")
            self.wfile.write(f"{len(payload):x}\r\n".encode("ascii") + payload + b"\r\n")
            self.wfile.flush()
            if is_content:
                content_chunks += 1
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


# --------------------------------------------------------------------------- payloads


def _openai_error(status: int, message: str | None = None) -> dict[str, Any]:
    kinds = {
        400: ("invalid_request_error", None),
        401: ("invalid_request_error", "invalid_api_key"),
        403: ("permission_error", None),
        404: ("invalid_request_error", "model_not_found"),
        429: ("requests", "rate_limit_exceeded"),
    }
    kind, code = kinds.get(status, ("server_error", None))
    default_message = {
        401: "Incorrect API key provided.",
        429: "Rate limit reached for requests. Please try again in 1s.",
    }.get(status, "The server had an error while processing your request. Sorry about that!")
    return {
        "error": {
            "message": message or default_message,
            "type": kind,
            "param": None,
            "code": code,
        }
    }


def _anthropic_error(status: int) -> dict[str, Any]:
    kinds = {
        400: ("invalid_request_error", "Invalid request."),
        401: ("authentication_error", "invalid x-api-key"),
        403: ("permission_error", "Your API key does not have permission."),
        404: ("not_found_error", "Not found."),
        429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
        529: ("overloaded_error", "Overloaded"),
    }
    kind, message = kinds.get(status, ("api_error", "Internal server error"))
    return {"type": "error", "error": {"type": kind, "message": message}}


def _openai_usage(fake: FakeProvider) -> dict[str, Any]:
    return {
        "prompt_tokens": fake.input_tokens,
        "completion_tokens": fake.output_tokens,
        "total_tokens": fake.input_tokens + fake.output_tokens,
        "prompt_tokens_details": {"cached_tokens": fake.cached_input_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _openai_chat_body(fake: FakeProvider, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:29],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": fake.content,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _openai_usage(fake),
        "service_tier": "default",
        "system_fingerprint": "fp_fake0001",
    }


def _openai_chat_events(
    fake: FakeProvider, model: str, include_usage: bool
) -> Iterator[tuple[str | None, str, bool]]:
    base = {
        "id": "chatcmpl-" + uuid.uuid4().hex[:29],
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "service_tier": "default",
        "system_fingerprint": "fp_fake0001",
    }
    # With include_usage, OpenAI sends "usage": null on every chunk but the trailing one.
    extra: dict[str, Any] = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish_reason: str | None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return json.dumps({**base, "choices": [choice], **extra})

    yield None, chunk({"role": "assistant", "content": "", "refusal": None}, None), False
    for piece in fake._chunks():
        yield None, chunk({"content": piece}, None), True
    yield None, chunk({}, "stop"), False
    if include_usage:
        yield None, json.dumps({**base, "choices": [], "usage": _openai_usage(fake)}), False
    yield None, "[DONE]", False


def _openai_response_object(fake: FakeProvider, model: str, status: str) -> dict[str, Any]:
    completed = status == "completed"
    output = (
        [
            {
                "type": "message",
                "id": "msg_" + uuid.uuid4().hex,
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": fake.content, "annotations": []}],
            }
        ]
        if completed
        else []
    )
    usage = (
        {
            "input_tokens": fake.input_tokens,
            "input_tokens_details": {"cached_tokens": fake.cached_input_tokens},
            "output_tokens": fake.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": fake.input_tokens + fake.output_tokens,
        }
        if completed
        else None
    )
    return {
        "id": "resp_" + uuid.uuid4().hex,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "temperature": 1.0,
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "metadata": {},
    }


def _openai_responses_events(fake: FakeProvider, model: str) -> Iterator[tuple[str | None, str, bool]]:
    final = _openai_response_object(fake, model, "completed")
    started = {**_openai_response_object(fake, model, "in_progress"), "id": final["id"]}
    item = final["output"][0]
    item_id = item["id"]
    seq = iter(range(1_000_000))

    def event(kind: str, **fields: Any) -> tuple[str, str, bool]:
        data = {"type": kind, "sequence_number": next(seq), **fields}
        return kind, json.dumps(data), kind == "response.output_text.delta"

    yield event("response.created", response=started)
    yield event("response.in_progress", response=started)
    yield event(
        "response.output_item.added",
        output_index=0,
        item={**item, "status": "in_progress", "content": []},
    )
    yield event(
        "response.content_part.added",
        item_id=item_id,
        output_index=0,
        content_index=0,
        part={"type": "output_text", "text": "", "annotations": []},
    )
    for piece in fake._chunks():
        yield event(
            "response.output_text.delta",
            item_id=item_id,
            output_index=0,
            content_index=0,
            delta=piece,
            logprobs=[],
        )
    yield event(
        "response.output_text.done",
        item_id=item_id,
        output_index=0,
        content_index=0,
        text=fake.content,
        logprobs=[],
    )
    yield event(
        "response.content_part.done",
        item_id=item_id,
        output_index=0,
        content_index=0,
        part=item["content"][0],
    )
    yield event("response.output_item.done", output_index=0, item=item)
    yield event("response.completed", response=final)


def _anthropic_usage(fake: FakeProvider, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": fake.input_tokens - fake.cached_input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": fake.cached_input_tokens,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _anthropic_body(fake: FakeProvider, model: str) -> dict[str, Any]:
    return {
        "id": "msg_" + uuid.uuid4().hex[:24],
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": fake.content}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(fake, fake.output_tokens),
    }


def _anthropic_events(fake: FakeProvider, model: str) -> Iterator[tuple[str | None, str, bool]]:
    def event(kind: str, data: dict[str, Any], is_content: bool = False) -> tuple[str, str, bool]:
        return kind, json.dumps({"type": kind, **data}), is_content

    message = {**_anthropic_body(fake, model), "content": [], "stop_reason": None}
    message["usage"] = _anthropic_usage(fake, 1)
    yield event("message_start", {"message": message})
    yield event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    yield event("ping", {})
    for piece in fake._chunks():
        delta = {"index": 0, "delta": {"type": "text_delta", "text": piece}}
        yield event("content_block_delta", delta, True)
    yield event("content_block_stop", {"index": 0})
    # Anthropic's message_delta carries the cumulative usage of the whole call.
    usage = _anthropic_usage(fake, fake.output_tokens)
    usage.pop("service_tier")
    yield event(
        "message_delta",
        {"delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": usage},
    )
    yield event("message_stop", {})
