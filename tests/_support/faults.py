"""Network fault tools for tests, on 127.0.0.1 only: a hung server, a refusing port, a fault proxy.

Each is a context manager with ``start()`` / ``stop()`` (``stop`` may be called twice) and stops by
itself after ``max_lifetime_s`` so a forgotten one cannot outlive the test run for long.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

_DEFAULT_MAX_LIFETIME_S = 300.0
_UPSTREAM_TIMEOUT_S = 60.0
_MAX_HEAD_BYTES = 64 * 1024


class _Bounded:
    """Lifecycle shared by the tools: context manager, idempotent stop, self-stop timer."""

    def __init__(self, max_lifetime_s: float) -> None:
        self.max_lifetime_s = max_lifetime_s
        self._stopped = threading.Event()
        self._started = False
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def start(self) -> Any:
        with self._lock:
            if self._started:
                return self
            self._started = True
            self._start()
            self._timer = threading.Timer(self.max_lifetime_s, self.stop)
            self._timer.daemon = True
            self._timer.start()
        return self

    def stop(self) -> None:
        with self._lock:
            if not self._started or self._stopped.is_set():
                return
            self._stopped.set()
            if self._timer is not None and self._timer is not threading.current_thread():
                self._timer.cancel()
        self._stop()

    def _start(self) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _close_quietly(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.settimeout(0.2)
    return sock


class HungServer(_Bounded):
    """Accepts TCP connections, reads nothing and never answers (until stopped)."""

    def __init__(self, *, max_lifetime_s: float = _DEFAULT_MAX_LIFETIME_S) -> None:
        super().__init__(max_lifetime_s)
        self._sock: socket.socket | None = None
        self._held: list[socket.socket] = []
        self._thread: threading.Thread | None = None
        self.port = 0
        self.accepted = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self) -> None:
        self._sock = _listen()
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="HungServer", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)
            self.accepted += 1

    def _stop(self) -> None:
        if self._sock is not None:
            _close_quietly(self._sock)
        if self._thread is not None:
            self._thread.join(2.0)
        for conn in self._held:
            _close_quietly(conn)
        self._held.clear()


class RefusingPort(_Bounded):
    """A port of 127.0.0.1 held bound but not listening: every connection is refused at once."""

    def __init__(self, *, max_lifetime_s: float = _DEFAULT_MAX_LIFETIME_S) -> None:
        super().__init__(max_lifetime_s)
        self._sock: socket.socket | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self) -> None:
        # Bound without listen(): the kernel answers SYNs with RST, and nobody else can take it.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]

    def _stop(self) -> None:
        if self._sock is not None:
            self._sock.close()


# --------------------------------------------------------------------------- fault proxy


class _Mode:
    def __init__(
        self,
        name: str,
        count: int | None = None,
        *,
        seconds: float = 0.0,
        status: int = 0,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        self.name = name
        self.remaining = count
        self.seconds = seconds
        self.status = status
        self.headers = dict(headers or {})
        self.body = body


_PASS = "pass"


class FaultProxy(_Bounded):
    """An HTTP/1.1 proxy on 127.0.0.1 in front of ``upstream_url`` with switchable faults.

    Modes (each optionally for the next ``count`` requests only, then back to ``pass``):

    - ``pass_through()``: forward and answer (the default),
    - ``drop_reply()``: forward, read the upstream's whole answer, then close the client connection
      without replying (the server did the work; the client never learns),
    - ``delay(seconds)``: forward, then answer after ``seconds``,
    - ``status(code, headers, body, count=1)``: answer itself without forwarding,
    - ``hang()``: read the request, never forward it nor answer (until stopped or switched).

    ``seen`` counts requests per mode name; ``requests`` lists ``(method, path)`` in order.
    Client keep-alive works: each request goes to the upstream on a fresh connection with
    ``Connection: close`` and its answer is relayed with exact framing.
    """

    def __init__(self, upstream_url: str, *, max_lifetime_s: float = _DEFAULT_MAX_LIFETIME_S):
        super().__init__(max_lifetime_s)
        rest = upstream_url.split("://", 1)[-1].rstrip("/")
        host, _, port = rest.partition(":")
        self.upstream = (host or "127.0.0.1", int(port or 80))
        self._mode = _Mode(_PASS)
        self._mode_lock = threading.Lock()
        self._mode_changed = threading.Condition(self._mode_lock)
        self.seen: Counter[str] = Counter()
        self.requests: list[tuple[str, str]] = []
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._clients: set[socket.socket] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- switching modes

    def _set(self, mode: _Mode) -> None:
        with self._mode_changed:
            self._mode = mode
            self._mode_changed.notify_all()

    def pass_through(self) -> None:
        self._set(_Mode(_PASS))

    def drop_reply(self, count: int | None = None) -> None:
        self._set(_Mode("drop_reply", count))

    def delay(self, seconds: float, count: int | None = None) -> None:
        self._set(_Mode("delay", count, seconds=seconds))

    def status(
        self,
        code: int,
        headers: Mapping[str, str] | None = None,
        body: bytes | str | None = None,
        count: int | None = 1,
    ) -> None:
        if body is None:
            body = '{"detail": "injected by FaultProxy"}'
        data = body.encode() if isinstance(body, str) else body
        self._set(_Mode("status", count, status=code, headers=headers, body=data))

    def hang(self, count: int | None = None) -> None:
        self._set(_Mode("hang", count))

    @property
    def mode(self) -> str:
        return self._mode.name

    def _take_mode(self) -> _Mode:
        with self._mode_lock:
            mode = self._mode
            if mode.remaining is not None:
                mode.remaining -= 1
                if mode.remaining <= 0:
                    self._mode = _Mode(_PASS)
            self.seen[mode.name] += 1
            return mode

    # ---- lifecycle

    def _start(self) -> None:
        self._sock = _listen()
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="FaultProxy", daemon=True)
        self._thread.start()

    def _stop(self) -> None:
        with self._mode_changed:
            self._mode_changed.notify_all()
        if self._sock is not None:
            _close_quietly(self._sock)
        if self._thread is not None:
            self._thread.join(2.0)
        with self._mode_lock:
            clients = list(self._clients)
            self._clients.clear()
        for conn in clients:
            _close_quietly(conn)

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._mode_lock:
                self._clients.add(conn)
            threading.Thread(target=self._serve_client, args=(conn,), daemon=True).start()

    # ---- one client connection

    def _serve_client(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            conn.settimeout(_UPSTREAM_TIMEOUT_S)
            while not self._stopped.is_set():
                request, buffer, keep_alive = _read_request(conn, buffer)
                if request is None:
                    return
                method, path = _request_line(request)
                with self._mode_lock:
                    self.requests.append((method, path))
                mode = self._take_mode()
                if mode.name == "status":
                    conn.sendall(_make_response(mode.status, mode.headers, mode.body))
                    if not keep_alive:
                        return
                    continue
                if mode.name == "hang":
                    with self._mode_changed:
                        self._mode_changed.wait_for(
                            lambda: self._stopped.is_set(), timeout=self.max_lifetime_s
                        )
                    return
                response = self._forward(request)
                if mode.name == "drop_reply":
                    return
                if mode.name == "delay":
                    self._stopped.wait(mode.seconds)
                    if self._stopped.is_set():
                        return
                if response is None:
                    conn.sendall(_make_response(502, {}, b'{"detail": "upstream unreachable"}'))
                    return
                conn.sendall(response)
                if not keep_alive:
                    return
        except OSError:
            return
        finally:
            with self._mode_lock:
                self._clients.discard(conn)
            _close_quietly(conn)

    def _forward(self, request: bytes) -> bytes | None:
        """Send one request upstream on a fresh connection; return the answer re-framed."""
        try:
            with socket.create_connection(self.upstream, timeout=_UPSTREAM_TIMEOUT_S) as up:
                up.sendall(_with_connection_close(request))
                chunks = []
                while True:
                    data = up.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
        except OSError:
            return None
        raw = b"".join(chunks)
        if b"\r\n\r\n" not in raw:
            return None
        return _reframe_response(raw)


def _read_request(conn: socket.socket, buffer: bytes) -> tuple[bytes | None, bytes, bool]:
    """Read one request (head + Content-Length body); return it, the rest, and keep-alive."""
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > _MAX_HEAD_BYTES:
            return None, b"", False
        data = conn.recv(65536)
        if not data:
            return None, b"", False
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    headers = _parse_headers(head)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise OSError("FaultProxy does not support chunked request bodies")
    length = int(headers.get("content-length", "0") or 0)
    while len(rest) < length:
        data = conn.recv(65536)
        if not data:
            return None, b"", False
        rest += data
    body, remainder = rest[:length], rest[length:]
    version = head.split(b"\r\n", 1)[0].rsplit(b" ", 1)[-1]
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection and (version == b"HTTP/1.1" or "keep-alive" in connection)
    return head + b"\r\n\r\n" + body, remainder, keep_alive


def _request_line(request: bytes) -> tuple[str, str]:
    parts = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    return (parts[0], parts[1]) if len(parts) >= 2 else (parts[0], "")


def _parse_headers(head: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def _with_connection_close(request: bytes) -> bytes:
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    kept = [
        line
        for line in lines[1:]
        if line.split(b":", 1)[0].strip().lower() not in (b"connection", b"keep-alive")
    ]
    return b"\r\n".join([lines[0], *kept, b"Connection: close"]) + b"\r\n\r\n" + body


def _reframe_response(raw: bytes) -> bytes:
    """Drop the upstream's ``Connection`` header; make the framing exact for a kept-alive client."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = _parse_headers(head)
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    kept = [
        line
        for line in lines[1:]
        if line.split(b":", 1)[0].strip().lower()
        not in (b"connection", b"keep-alive", *(() if chunked else (b"content-length",)))
    ]
    if not chunked:
        kept.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join([lines[0], *kept]) + b"\r\n\r\n" + body


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    408: "Request Timeout",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _make_response(status: int, headers: Mapping[str, str], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    names = {name.lower() for name in headers}
    if "content-type" not in names:
        lines.append("Content-Type: application/json")
    lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "content-length"]
    lines.append(f"Content-Length: {len(body)}")
    lines.append(f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
