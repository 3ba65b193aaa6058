"""A fake OpenAI-compatible chat server for tests (``test_endpoints.py``, ``test_annotate.py``).

:class:`FakeEndpoint` is a stdlib ``http.server`` in a thread on 127.0.0.1 speaking enough of the OpenAI
chat API; a ``respond(n, body) -> Reply`` function decides each chat answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
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
    ``models_status`` says otherwise; ``tls=(certificate, key)`` serves HTTPS. Every request is recorded in
    ``seen``; ``max_in_flight`` is the largest number of chat requests handled at the same time.
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
        self._open_connections = 0
        self._lock = threading.Lock()
        self._n_chat = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def setup(self) -> None:
                with outer._lock:
                    outer._open_connections += 1
                super().setup()

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    with outer._lock:
                        outer._open_connections -= 1

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

    def wait_idle(self, *, quiet_s: float = 0.3, timeout_s: float = 10.0) -> None:
        """Block until no connection is open and no request arrived for ``quiet_s`` (bounded by ``timeout_s``).

        A client killed mid-request can leave its last request in the socket buffers: the server records
        it a moment after the client died. Call this before counting requests across such a kill.
        """
        deadline = time.monotonic() + timeout_s
        last = (-1, -1)
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            with self._lock:
                state = (len(self.seen), self._open_connections)
            if state != last:
                last, quiet_since = state, time.monotonic()
            elif state[1] == 0 and time.monotonic() - quiet_since >= quiet_s:
                return
            time.sleep(0.01)
        raise TimeoutError(f"fake endpoint still busy after {timeout_s}s: {last[1]} connection(s) open")

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


@contextlib.contextmanager
def transformers_serve(
    model_dir: Path, workdir: Path, *, ready_timeout_s: float = 60.0
) -> Iterator[ServeHandle]:
    """A real OpenAI-compatible server: ``transformers serve`` on 127.0.0.1 with a local model, offline.

    Waits for ``/health`` (bounded), yields a handle with ``url`` (``.../v1``) and ``log_path``, and always
    stops the server. One torch thread: on a busy 2-core machine more threads make generation far slower.
    """
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "HF_HOME": str(workdir / "hf"),
        "OMP_NUM_THREADS": "1",
    }
    (workdir / "hf" / "hub").mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = workdir / "serve.log"
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--default-seed", "0", "--log-level", "info", str(model_dir)]
    with log_path.open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if server.poll() is not None:
                raise RuntimeError(f"transformers serve exited:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no /health within {ready_timeout_s} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield ServeHandle(f"http://127.0.0.1:{port}/v1", log_path)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


@dataclass
class ServeHandle:
    url: str
    log_path: Path


def steer_model(policy_dir: Path, out_dir: Path, replies: dict[str, float]) -> Path:
    """A copy of a tiny random policy whose generation config makes it sample the given replies, each with
    probability proportional to its weight: sequence biases steer every token (the random model alone
    only writes newlines), and at the first token where the replies part ways each gets log(weight)."""
    import math
    import shutil

    from transformers import AutoTokenizer, GenerationConfig

    shutil.copytree(policy_dir, out_dir)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids = {text: tokenizer(text, add_special_tokens=False)["input_ids"] + [eos] for text in replies}
    seqs = list(ids.values())
    branch = next((i for i in range(min(map(len, seqs))) if len({s[i] for s in seqs}) > 1), 0)
    bias: dict[tuple[int, ...], float] = {}
    for text, seq in ids.items():
        for i in range(len(seq)):
            extra = math.log(replies[text]) if i == branch else 0.0
            bias[tuple(seq[: i + 1])] = (10.0 if i == 0 else 20.0) + extra
    config = GenerationConfig.from_pretrained(out_dir)
    config.do_sample, config.temperature, config.top_p = True, 1.0, 1.0
    config.sequence_bias = [[list(k), v] for k, v in bias.items()]
    config.save_pretrained(out_dir)
    return out_dir
