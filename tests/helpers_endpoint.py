"""A fake OpenAI-compatible chat server for tests (``test_endpoints.py``, ``test_annotate.py``).

:class:`FakeEndpoint` is a stdlib ``http.server`` in a thread on 127.0.0.1 speaking enough of the OpenAI
chat API; a ``respond(n, body) -> Reply`` function decides each chat answer.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Reply:
    """One scripted answer: HTTP status, body (a dict is sent as JSON), extra headers, delay before it."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def chat_body(content: str | None) -> dict[str, Any]:
    """An OpenAI chat.completion object whose first choice says ``content``."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
        ],
    }


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


@dataclass
class Seen:
    """One request the fake received (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeEndpoint:
    """An OpenAI-compatible fake in a background thread; ``respond(n, body)`` scripts the chat answers.

    ``n`` is the 0-based index of the chat request. ``GET /models`` answers a model list unless
    ``models_status`` says otherwise; ``tls=(certificate, key)`` serves HTTPS. Every request is recorded in ``seen``; ``max_in_flight`` is the
    largest number of chat requests handled at the same time.
    """

    def __init__(
        self,
        respond: Callable[[int, dict[str, Any]], Reply],
        *,
        models_status: int = 200,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.respond = respond
        self.models_status = models_status
        self.seen: list[Seen] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._n_chat = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _send(self, reply: Reply) -> None:
                body = reply.body
                ctype = "application/json"
                if isinstance(body, dict | list):
                    data = json.dumps(body).encode()
                elif isinstance(body, bytes):
                    data = body
                else:
                    data = str(body or "").encode()
                    ctype = reply.headers.get("Content-Type", "application/json")
                self.send_response(reply.status)
                self.send_header("Content-Type", ctype)
                for k, v in reply.headers.items():
                    if k != "Content-Type":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                with outer._lock:
                    outer.seen.append(Seen("GET", self.path, _lower(self.headers), None))
                if self.path.rstrip("/").endswith("/models") and outer.models_status == 200:
                    self._send(Reply(body={"object": "list", "data": [{"id": "fake", "object": "model"}]}))
                elif self.path.rstrip("/").endswith("/models"):
                    self._send(Reply(outer.models_status, {"error": {"message": "nope"}}))
                else:
                    self._send(Reply(404, {"error": {"message": "not found"}}))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with outer._lock:
                    outer.seen.append(Seen("POST", self.path, _lower(self.headers), body))
                    n = outer._n_chat
                    outer._n_chat += 1
                    outer._in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer._in_flight)
                try:
                    reply = outer.respond(n, body or {})
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                    self._send(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): fine
                finally:
                    with outer._lock:
                        outer._in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        if tls is not None:  # (certificate, key): serve HTTPS
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def chat_requests(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST"]

    def __enter__(self) -> FakeEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def free_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
