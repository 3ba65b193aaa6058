"""A small, hardened client for OpenAI-compatible chat endpoints (LLM judge, negative rewriter).

Built on the official ``openai`` package (``AsyncOpenAI``, imported lazily) with its own retries switched
off, so that every attempt is made, timed and counted here:

* :class:`EndpointConfig` — one flat, validated dataclass: URL, model, the *name* of the environment
  variable that holds the API key (never the key itself), timeout, retries, backoff, concurrency, sampling.
* :class:`ChatClient` — ``await chat(messages) -> str | None`` with a hard per-request deadline,
  exponential backoff (``Retry-After`` honoured on 429), a semaphore bounding concurrent requests, and a
  ``stats`` dict counting every outcome. It never raises for endpoint faults (HTTP errors, malformed JSON,
  empty content, timeouts, refused connections): the result is ``None`` after the last retry.
  :meth:`ChatClient.preflight` fails fast, with a clear :class:`EndpointError`, when the endpoint cannot be
  reached, rejects the key or answers a 5xx (after the retries); :meth:`ChatClient.chat_many` runs many
  conversations concurrently from synchronous code (also when the calling thread already runs an event loop).

The API key is read from ``os.environ[config.key_env]`` when the client is built; it is only ever handed
to the ``openai`` client (through a key provider) and never appears in reprs, logs, stats or files.
Without ``key_env`` no ``Authorization`` header is sent at all (``$OPENAI_API_KEY`` is *not* used, so a
real OpenAI key is never sent to a local server by accident).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import email.utils
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cooper.utils.errors import BadInput
from cooper.utils.redact import install_url_filter, redact_url

# openai is imported where it is used: cooper.cli imports this module to build its parsers, and importing
# openai takes about 0.7 s (cooper --help takes 0.1 s)
if TYPE_CHECKING:
    from openai import AsyncOpenAI

logger = logging.getLogger(__name__)

Message = dict[str, str]
Conversation = str | Sequence[Message]

# Statuses worth another attempt (the server may recover); other 4xx mean the request itself is wrong.
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 60.0  # cap on one wait, whatever the backoff or Retry-After asks for
STAT_KEYS = (
    "requests",  # chat() calls
    "attempts",  # HTTP attempts (requests + retries)
    "retries",
    "succeeded",  # chat() calls that returned text
    "failures",  # chat() calls that returned None (after the last retry, or a non-retryable error)
    "timeouts",  # attempts past timeout_s
    "empty",  # attempts answered with no text
    "malformed",  # attempts answered with unparseable JSON or an unexpected shape
    "http_errors",  # attempts answered with an HTTP error status other than 429
    "rate_limited",  # attempts answered with HTTP 429
    "connection_errors",  # attempts that could not connect (refused, reset, DNS)
)


class EndpointError(BadInput, RuntimeError):
    """The endpoint is misconfigured, unreachable or rejects the key (raised by preflight and setup)."""


@dataclass(repr=False)
class EndpointConfig:
    """Where and how to call one OpenAI-compatible chat endpoint.

    Attributes:
        url: base URL of the API, e.g. ``http://127.0.0.1:8000/v1`` (the ``/chat/completions`` and
            ``/models`` paths are appended by the client).
        model: the model name sent with each request.
        key_env: name of the environment variable holding the API key; ``None`` sends no key.
        timeout_s: hard deadline for one HTTP attempt, connection included.
        max_retries: further attempts after a failed one (0 = a single attempt).
        backoff_s: wait before the first retry; doubled for each further retry (capped at 60 s).
        max_concurrency: requests in flight at once.
        temperature: sampling temperature sent with each request.
        max_tokens: completion-token limit sent with each request.
        verify_tls: verify the server's TLS certificate (turn off only for self-signed local servers).
    """

    url: str
    model: str
    key_env: str | None = None
    timeout_s: float = 30.0
    max_retries: int = 3
    backoff_s: float = 0.5
    max_concurrency: int = 8
    temperature: float = 0.0
    max_tokens: int = 512
    verify_tls: bool = True

    def __post_init__(self) -> None:
        parts = urlsplit(self.url) if isinstance(self.url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be an http(s) URL with a host, got {redact_url(str(self.url))!r}")
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError("model must be a non-empty string")
        if self.key_env is not None and (not isinstance(self.key_env, str) or not self.key_env.strip()):
            raise ValueError("key_env must be the name of an environment variable, or None")
        positive = {"timeout_s": self.timeout_s, "max_concurrency": self.max_concurrency}
        positive["max_tokens"] = self.max_tokens
        for name, value in positive.items():
            if not _is_number(value) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        for name in ("max_retries", "backoff_s", "temperature"):
            value = getattr(self, name)
            if not _is_number(value) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        for name in ("max_retries", "max_concurrency", "max_tokens"):
            if not isinstance(getattr(self, name), int):
                raise ValueError(f"{name} must be an integer, got {getattr(self, name)!r}")

    def read_key(self) -> str | None:
        """The API key from ``$key_env`` (``None`` without ``key_env``); a missing variable is an error."""
        if self.key_env is None:
            return None
        key = os.environ.get(self.key_env)
        if not key:
            raise EndpointError(
                f"the API key variable ${self.key_env} is not set (or empty); export it, or drop the key "
                "option for an endpoint that needs no key"
            )
        return key

    def describe(self) -> dict[str, Any]:
        """The settings as a dict safe to log or save (URL credentials masked; the key is never here)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["url"] = redact_url(self.url)
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.describe().items())
        return f"EndpointConfig({inner})"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def as_messages(conversation: Conversation) -> list[Message]:
    """A plain string becomes one user message; a list of ``{"role", "content"}`` dicts is copied."""
    if isinstance(conversation, str):
        return [{"role": "user", "content": conversation}]
    messages = [dict(m) for m in conversation]
    for m in messages:
        if not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ValueError(f"each message needs string 'role' and 'content', got keys {sorted(m)}")
    return messages


