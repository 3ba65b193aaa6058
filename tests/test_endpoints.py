"""Tests for cooper.utils.endpoints against a real local HTTP server that misbehaves on cue.

:class:`~helpers_endpoint.FakeEndpoint` (``helpers_endpoint.py``, also used by ``test_annotate.py``) is a
stdlib ``http.server`` in a thread on 127.0.0.1 speaking enough of the OpenAI chat API; a ``respond``
function decides each answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cooper.utils.endpoints import ChatClient, EndpointConfig, EndpointError, parse_retry_after
from cooper.utils.redact import redact_url
from helpers_endpoint import FakeEndpoint, Reply, chat_body, free_port

SECRET = "sk-test-DO-NOT-LEAK-7f3a9c"


def make_client(url: str, **kw: Any) -> tuple[ChatClient, list[float]]:
    """A client whose backoff waits are recorded (and shortened to 0) so tests stay fast."""
    waits: list[float] = []

    async def fast_sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    kw.setdefault("timeout_s", 5.0)
    return ChatClient(EndpointConfig(url=url, model="fake", **kw), sleep=fast_sleep), waits


def ok(text: str = "hello") -> Callable[[int, dict[str, Any]], Reply]:
    return lambda n, body: Reply(body=chat_body(text))


@pytest.fixture
def server_factory() -> Iterator[Callable[..., FakeEndpoint]]:
    servers: list[FakeEndpoint] = []

    def start(respond: Callable[[int, dict[str, Any]], Reply], **kw: Any) -> FakeEndpoint:
        srv = FakeEndpoint(respond, **kw).__enter__()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.__exit__()


# --- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"url": "ftp://host/v1"},
        {"url": "http:///v1"},
        {"url": "localhost:8000"},
        {"model": " "},
        {"timeout_s": 0},
        {"timeout_s": float("nan")},
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"backoff_s": -0.1},
        {"max_concurrency": 0},
        {"max_tokens": 0},
        {"temperature": -1},
        {"key_env": ""},
    ],
)
def test_config_rejects_bad_values(kw: dict[str, Any]) -> None:
    args = {"url": "http://127.0.0.1:8000/v1", "model": "m", **kw}
    with pytest.raises(ValueError):
        EndpointConfig(**args)


def test_repr_and_describe_hide_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGE_KEY", SECRET)
    cfg = EndpointConfig(url="https://user:pw@api.example.com/v1?key=abc", model="m", key_env="JUDGE_KEY")
    text = repr(cfg) + repr(ChatClient(cfg)) + json.dumps(cfg.describe())
    assert SECRET not in text and "pw" not in text and "abc" not in text
    assert "JUDGE_KEY" in text and "api.example.com" in text
    assert redact_url("http://h:1/v1") == "http://h:1/v1"


def test_missing_key_variable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(EndpointError, match=r"\$NO_SUCH_KEY_VAR"):
        ChatClient(EndpointConfig(url="http://127.0.0.1:1/v1", model="m", key_env="NO_SUCH_KEY_VAR"))


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "soon"}) is None
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < parse_retry_after({"retry-after": date}) <= 31  # type: ignore[operator]
    assert parse_retry_after(None) is None


# --- behaviour against the fake server ---------------------------------------------------------------


def test_success_sends_model_messages_and_bearer_key(
    server_factory: Callable[..., FakeEndpoint],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("JUDGE_KEY", SECRET)
    srv = server_factory(ok("Final verdict: Yes"))
    client, _ = make_client(srv.url, key_env="JUDGE_KEY", temperature=0.3, max_tokens=7)
    assert client.chat_many(["hi", [{"role": "user", "content": "yo"}]]) == ["Final verdict: Yes"] * 2
    req = next(r for r in srv.chat_requests if r.body["messages"][0]["content"] == "hi")
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {SECRET}"
    assert req.body["model"] == "fake" and req.body["max_tokens"] == 7 and req.body["temperature"] == 0.3
    assert req.body["messages"] == [{"role": "user", "content": "hi"}]
    assert client.stats["requests"] == 2 and client.stats["succeeded"] == 2 and client.stats["failures"] == 0
    leak_surfaces = [
        repr(client.config),
        repr(client),
        json.dumps(client.stats),
        caplog.text,
        repr(vars(client)),
    ]
    assert all(SECRET not in s for s in leak_surfaces)


def test_no_key_env_sends_no_authorization(
    server_factory: Callable[..., FakeEndpoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # must not be picked up
    srv = server_factory(ok())
    client, _ = make_client(srv.url)
    assert client.chat_many(["hi"]) == ["hello"]
    client.preflight()
    assert all("authorization" not in s.headers for s in srv.seen)


def test_connection_refused_returns_none_and_preflight_fails() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    client, waits = make_client(url, max_retries=2, backoff_s=0.1)
    start = time.perf_counter()
    assert client.chat_many(["hi"]) == [None]
    assert time.perf_counter() - start < 5
    assert client.stats["connection_errors"] == 3 and client.stats["retries"] == 2
    assert client.stats["failures"] == 1 and client.stats["attempts"] == 3
    assert waits == [0.1, 0.2]  # exponential backoff
    with pytest.raises(EndpointError, match="cannot reach endpoint"):
        client.preflight()


def test_500s_then_success(server_factory: Callable[..., FakeEndpoint]) -> None:
    srv = server_factory(
        lambda n, b: Reply(500, {"error": {"message": "boom"}}) if n < 2 else Reply(body=chat_body("ok"))
    )
    client, waits = make_client(srv.url, max_retries=3, backoff_s=0.5)
    assert client.chat_many(["hi"]) == ["ok"]
    assert len(srv.chat_requests) == 3
    assert client.stats["http_errors"] == 2 and client.stats["retries"] == 2 and client.stats["failures"] == 0
    assert waits == [0.5, 1.0]


def test_500s_exhaust_retries(server_factory: Callable[..., FakeEndpoint]) -> None:
    srv = server_factory(lambda n, b: Reply(503, {"error": {"message": "down"}}))
    client, _ = make_client(srv.url, max_retries=2)
    assert client.chat_many(["a", "b"]) == [None, None]
    assert len(srv.chat_requests) == 6
    assert client.stats["failures"] == 2 and client.stats["http_errors"] == 6


def test_client_errors_are_not_retried(server_factory: Callable[..., FakeEndpoint]) -> None:
    srv = server_factory(lambda n, b: Reply(400, {"error": {"message": "bad request"}}))
    client, waits = make_client(srv.url, max_retries=3)
    assert client.chat_many(["hi"]) == [None]
    assert len(srv.chat_requests) == 1 and waits == [] and client.stats["http_errors"] == 1


def test_slow_server_times_out_without_hanging(server_factory: Callable[..., FakeEndpoint]) -> None:
    srv = server_factory(lambda n, b: Reply(body=chat_body("late"), delay_s=3.0))
    client = ChatClient(
        EndpointConfig(url=srv.url, model="fake", timeout_s=0.3, max_retries=1, backoff_s=0.05)
    )
    start = time.perf_counter()
    assert client.chat_many(["hi"]) == [None]
    elapsed = time.perf_counter() - start
    assert elapsed < 2.5, elapsed  # 2 attempts x 0.3 s + backoff, well below the server's 3 s
    assert client.stats["timeouts"] == 2 and client.stats["failures"] == 1


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body=b"{not json"),
        Reply(body="plain text", headers={"Content-Type": "text/plain"}),
        Reply(body={"unexpected": True}),
        Reply(body={"choices": []}),
        Reply(body={"choices": [{"message": {"content": 42}}]}),
    ],
    ids=["bad-json", "text-plain", "wrong-shape", "no-choices", "non-text-content"],
)
def test_malformed_answers_count_and_return_none(
    server_factory: Callable[..., FakeEndpoint], reply: Reply
) -> None:
    srv = server_factory(lambda n, b: reply)
    client, _ = make_client(srv.url, max_retries=1)
    assert client.chat_many(["hi"]) == [None]
    assert client.stats["malformed"] == 2 and client.stats["failures"] == 1


@pytest.mark.parametrize("content", [None, "", "  \n "])
def test_empty_content(server_factory: Callable[..., FakeEndpoint], content: str | None) -> None:
    srv = server_factory(lambda n, b: Reply(body=chat_body(content)))
    client, _ = make_client(srv.url, max_retries=1)
    assert client.chat_many(["hi"]) == [None]
    assert client.stats["empty"] == 2 and client.stats["failures"] == 1


def test_429_honours_retry_after(server_factory: Callable[..., FakeEndpoint]) -> None:
    srv = server_factory(
        lambda n, b: (
            Reply(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "2"})
            if n == 0
            else Reply(body=chat_body("ok"))
        )
    )
    client, waits = make_client(srv.url, backoff_s=0.01)
    assert client.chat_many(["hi"]) == ["ok"]
    assert waits == [2.0] and client.stats["rate_limited"] == 1 and client.stats["retries"] == 1


def test_429_real_wait(server_factory: Callable[..., FakeEndpoint]) -> None:
    srv = server_factory(
        lambda n, b: Reply(429, {}, headers={"Retry-After": "1"}) if n == 0 else Reply(body=chat_body("ok"))
    )
    client = ChatClient(EndpointConfig(url=srv.url, model="fake", backoff_s=0.01))
    start = time.perf_counter()
    assert client.chat_many(["hi"]) == ["ok"]
    assert 0.9 < time.perf_counter() - start < 5


def test_concurrency_is_bounded(server_factory: Callable[..., FakeEndpoint]) -> None:
    srv = server_factory(lambda n, b: Reply(body=chat_body(f"r{n}"), delay_s=0.3))
    client, _ = make_client(srv.url, max_concurrency=3)
    out = client.chat_many([f"q{i}" for i in range(9)])
    assert sorted(out) == sorted(f"r{i}" for i in range(9))  # type: ignore[type-var]
    assert 2 <= srv.max_in_flight <= 3  # never more than the bound (and they did overlap)


def test_chat_many_inside_a_running_loop(server_factory: Callable[..., FakeEndpoint]) -> None:
    srv = server_factory(ok("x"))
    client, _ = make_client(srv.url)

    async def main() -> list[str | None]:
        direct = await client.chat("one")  # the async API in this loop
        await client.aclose()
        return [direct, *client.chat_many(["two"])]  # the sync wrapper from inside the loop

    assert asyncio.run(main()) == ["x", "x"]
    assert client.chat_many(["three"]) == ["x"]  # and again, in a fresh loop


def test_preflight_outcomes(
    server_factory: Callable[..., FakeEndpoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = server_factory(ok())
    info = make_client(srv.url)[0].preflight()
    assert info["status"] == 200 and info["model_listed"] is True
    assert srv.seen[-1].method == "GET" and srv.seen[-1].path == "/v1/models"
    assert not srv.chat_requests  # preflight sends no chat request

    no_list = server_factory(ok(), models_status=404)
    assert make_client(no_list.url)[0].preflight()["status"] == 404  # up, just no /models

    monkeypatch.setenv("JUDGE_KEY", SECRET)
    denied = server_factory(ok(), models_status=401)
    with pytest.raises(EndpointError, match=r"rejected the key from \$JUDGE_KEY") as err:
        make_client(denied.url, key_env="JUDGE_KEY")[0].preflight()
    assert SECRET not in str(err.value)


def test_preflight_timeout_is_bounded(server_factory: Callable[..., FakeEndpoint]) -> None:
    with socket.socket() as s:  # accepts connections (backlog) but never answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
        client = ChatClient(EndpointConfig(url=url, model="m", timeout_s=0.5))
        start = time.perf_counter()
        with pytest.raises(EndpointError, match="did not answer within 0.5 s"):
            client.preflight()
        assert time.perf_counter() - start < 3


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls_is_verified_unless_disabled(tmp_path: Path, server_factory: Callable[..., FakeEndpoint]) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    srv = server_factory(ok("secure"), tls=(cert, key))
    strict, _ = make_client(srv.url, max_retries=0)
    with pytest.raises(EndpointError, match="cannot reach endpoint"):  # self-signed: verification fails
        strict.preflight()
    assert strict.chat_many(["hi"]) == [None] and strict.stats["connection_errors"] == 1
    insecure, _ = make_client(srv.url, verify_tls=False)
    assert insecure.preflight()["status"] == 200
    assert insecure.chat_many(["hi"]) == ["secure"]
