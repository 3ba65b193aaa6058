"""The reference-based LLM judge of hybrid annotation (:mod:`cooper.annotate`).

The judge sees the question, the reference answer and the completion, and must end its reply with exactly
``Final verdict: Yes`` or ``Final verdict: No`` on its last line; anything else is an abstention
(``None``), never a label. :func:`as_judge` turns a :class:`~cooper.utils.endpoints.ChatClient`, an object with a
``judge`` method or a plain callable (sync or async) into one async judge function.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any

from cooper.utils.endpoints import ChatClient

Verdict = bool | None
JudgeFn = Callable[[str, str, str], Awaitable[tuple[Verdict, str | None]]]

JUDGE_SYSTEM = "You are a meticulous grader of answers to math problems."
JUDGE_TEMPLATE = """Decide whether the final answer of a model's completion is equivalent to the reference answer.

Question:
{question}

Reference answer:
{reference}

Completion:
{completion}

Compare only the completion's final answer with the reference answer; ignore its method, style and \
intermediate steps. Mathematically equivalent forms count as equal (for example 0.5 and 1/2). If the \
completion gives no final answer, or several different ones, it is not equivalent.
Reason briefly if you need to, then end your reply with exactly one final line, either
Final verdict: Yes
or
Final verdict: No"""
MAX_COMPLETION_CHARS = 8000  # the judge sees the tail of longer completions (the final answer is there)
_VERDICT_LINE = re.compile(r"final verdict:[ \t]*(yes|no)\.?", re.IGNORECASE)


class JudgeUnavailable(RuntimeError):
    """The judge could not answer (endpoint failure after retries): counted, not logged as judged."""


def judge_messages(question: str, reference: str, completion: str) -> list[dict[str, str]]:
    """The reference-based judge prompt as chat messages (system + user)."""
    if len(completion) > MAX_COMPLETION_CHARS:
        completion = "[...] " + completion[-MAX_COMPLETION_CHARS:]
    user = JUDGE_TEMPLATE.format(question=question, reference=reference, completion=completion)
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def parse_verdict(text: str | None) -> Verdict:
    """``True`` / ``False`` if the last non-empty line is exactly ``Final verdict: Yes`` / ``No``.

    Case-insensitive, one optional trailing period, surrounding whitespace ignored. Anything else (no
    such line, extra words, both words, markdown, an empty reply) is ``None``: an abstention.
    """
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    match = _VERDICT_LINE.fullmatch(lines[-1]) if lines else None
    return None if match is None else match.group(1).lower() == "yes"


class LLMJudge:
    """The LLM judge over a :class:`~cooper.utils.endpoints.ChatClient`."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client

    async def judge_detail(self, question: str, reference: str, completion: str) -> tuple[Verdict, str]:
        """``(verdict, raw reply)``; raises :class:`JudgeUnavailable` when the endpoint gave no reply."""
        reply = await self.client.chat(judge_messages(question, reference, completion))
        if reply is None:
            raise JudgeUnavailable("the judge endpoint failed after all retries")
        return parse_verdict(reply), reply

    async def judge(self, question: str, reference: str, completion: str) -> Verdict:
        return (await self.judge_detail(question, reference, completion))[0]


def as_judge(judge: Any) -> JudgeFn:
    """An async ``(q, ref, completion) -> (verdict, raw reply or None)`` from any supported judge.

    Accepted: a :class:`ChatClient` (wrapped in :class:`LLMJudge`), an object with a ``judge`` method, or a
    plain callable; sync or async, returning ``True`` / ``False`` / ``None`` (abstain). A sync judge runs
    in the event-loop thread, one call at a time. Raise :class:`JudgeUnavailable` to count a failure.
    """
    if isinstance(judge, ChatClient):
        judge = LLMJudge(judge)
    if isinstance(judge, LLMJudge):
        return judge.judge_detail
    fn = getattr(judge, "judge", judge)
    if not callable(fn):
        raise TypeError(f"judge must be a ChatClient, an object with .judge(), or a callable; got {judge!r}")

    async def call(question: str, reference: str, completion: str) -> tuple[Verdict, str | None]:
        verdict = fn(question, reference, completion)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if verdict is not None and not isinstance(verdict, bool):
            raise TypeError(f"judge returned {verdict!r}; expected True, False or None")
        return verdict, None

    return call