class _Fault(Exception):
    """One failed attempt: the stats key it counts under, whether to retry, and the wait it asks for."""

    def __init__(self, kind: str, detail: str, *, retry: bool = True, wait_s: float | None = None) -> None:
        super().__init__(detail)
        self.kind, self.detail, self.retry, self.wait_s = kind, detail, retry, wait_s


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _content_of(completion: Any) -> str:
    """The first choice's message text; raises :class:`_Fault` for a malformed or empty answer."""
    if isinstance(completion, str):  # the openai client returns the raw body for a non-JSON content type
        raise _Fault("malformed", f"response is not JSON: {completion[:80]!r}")
    choices = _get(completion, "choices")
    if not isinstance(choices, list) or not choices:
        raise _Fault("malformed", "response has no choices")
    content = _get(_get(choices[0], "message"), "content")
    if content is not None and not isinstance(content, str):
        raise _Fault("malformed", f"message content is {type(content).__name__}, not text")
    if not content or not content.strip():
        raise _Fault("empty", "response has empty content")
    return content


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date), else None."""
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                continue
            seconds = when.timestamp() - time.time()
        if math.isfinite(seconds):
            return max(0.0, seconds)
    return None


class _LoopState:
    """The openai client and semaphore of one event loop (both are bound to the loop they run on)."""

    def __init__(self, client: AsyncOpenAI, limit: int) -> None:
        self.client = client
        self.semaphore = asyncio.Semaphore(limit)


class ChatClient:
    """Chat with an OpenAI-compatible endpoint: bounded concurrency, deadlines, retries, counted outcomes.

    ``chat`` returns the reply text, or ``None`` when the endpoint failed on every attempt; it does not
    raise for endpoint faults. The key is read from the environment once, here (:class:`EndpointError`
    when the variable is missing). Usable from several event loops in turn (each gets its own HTTP
    client); close with :meth:`aclose` or ``async with`` when you drive the loop yourself —
    :meth:`chat_many` and :meth:`preflight` clean up after themselves.
    """

    def __init__(
        self, config: EndpointConfig, *, sleep: Callable[[float], Awaitable[None]] | None = None
    ) -> None:
        self.config = config
        key = config.read_key()

        async def key_provider() -> str:  # the key lives only in this closure: not in vars(), reprs, logs
            return key or ""

        self._has_key = key is not None
        self._key_provider = key_provider
        self._sleep = sleep or asyncio.sleep
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        self._stats_lock = threading.Lock()
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return f"ChatClient({self.config!r})"

    # -- plumbing ---------------------------------------------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def _make_client(self) -> AsyncOpenAI:
        from openai import AsyncOpenAI, DefaultAsyncHttpx2Client  # lazy: cooper.cli imports this module

        install_url_filter()
        http_client = DefaultAsyncHttpx2Client(verify=self.config.verify_tls, timeout=self.config.timeout_s)
        return AsyncOpenAI(
            api_key=self._key_provider,
            base_url=self.config.url,
            timeout=self.config.timeout_s,
            max_retries=0,  # ours are the retries, so that each attempt is counted
            http_client=http_client,
        )

    def _extra_headers(self) -> dict[str, Any] | None:
        """Per-request headers: without a key, ``Authorization`` is omitted explicitly (else the openai
        client refuses to send, or would fall back to nothing we chose)."""
        from openai import omit  # lazy: cooper.cli imports this module

        return None if self._has_key else {"Authorization": omit}

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = _LoopState(self._make_client(), self.config.max_concurrency)
            self._states[loop] = state
        return state

    async def aclose(self) -> None:
        """Close the HTTP client of the running event loop (a later call opens a new one)."""
        state = self._states.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state.client.close()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)

    # -- one request --------------------------------------------------------------------------------
    async def _attempt(self, client: AsyncOpenAI, messages: list[Message]) -> str:
        """One HTTP attempt under the hard deadline; raises :class:`_Fault` on any endpoint fault."""
        import openai  # lazy: cooper.cli imports this module

        cfg = self.config
        try:
            async with asyncio.timeout(cfg.timeout_s):
                completion = await client.chat.completions.create(
                    model=cfg.model,
                    messages=messages,  # type: ignore[arg-type]
                    temperature=cfg.temperature,
                    max_tokens=cfg.max_tokens,
                    extra_headers=self._extra_headers(),
                )
        except (TimeoutError, openai.APITimeoutError):
            raise _Fault("timeouts", f"no answer within {cfg.timeout_s:g} s") from None
        except openai.APIConnectionError as e:
            raise _Fault(
                "connection_errors", f"connection failed ({type(e.__cause__ or e).__name__})"
            ) from None
        except openai.APIStatusError as e:
            status = e.status_code
            if status == 429:
                wait = parse_retry_after(e.response.headers)
                raise _Fault("rate_limited", "HTTP 429 (rate limited)", wait_s=wait) from None
            retry = status in RETRY_STATUSES or status >= 500
            if status in (401, 403):
                self._warn_once("auth", "the endpoint rejected the API key (HTTP %d)", status)
            elif status == 404:
                self._warn_once("404", "HTTP 404 from the endpoint: is the model name %r right?", cfg.model)
            raise _Fault("http_errors", f"HTTP {status}", retry=retry) from None
        except (openai.APIResponseValidationError, ValueError) as e:  # bad JSON, failed validation
            raise _Fault("malformed", f"unparseable response ({type(e).__name__})") from None
        try:
            return _content_of(completion)
        except (TypeError, AttributeError) as e:
            raise _Fault("malformed", f"unexpected response shape ({type(e).__name__})") from None

    def _backoff(self, retry_index: int, fault: _Fault) -> float:
        wait = self.config.backoff_s * (2**retry_index)
        if fault.wait_s is not None:
            wait = max(wait, fault.wait_s)
        return min(wait, MAX_BACKOFF_S)

    async def chat(self, messages: Conversation) -> str | None:
        """The reply text, or ``None`` after the last retry failed (never raises for endpoint faults)."""
        conversation = as_messages(messages)
        state = self._state()
        self._count("requests")
        attempts = self.config.max_retries + 1
        last = _Fault("failures", "no attempt made")
        for attempt in range(attempts):
            if attempt:
                self._count("retries")
            async with state.semaphore:
                self._count("attempts")
                try:
                    text = await self._attempt(state.client, conversation)
                except _Fault as fault:
                    self._count(fault.kind)
                    last = fault
                else:
                    self._count("succeeded")
                    return text
            if not last.retry or attempt == attempts - 1:
                break
            wait = self._backoff(attempt, last)
            logger.debug("attempt %d/%d failed (%s); retrying in %.2f s", attempt + 1, attempts, last, wait)
            await self._sleep(wait)
        self._count("failures")
        logger.warning(
            "request to %s failed after %d attempt(s): %s",
            redact_url(self.config.url),
            attempt + 1,
            last.detail,
        )
        return None

    async def achat_many(self, conversations: Sequence[Conversation]) -> list[str | None]:
        """:meth:`chat` for each conversation, concurrently (bounded by ``max_concurrency``), in order."""
        return list(await asyncio.gather(*(self.chat(c) for c in conversations)))

    def chat_many(self, conversations: Sequence[Conversation]) -> list[str | None]:
        """Synchronous :meth:`achat_many`; runs in a helper thread when this thread already runs a loop."""
        return run_sync(lambda: self._closing(self.achat_many(conversations)))

    async def _closing(self, coro: Awaitable[Any]) -> Any:
        try:
            return await coro
        finally:
            await self.aclose()

    # -- preflight ------------------------------------------------------------------------------------
    async def check(self) -> dict[str, Any]:
        """Check, with one quick ``GET {url}/models``, that the endpoint answers and accepts the key.

        Raises :class:`EndpointError` when it cannot be reached in ``timeout_s``, refuses the connection,
        rejects the key (401/403) or still answers a 5xx after ``max_retries`` retries (with the usual
        backoff). Any other answer proves a working server: another error status is logged (some servers
        do not implement ``/models``), and a model list without ``model`` is warned about.
        Returns ``{"url", "status", "models", "model_listed"}``; preflight requests are not in ``stats``.
        """
        cfg = self.config
        where = redact_url(cfg.url)
        info: dict[str, Any] = {"url": where, "status": None, "models": None, "model_listed": None}
        client = self._state().client
        attempts = cfg.max_retries + 1
        attempt = 0
        while True:
            try:
                return await self._check_once(client, info)
            except _Fault as fault:
                # A 5xx fails the preflight rather than passing as "up". Servers without /models answer
                # 404/405 (still "up", below); a 5xx means the server or the proxy in front of it is failing
                # (502/503/504: the backend is down or still loading its model), and chat requests would
                # then fail too: every row would cost max_retries attempts and end unjudged (exit 3) after a
                # long wait. Retried like a chat request, so a server that is just starting gets its chance.
                attempt += 1
                if attempt == attempts:
                    raise EndpointError(
                        f"endpoint {where} is failing: GET /models answered {fault.detail} on {attempts} "
                        "attempt(s); check the server (and any proxy in front of it) and its logs"
                    ) from None
                wait = self._backoff(attempt - 1, fault)
                logger.info("GET %s/models answered %s; retrying in %.2f s", where, fault.detail, wait)
                await self._sleep(wait)

    async def _check_once(self, client: AsyncOpenAI, info: dict[str, Any]) -> dict[str, Any]:
        """One ``GET /models`` for :meth:`check`; raises :class:`_Fault` for a 5xx (worth a retry)."""
        import openai  # lazy: cooper.cli imports this module

        cfg = self.config
        where = info["url"]
        try:
            async with asyncio.timeout(cfg.timeout_s):
                page = await client.models.list(extra_headers=self._extra_headers())
        except (TimeoutError, openai.APITimeoutError):
            raise EndpointError(f"endpoint {where} did not answer within {cfg.timeout_s:g} s") from None
        except openai.APIConnectionError as e:
            cause = e.__cause__ or e
            raise EndpointError(
                f"cannot reach endpoint {where}: {type(cause).__name__}: {cause} (is the server running?)"
            ) from None
        except openai.APIStatusError as e:
            info["status"] = e.status_code
            if e.status_code in (401, 403):
                key = f"the key from ${cfg.key_env}" if cfg.key_env else "requests without an API key"
                raise EndpointError(f"endpoint {where} rejected {key} (HTTP {e.status_code})") from None
            if e.status_code >= 500:
                wait = parse_retry_after(e.response.headers)
                raise _Fault("http_errors", f"HTTP {e.status_code}", wait_s=wait) from None
            logger.info("endpoint %s is up (GET /models answered HTTP %d)", where, e.status_code)
            return info
        except (ValueError, TypeError, openai.APIResponseValidationError) as e:
            logger.info(
                "endpoint %s is up (GET /models gave an unreadable answer: %s)", where, type(e).__name__
            )
            info["status"] = 200
            return info
        info["status"] = 200
        data = _get(page, "data")
        if isinstance(data, list):
            ids = [i for i in (_get(m, "id") for m in data) if isinstance(i, str)]
            info["models"] = ids
            info["model_listed"] = any(i == cfg.model or i.split("@")[0] == cfg.model for i in ids)
            if ids and not info["model_listed"]:
                logger.warning("endpoint %s does not list model %r (it lists %s)", where, cfg.model, ids[:10])
        logger.info("endpoint %s is up", where)
        return info

    def preflight(self) -> dict[str, Any]:
        """Synchronous :meth:`check`: raises :class:`EndpointError` with a clear message if unusable."""
        return run_sync(lambda: self._closing(self.check()))


def add_endpoint_args(parser: argparse.ArgumentParser, prefix: str, title: str) -> None:
    """Add ``--{prefix}-url``, ``-model``, ``-key-env``, ``-timeout``, ``-retries``, ``-backoff``,
    ``-concurrency``, ``-temperature``, ``-max-tokens`` and ``-insecure`` (defaults from
    :class:`EndpointConfig`); read them back with :func:`endpoint_config_from_args`."""
    d = {f.name: f.default for f in fields(EndpointConfig)}
    g = parser.add_argument_group(title)
    g.add_argument(
        f"--{prefix}-url", required=True, help="base URL of the API, e.g. http://127.0.0.1:8000/v1"
    )
    g.add_argument(f"--{prefix}-model", required=True, help="model name sent with each request")
    g.add_argument(f"--{prefix}-key-env", metavar="VAR", help="environment variable holding the API key")
    g.add_argument(f"--{prefix}-timeout", type=float, default=d["timeout_s"], help="seconds per attempt")
    g.add_argument(f"--{prefix}-retries", type=int, default=d["max_retries"], help="retries per request")
    g.add_argument(
        f"--{prefix}-backoff", type=float, default=d["backoff_s"], help="first retry wait (doubles)"
    )
    g.add_argument(
        f"--{prefix}-concurrency", type=int, default=d["max_concurrency"], help="requests in flight"
    )
    g.add_argument(f"--{prefix}-temperature", type=float, default=d["temperature"])
    g.add_argument(f"--{prefix}-max-tokens", type=int, default=d["max_tokens"])
    g.add_argument(f"--{prefix}-insecure", action="store_true", help="do not verify the TLS certificate")


def endpoint_config_from_args(args: argparse.Namespace, prefix: str) -> EndpointConfig:
    """The :class:`EndpointConfig` from options added by :func:`add_endpoint_args` (ValueError if invalid)."""
    get = vars(args)
    p = prefix.replace("-", "_")
    return EndpointConfig(
        url=get[f"{p}_url"],
        model=get[f"{p}_model"],
        key_env=get[f"{p}_key_env"],
        timeout_s=get[f"{p}_timeout"],
        max_retries=get[f"{p}_retries"],
        backoff_s=get[f"{p}_backoff"],
        max_concurrency=get[f"{p}_concurrency"],
        temperature=get[f"{p}_temperature"],
        max_tokens=get[f"{p}_max_tokens"],
        verify_tls=not get[f"{p}_insecure"],
    )


def run_sync(make_coro: Callable[[], Awaitable[Any]]) -> Any:
    """Run the coroutine made by ``make_coro`` to completion from synchronous code.

    Uses ``asyncio.run`` in this thread, or in a helper thread when this thread already runs an event
    loop (that loop is blocked meanwhile, as with any synchronous call made from async code).
    """

    async def main() -> Any:
        return await make_coro()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="cooper-endpoint") as pool:
        return pool.submit(asyncio.run, main()).result()
