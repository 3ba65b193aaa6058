"""Negative sources for the Cooper RM update: for each verified positive, a wrong but plausible response.

A source is a plain callable in :data:`NEGATIVE_SOURCES`: ``source(requests, rng) -> list[str | None]``
(one candidate, or None, per request). :func:`make_negatives` tries the configured sources in order; a
candidate is kept only if it states a final answer and the rule verifier says that answer matches neither
the reference nor the positive's answer (so a "negative" that is actually correct is rejected and counted).
With another verifier than ``math`` (``choice``, ``string``, a user's), a candidate is kept if that verifier
judges it wrong against the reference (see :func:`_valid_negatives`).

* ``perturb`` (built in, no LLM): the final answer, and the equation that produced it, rewritten to a wrong
  value in the same surface format (integer, decimal with the same places, fraction).
* ``policy``: the rollout of the same group that the verifier marks wrong and the RM scores highest (an
  on-policy hard negative).
* ``assistant``: an OpenAI-compatible chat endpoint rewrites the positive (the paper's approach), see
  :class:`AssistantSource`.
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from cooper.verify.pool import is_correct_batch
from cooper.verify.registry import DEFAULT_VERIFIER
from cooper.verify.rule import extract_answer

log = logging.getLogger(__name__)


@dataclass
class NegativeRequest:
    """What a source may use to make a negative for one positive."""

    question: str
    reference: str
    positive: str
    # the other rollouts of the positive's group: (text, verified correct, RM score or None)
    group: list[tuple[str, bool, float | None]] = field(default_factory=list)
    # the prompt's other data columns, for the verifier (answer_type, is_multiple_answer, a user's own)
    fields: dict[str, Any] = field(default_factory=dict)


NegativeSource = Callable[[Sequence[NegativeRequest], random.Random], list[str | None]]

_FRAC = re.compile(r"\\d?frac\{(-?\d+)\}\{(\d+)\}")


def _wrong_number(text: str, rng: random.Random) -> str | None:
    """A different number in the same surface format: '18' -> '21', '2.50' -> '2.75', '-3' -> '-1'."""
    m = re.fullmatch(r"(-?)(\d+)(?:\.(\d+))?", text.strip().replace(",", ""))
    if not m:
        return None
    sign, whole, frac = m.groups()
    places = len(frac) if frac else 0
    value = Fraction(f"{sign}{whole}.{frac}") if frac else Fraction(int(f"{sign}{whole}"))
    step = Fraction(1, 10**places) if places else Fraction(1)
    for _ in range(20):
        delta = rng.choice([1, 2, 3, 5, 10]) * rng.choice([-1, 1])
        if rng.random() < 0.3 and abs(value) >= 10:  # a magnitude slip (x10 or /10) now and then
            new = value * 10 if rng.random() < 0.5 else value / 10
            new = Fraction(round(new / step) * step)
        else:
            new = value + delta * step
        if new != value and (new >= 0 or value < 0):
            return f"{float(new):.{places}f}" if places else str(int(new))
    return None


def perturb_text(text: str, rng: random.Random) -> str | None:
    """``text`` with its final answer (and the last equation that produced it) changed to a wrong value."""
    answer = extract_answer(text)
    if answer is None:
        return None
    plain = answer.strip().strip("$").replace(",", "")
    frac = _FRAC.fullmatch(plain)
    if frac:
        num, den = int(frac.group(1)), int(frac.group(2))
        new_num = num + rng.choice([-2, -1, 1, 2])
        if new_num == 0 or Fraction(new_num, den) == Fraction(num, den):
            new_num = num + 3
        return text.replace(f"{{{num}}}{{{den}}}", f"{{{new_num}}}{{{den}}}")
    new = _wrong_number(plain, rng)
    if new is None:
        return None
    # Every standalone occurrence of the answer (the equation's result, "#### N", the box) becomes the
    # new value, so the slip reads as an arithmetic error in the last step, not an edited box.
    pattern = re.compile(r"(?<![\d.])" + re.escape(plain) + r"(?![\d]|\.\d)")
    out, n = pattern.subn(new, text.replace(answer, plain) if "," in answer else text)
    return out if n else None


def perturb_source(requests: Sequence[NegativeRequest], rng: random.Random) -> list[str | None]:
    return [perturb_text(r.positive, rng) for r in requests]


def policy_source(requests: Sequence[NegativeRequest], rng: random.Random) -> list[str | None]:
    """The wrong rollout of the group with the highest RM score (ties: the first)."""
    out: list[str | None] = []
    for r in requests:
        wrong = [
            (s if s is not None else float("-inf"), i, t) for i, (t, ok, s) in enumerate(r.group) if not ok
        ]
        out.append(max(wrong)[2] if wrong else None)
    return out


ASSISTANT_INSTRUCTION = (
    "You are given a math problem, its correct reference answer, and a correct solution.\n"
    "Rewrite the solution so that it reaches a WRONG final answer while staying plausible: keep the same "
    "style, structure and approximately the same length, change as little as possible (for example one "
    "calculation step), and state the final answer in the same format as the original. Do not mention "
    "that the solution is wrong. Output only the rewritten solution.\n\n"
    "Problem:\n{question}\n\nReference answer: {reference}\n\nCorrect solution:\n{positive}"
)


class AssistantSource:
    """The paper's negatives: an assistant LLM behind an OpenAI-compatible endpoint rewrites the positive.

    Requests run concurrently with the client's bounds, timeouts and retries; a failed request yields None
    (the next source is then tried) and is counted in :attr:`client`'s stats.
    """

    def __init__(self, client: Any, instruction: str = ASSISTANT_INSTRUCTION) -> None:
        self.client = client
        self.instruction = instruction

    def __call__(self, requests: Sequence[NegativeRequest], rng: random.Random) -> list[str | None]:
        conversations = [
            [
                {
                    "role": "user",
                    "content": self.instruction.format(
                        question=r.question, reference=r.reference, positive=r.positive
                    ),
                }
            ]
            for r in requests
        ]
        replies = self.client.chat_many(conversations)
        return [t.strip() if isinstance(t, str) and t.strip() else None for t in replies]


NEGATIVE_SOURCES: dict[str, NegativeSource] = {"perturb": perturb_source, "policy": policy_source}


def make_negatives(
    requests: Sequence[NegativeRequest],
    order: Sequence[str],
    sources: dict[str, NegativeSource],
    rng: random.Random,
    *,
    verifier: str = DEFAULT_VERIFIER,
) -> tuple[list[tuple[str, str] | None], Counter[str]]:
    """For each request, ``(negative, source name)`` from the first source whose candidate is valid, or None.
    ``verifier`` judges whether a candidate is wrong (the run's verifier, see :func:`_valid_negatives`).

    Counts ``negatives/<source>`` (accepted), ``negatives/<source>_rejected`` (candidate judged correct or
    answerless), ``negatives/<source>_empty`` (no candidate) and ``negatives/none`` (no source succeeded).
    """
    for name in order:
        if name not in sources:
            raise ValueError(f"unknown negative source {name!r}; available: {sorted(sources)}")
    result: list[tuple[str, str] | None] = [None] * len(requests)
    counts: Counter[str] = Counter()
    todo = list(range(len(requests)))
    for name in order:
        if not todo:
            break
        candidates = sources[name]([requests[i] for i in todo], rng)
        valid = _valid_negatives([requests[i] for i in todo], candidates, verifier)
        still: list[int] = []
        for i, cand, ok in zip(todo, candidates, valid, strict=True):
            if cand is None:
                counts[f"negatives/{name}_empty"] += 1
                still.append(i)
            elif not ok:
                counts[f"negatives/{name}_rejected"] += 1
                still.append(i)
            else:
                counts[f"negatives/{name}"] += 1
                result[i] = (cand, name)
        todo = still
    counts["negatives/none"] += len(todo)
    return result, counts


def _valid_negatives(
    requests: Sequence[NegativeRequest], candidates: list[str | None], verifier: str = DEFAULT_VERIFIER
) -> list[bool]:
    """True where the candidate is wrong: judged by ``verifier`` against the reference, with the requests'
    row fields.

    With ``math`` it must also state a final answer that matches neither the reference nor the positive's
    answer (math-verify's equivalence is not transitive across answer formats, so both are checked). With
    another verifier that second check is skipped: it needs the math answer extractor, which need not read
    a ``choice``, ``string`` or user-verified answer, and the positive was judged correct by the same
    verifier, so a candidate it judges wrong against the reference does not repeat the positive's answer."""
    ok = [False] * len(candidates)
    math = verifier == DEFAULT_VERIFIER
    idx = [
        i for i, c in enumerate(candidates) if c is not None and (not math or extract_answer(c) is not None)
    ]
    if not idx:
        return ok
    cands = [c for c in (candidates[i] for i in idx) if c is not None]
    refs = [requests[i].reference for i in idx]
    names = list(dict.fromkeys(k for i in idx for k in requests[i].fields))
    fields: dict[str, Any] = {k: [requests[i].fields.get(k) for i in idx] for k in names}
    matches_ref = is_correct_batch(cands, refs, verifier=verifier, **fields)
    if not math:
        for i, a in zip(idx, matches_ref, strict=True):
            ok[i] = not a
        return ok
    pos_answers = [extract_answer(requests[i].positive) or requests[i].reference for i in idx]
    # the positive's answer is one extracted answer, not the reference's set: only its type applies
    matches_pos = is_correct_batch(cands, pos_answers, answer_type=fields.get("answer_type"))
    for i, a, b in zip(idx, matches_ref, matches_pos, strict=True):
        ok[i] = not a and not b
    return ok
