"""A pool of verifier worker processes with a deadline per item.

Why processes: math-verify bounds its own work with ``signal.alarm``, which only works on the main
thread of the main interpreter; called from a worker thread or an asyncio helper it raises, and
frameworks that swallow that error score every completion 0. Here each worker is a plain child process
(``python -m cooper.verify.worker``, not ``multiprocessing``, so it also works inside daemonic worker
processes and never re-imports the caller's ``__main__``). Inside a worker an interval timer interrupts
Python-level work (a soft deadline); the parent kills and replaces a worker whose item runs past the hard
deadline (sympy can hang inside C code where no signal gets through). The caller's thread only waits on
pipes, so it may be any thread.

Protocol (JSON lines): the worker prints ``"ready"``; the parent sends ``{"items": [[i, response,
reference], ...], "soft_timeout": s}`` to an idle worker; the worker answers one line per item,
``[i, verdict_dict]``. A worker is given a new chunk only once it has answered the last one, so
neither side can block on a full pipe.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import selectors
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cooper.verify.answers import ANSWER_TYPES, normalize_type
from cooper.verify.registry import BUILTIN_VERIFIERS, DEFAULT_VERIFIER, VerifierError, judge_item, worker_spec
from cooper.verify.rule import DEFAULT_TIMEOUT_S

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0
MAX_CHUNK = 32


class VerifierPoolError(RuntimeError):
    """The worker processes could not be started or keep dying."""


class _Worker:
    def __init__(self) -> None:
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("OMP_NUM_THREADS", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cooper.verify.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None  # both are PIPEs
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.buf = b""
        self.ready = False
        self.pending: deque[int] = deque()  # item indices sent, not yet answered
        self.item_started = 0.0  # when the oldest pending item began (last answer or send time)

    @property
    def fd(self) -> int:
        return self.stdout.fileno()

    def send(self, chunk: list[list[Any]], soft_timeout: float, verifier: str = DEFAULT_VERIFIER) -> None:
        message = {"items": chunk, "soft_timeout": soft_timeout, "verifier": verifier}
        line = json.dumps(message, default=str) + "\n"
        self.stdin.write(line.encode("utf-8", "surrogatepass"))
        self.stdin.flush()
        self.pending.extend(item[0] for item in chunk)
        self.item_started = time.monotonic()

    def read_lines(self) -> list[str] | None:
        """Complete lines available now; None when the worker has exited."""
        data = os.read(self.fd, 1 << 16)
        if not data:
            return None
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        return [ln.decode("utf-8", "surrogatepass") for ln in lines if ln]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        for stream in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        self.proc.wait()


class VerifierPool:
    """``workers`` verifier processes; :meth:`run` judges a batch with a deadline per item."""

    def __init__(self, workers: int | None = None) -> None:
        self.size = max(1, workers or min(8, os.cpu_count() or 1))
        self.pid = os.getpid()
        self.workers: list[_Worker] = []
        self.lock = threading.Lock()
        self.last_item_ms: list[float] = []  # time each distinct item of the last batch took in its worker
        # items: every item asked for; duplicates: those answered by an identical item's verdict
        self.stats = {"items": 0, "duplicates": 0, "timeouts": 0, "worker_restarts": 0, "worker_crashes": 0}

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers and wait until each has imported math-verify (about a second)."""
        while len(self.workers) < self.size:
            self.workers.append(_Worker())
        self._wait_ready(self.workers)

    def _wait_ready(self, workers: list[_Worker]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        for w in workers:
            while not w.ready:
                lines = self._read_blocking(w, deadline)
                if lines is None:
                    raise VerifierPoolError(
                        f"verifier worker exited at start-up (code {w.proc.poll()}); "
                        f"try `{sys.executable} -m cooper.verify.worker` to see why"
                    )
                w.ready = "ready" in [json.loads(ln) for ln in lines]

    @staticmethod
    def _read_blocking(w: _Worker, deadline: float) -> list[str] | None:
        sel = selectors.DefaultSelector()
        sel.register(w.fd, selectors.EVENT_READ)
        try:
            if not sel.select(max(0.0, deadline - time.monotonic())):
                raise VerifierPoolError(f"verifier worker not ready after {START_TIMEOUT_S:.0f} s")
            return w.read_lines()
        finally:
            sel.close()

    def close(self) -> None:
        for w in self.workers:
            w.kill()
        self.workers = []

    def _replace(self, w: _Worker) -> _Worker:
        w.kill()
        new = _Worker()
        self.workers[self.workers.index(w)] = new
        self.stats["worker_restarts"] += 1
        return new

    # -- work ---------------------------------------------------------------------------------------
    def run(
        self,
        responses: list[str],
        references: list[str],
        *,
        timeout_s: float,
        verifier: str = DEFAULT_VERIFIER,
        fields: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """Verdict dicts (see :func:`cooper.verify.rule.judge`) in input order, from ``verifier`` with each
        item's row ``fields``. A user's verifier that fails or runs past the deadline raises VerifierError.
        A built-in verifier judges identical items once and they share the verdict (each its own copy)."""
        if len(responses) != len(references):
            raise ValueError(f"{len(responses)} responses but {len(references)} references")
        fields = fields if fields is not None else [{} for _ in responses]
        if len(fields) != len(responses):
            raise ValueError(f"{len(responses)} responses but {len(fields)} rows of fields")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        from cooper.verify.rule import MAX_RESPONSE_CHARS

        if not responses:
            return []
        items, where = _unique_items(
            responses, references, fields, MAX_RESPONSE_CHARS, dedupe=verifier in BUILTIN_VERIFIERS
        )
        with self.lock:
            self.start()
            results = self._dispatch(items, timeout_s, worker_spec(verifier))
            self.stats["items"] += len(where)
            self.stats["duplicates"] += len(where) - len(items)
        if verifier not in BUILTIN_VERIFIERS:
            _raise_user_verifier_failures(verifier, results, timeout_s)
        return [dict(results[j]) for j in where]

    def _dispatch(self, items: list[list[Any]], timeout_s: float, verifier: str) -> list[dict[str, Any]]:
        results: list[dict[str, Any] | None] = [None] * len(items)
        self.last_item_ms = [float(timeout_s * 1e3)] * len(items)  # a killed item took its deadline
        todo = deque(items)
        by_index = {item[0]: item for item in items}
        chunk = max(1, min(MAX_CHUNK, len(items) // (4 * self.size) or 1))
        soft = max(0.05, 0.8 * timeout_s)
        sel = selectors.DefaultSelector()
        try:
            for w in self.workers:
                sel.register(w.fd, selectors.EVENT_READ, w)
            done = 0
            while done < len(items):
                for w in self.workers:
                    if w.ready and not w.pending and todo:
                        w.send([todo.popleft() for _ in range(min(chunk, len(todo)))], soft, verifier)
                now = time.monotonic()
                busy = [w.item_started + timeout_s - now for w in self.workers if w.pending]
                for key, _ in sel.select(max(0.0, min(busy, default=1.0))):
                    w = key.data
                    lines = w.read_lines()
                    if lines is None:  # the worker died (OOM-killed, crashed): judge its item False
                        sel.unregister(w.fd)
                        done += self._fail_head(w, results, todo, by_index, "worker crashed")
                        self.stats["worker_crashes"] += 1
                        self._replace(w)
                        self._reregister(sel)
                        continue
                    for line in lines:
                        msg = json.loads(line)
                        if msg == "ready":
                            w.ready = True
                            continue
                        idx, verdict = msg
                        self.last_item_ms[idx] = verdict.pop("ms", float("nan"))
                        results[idx] = verdict
                        w.pending.remove(idx)
                        w.item_started = time.monotonic()
                        done += 1
                now = time.monotonic()
                for w in list(self.workers):
                    if w.pending and now - w.item_started > timeout_s:
                        sel.unregister(w.fd)
                        done += self._fail_head(w, results, todo, by_index, f"timed out after {timeout_s} s")
                        self.stats["timeouts"] += 1
                        self._replace(w)
                        self._reregister(sel)
        finally:
            sel.close()
        return [r for r in results if r is not None]

    def _reregister(self, sel: selectors.BaseSelector) -> None:
        registered = {key.fd for key in sel.get_map().values()}
        for w in self.workers:
            if w.fd not in registered:
                sel.register(w.fd, selectors.EVENT_READ, w)

    def _fail_head(self, w: _Worker, results: list, todo: deque, by_index: dict, why: str) -> int:
        """Mark the item the worker was stuck on as wrong; requeue the rest of its chunk."""
        head = w.pending.popleft()
        results[head] = {"correct": False, "extracted_answer": None, "reference_answer": None, "note": why}
        results[head]["failed"] = why
        log.warning("verifier item %d %s; counted as wrong, worker replaced", head, why)
        todo.extendleft(by_index[i] for i in reversed(w.pending))
        w.pending.clear()
        return 1


def _unique_items(
    responses: list[str],
    references: list[str],
    fields: list[dict[str, Any]],
    max_chars: int,
    *,
    dedupe: bool,
) -> tuple[list[list[Any]], list[int]]:
    """The items to judge, each ``[index, response, reference, fields]``, and for every input the index of
    its item. With ``dedupe``, identical (response, reference, fields) inputs share one item: a group of GRPO
    samples often repeats a completion (a tenth to a third of them in the demo), and a built-in verifier is a
    pure function of its item. A user's verifier sees every input (it may log, count or sample)."""
    items: list[list[Any]] = []
    index: dict[object, int] = {}
    where = []
    for i, (r, g, f) in enumerate(zip(responses, references, fields, strict=True)):
        response, reference = _as_text(r)[-max_chars:], _as_text(g)[-max_chars:]
        key = (response, reference, json.dumps(f, sort_keys=True, default=repr)) if dedupe else i
        if key not in index:
            index[key] = len(items)
            items.append([len(items), response, reference, f])
        where.append(index[key])
    return items, where


def _raise_user_verifier_failures(verifier: str, results: list[dict[str, Any]], timeout_s: float) -> None:
    """A user's verifier that raised, returned a bad result, hung or crashed fails the whole batch, by name."""
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise VerifierError(f"{errors[0]} (on {len(errors)} of {len(results)} items)")
    failed = [r["failed"] for r in results if "failed" in r]
    if failed:
        raise VerifierError(
            f"verifier {verifier!r} gave no verdict on {len(failed)} of {len(results)} items ({failed[0]}; the "
            f"deadline is {timeout_s} s per item)"
        )


def _as_text(x: object) -> str:
    return x if isinstance(x, str) else ""


_POOL: VerifierPool | None = None
_POOL_LOCK = threading.Lock()


def shared_pool(workers: int | None = None) -> VerifierPool:
    """The process-wide pool, started on first use; re-created after a fork or a size change."""
    global _POOL
    with _POOL_LOCK:
        pool = _POOL
        if pool is not None and (pool.pid != os.getpid() or (workers and workers != pool.size)):
            if pool.pid == os.getpid():
                pool.close()
            _POOL = None  # after a fork the old pipes belong to the parent: leave them alone
        if _POOL is None:
            _POOL = VerifierPool(workers)
        return _POOL


@atexit.register
def _close_shared_pool() -> None:
    if _POOL is not None and _POOL.pid == os.getpid():
        _POOL.close()


def explain(
    response: str,
    reference: str,
    *,
    answer_type: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    verifier: str = DEFAULT_VERIFIER,
    **row_fields: Any,
) -> dict[str, Any]:
    """The verdict under a deadline in the worker pool, with its evidence: the extracted answer set, the
    normalised reference set, the answer type and the rule that decided (see :func:`cooper.verify.rule.judge`)."""
    if answer_type is not None and normalize_type(answer_type) is None:
        raise ValueError(f"unknown answer_type {answer_type!r}: use one of {', '.join(ANSWER_TYPES)} or None")
    fields = {**row_fields, **({"answer_type": answer_type} if answer_type is not None else {})}
    return shared_pool().run(
        [response], [reference], timeout_s=timeout_s, verifier=verifier, fields=[fields]
    )[0]


def is_correct(
    response: str, reference: str, *, answer_type: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
) -> bool:
    """True only if the final answer of ``response`` is equivalent to ``reference``. ``answer_type``:
    ``numeric``, ``expression``, ``choice`` or ``string``; None infers it from the reference."""
    return bool(explain(response, reference, answer_type=answer_type, timeout_s=timeout_s)["correct"])


def is_correct_batch(
    responses: list[str],
    references: list[str],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    workers: int | None = None,
    verifier: str = DEFAULT_VERIFIER,
    **row_fields: Sequence[Any] | None,
) -> list[bool]:
    """Verdicts for many (response, reference) pairs, in order, using a pool of worker processes (the
    ``correct`` of :func:`explain_batch`, which documents the arguments)."""
    verdicts = explain_batch(
        responses, references, timeout_s=timeout_s, workers=workers, verifier=verifier, **row_fields
    )
    return [bool(v["correct"]) for v in verdicts]


def explain_batch(
    responses: list[str],
    references: list[str],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    workers: int | None = None,
    verifier: str = DEFAULT_VERIFIER,
    **row_fields: Sequence[Any] | None,
) -> list[dict[str, Any]]:
    """Verdicts with their evidence (see :func:`explain`) for many (response, reference) pairs, in order,
    using a pool of worker processes.

    ``verifier``: ``math`` (default), ``choice``, ``string`` or a user's ``module:function``. ``row_fields``:
    the rows' other columns, one sequence each (``answer_type=[...]``, ``is_multiple_answer=[...]``); the
    built-in verifiers use ``answer_type`` and ``is_multiple_answer``, a user's gets them all.

    Each item has its own deadline ``timeout_s``: an item that runs past it counts as wrong, its worker
    is killed and replaced, and the rest of the batch goes on. ``workers`` sizes the shared pool
    (default: the number of CPU cores, at most 8); ``workers=0`` judges in this process, without
    deadlines (for debugging).
    """
    if len(responses) != len(references):
        raise ValueError(f"{len(responses)} responses but {len(references)} references")
    fields = row_dicts(len(responses), row_fields)
    if workers == 0:
        return [judge_item(verifier, r, g, f) for r, g, f in zip(responses, references, fields, strict=True)]
    return shared_pool(workers).run(
        responses, references, timeout_s=timeout_s, verifier=verifier, fields=fields
    )


def row_dicts(n: int, row_fields: dict[str, Sequence[Any] | None]) -> list[dict[str, Any]]:
    """``{"answer_type": [a, b]}`` -> ``[{"answer_type": a}, {"answer_type": b}]``; each list must have ``n``
    items (a None column is left out)."""
    columns = {k: list(v) for k, v in row_fields.items() if v is not None}
    for name, values in columns.items():
        if len(values) != n:
            raise ValueError(f"row field {name!r} has {len(values)} values for {n} responses")
    return [{k: v[i] for k, v in columns.items()} for i in range(n)]


async def is_correct_batch_async(
    responses: list[str], references: list[str], *, timeout_s: float = DEFAULT_TIMEOUT_S, **kwargs: Any
) -> list[bool]:
    """:func:`is_correct_batch` for asyncio code: runs in a thread, never blocks the event loop."""
    import asyncio

    return await asyncio.to_thread(is_correct_batch, responses, references, timeout_s=timeout_s, **kwargs)
