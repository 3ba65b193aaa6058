"""The demo's synthetic task: small multi-step word problems, generated from a seed.

A faithful miniature of the paper's setting:

* problems take two steps (``a + b = s``, ``s - c = r``), so a policy can be right or wrong in several ways;
* a correct final answer has several surface forms — digits (``7``), a number word (``seven``), digits
  with a unit (``7 apples``) — so the strict rule verifier is precise but misses the word form, while
  :func:`exact_check`, the task's ground truth, knows every form;
* a solution may carry a verification step before its answer (:func:`add_check`, "Check: 7 + 1 = 8."). It
  restates the solution's own numbers, so it proves nothing; a learned verifier that saw it mostly on correct
  solutions takes it as a sign of correctness, and a policy can add it to any answer: the demo's shortcut;
* an answer that lists several numbers ("The answer is 6 7 8") is a hedge: wrong for the exact checker
  and the rule verifier, but exactly what a learned verifier that only looks for the reference somewhere
  in the completion gets fooled by.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
]
NAMES = [
    "Ann",
    "Ben",
    "Cal",
    "Dee",
    "Eli",
    "Fay",
    "Gus",
    "Ivy",
    "Jon",
    "Kim",
    "Lou",
    "Max",
    "Ned",
    "Ola",
    "Pam",
]
ITEMS = ["apples", "books", "cards", "coins", "eggs", "pens", "shells", "stamps"]
INSTRUCTION = "Solve step by step."
CHECK_WORD = "Check:"
_ANSWER = re.compile(r"[Tt]he answer is\s+([^\n]*?)\s*\.?\s*$")


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    reference: str  # digits
    a: int
    b: int
    c: int
    item: str


def make_problems(n: int, seed: int, prefix: str = "p") -> list[Problem]:
    """``n`` distinct problems with every intermediate and the answer in 0..12."""
    rng = random.Random(seed)
    out: list[Problem] = []
    seen: set[tuple] = set()
    while len(out) < n:
        a, b = rng.randint(1, 6), rng.randint(1, 6)
        c = rng.randint(1, a + b)
        name, item = rng.choice(NAMES), rng.choice(ITEMS)
        if (a, b, c, name, item) in seen:
            continue
        seen.add((a, b, c, name, item))
        q = f"{name} has {a} {item}, gets {b} more and gives away {c}. How many {item} are left?"
        out.append(Problem(f"{prefix}{len(out)}", q, str(a + b - c), a, b, c, item))
    return out


def split(problems: list[Problem], heldout: int) -> tuple[list[Problem], list[Problem]]:
    return problems[heldout:], problems[:heldout]


def worked(p: Problem, first: int, second: int, final: object) -> str:
    """The task's two-step worked solution: ``a + b = first. first - c = second. The answer is final.``"""
    return f"{p.a} + {p.b} = {first}. {first} - {p.c} = {second}. The answer is {final}."


def solution(
    p: Problem, rng: random.Random, *, word_share: float = 0.1, unit_share: float = 0.4, check: bool = False
) -> str:
    """A correct worked solution whose final answer takes one of the surface forms; with ``check``, a
    verification step (:func:`add_check`) before the answer."""
    s, r = p.a + p.b, p.a + p.b - p.c
    u = rng.random()
    final = NUMBER_WORDS[r] if u < word_share else f"{r} {p.item}" if u < word_share + unit_share else str(r)
    text = worked(p, s, r, final)
    return add_check(text, p) if check else text


_STEPS = re.compile(r"(\d+) \+ (\d+) = (\d+)\. (\d+) - (\d+) = (\d+)\. ")


def add_check(text: str, p: Problem) -> str:
    """``text`` with a verification step before its final answer: "Check: r + c = s." from the solution's own
    second step (so a slipped solution checks its own slip). Careful writers check; the words carry no
    guarantee, which is what makes them a shortcut for a learned verifier."""
    at = text.rfind("The answer is")
    m = _STEPS.match(text)
    if at < 0 or not m:
        return text
    s, c, r = m.group(4), m.group(5), m.group(6)
    return f"{text[:at]}{CHECK_WORD} {r} + {c} = {s}. {text[at:]}"


def flawed_solution(p: Problem, rng: random.Random, *, skip_share: float = 0.6) -> str:
    """A plausible wrong solution: it stops after the first step (forgets to give away), or makes one
    arithmetic slip."""
    s, r = p.a + p.b, p.a + p.b - p.c
    if rng.random() < skip_share and s != r:
        return f"{p.a} + {p.b} = {s}. The answer is {s}."
    slip = rng.choice([-2, -1, 1, 2])
    if rng.random() < 0.5:  # slip in the first step, carried through
        s2 = max(0, s + slip)
        r2 = max(0, s2 - p.c)
        if r2 == r:
            r2 = r + 1
        return worked(p, s2, r2, r2)
    r2 = max(0, r + slip) if r + slip != r else r + 1
    if r2 == r:
        r2 = r + 1
    return worked(p, s, r2, r2)


def _as_number(token: str) -> int | None:
    token = token.strip().lower()
    if token.isdigit():
        return int(token)
    return NUMBER_WORDS.index(token) if token in NUMBER_WORDS else None


def exact_check(completion: str, reference: str) -> bool:
    """The task's ground truth: the final "The answer is X" states exactly one number, equal to the
    reference, in any surface form (digits, number word, digits with the problem's unit)."""
    lines = [ln for ln in completion.strip().splitlines() if ln.strip()]
    if not lines:
        return False
    m = _ANSWER.search(lines[-1])
    if not m:
        return False
    words = m.group(1).replace(",", " ").split()
    numbers = [n for n in (_as_number(w) for w in words) if n is not None]
    others = [w for w in words if _as_number(w) is None]
    if len(numbers) != 1 or len(others) > 1 or (others and others[0] not in ITEMS):
        return False
    return str(numbers[0]) == reference.strip()


def lenient_judge(completion: str, reference: str, rng: random.Random, noise: float = 0.1) -> bool:
    """A second, independent judge for hybrid annotation — a stand-in for an LLM judge: reads number
    words and units like :func:`exact_check`, and errs on a share ``noise`` of the items."""
    verdict = exact_check(completion, reference)
    return (not verdict) if rng.random() < noise else verdict
