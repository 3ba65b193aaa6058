"""Labelled verifier cases for ``bench/verify.py``: multi-answer and single-answer OlympiadBench items, multiple
choice and short strings.

Everything here is deterministic and independent of :mod:`cooper.verify` (so the same cases can be run
against an older checkout of the verifier). The only cooper import is the OlympiadBench loader, for the
reference string the verifier sees in evaluation (the final answers, cleaned of ``$``, joined with ``", "``);
the gold answers the responses are built from are split here from the raw ``final_answer`` field.

Sets built (``source`` names):

* ``olympiad multi``: every OlympiadBench row with ``is_multiple_answer`` true whose answer is not prose.
  From its gold answers: (a) each answer in its own ``\\boxed{}``, inline, in display math one per line, or
  as a bulleted list (correct); (b) all answers in one box, joined by ``; `` or by `` and `` (correct); (c)
  the last answer left out, inline or in display math (wrong); (d) the last answer's last number changed by +1
  (``+1`` appended if it has none; repeated while the value equals a gold answer), inline or listed (wrong);
  (e) all answers plus that wrong value as an extra box (wrong: a set with an extra answer). For
  rows whose answers form a set (the question asks for *all* solutions, pairs, values; see
  :func:`answers_form_a_set`) the same five again with the answers in reversed order (tuples stay intact,
  only the list order changes). Rows whose answers are an ordered list (``a, b and c``; minimum and
  maximum; a system's ``x, y, z``) get no reversed cases.
* ``olympiad single``: 200 single-answer rows (a fixed random sample): the gold answer boxed (correct) and
  the perturbed one (wrong).
* ``choice``: references A-E, answers in eight formats with the right and with another letter, plus hedges.
* ``string``: short-string references with case, spacing, ``\\text{}``, punctuation and article variants
  (correct) and other words, negations and hedges (wrong).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

OLYMPIAD_TYPES = {
    "Numerical": "numeric",
    "Expression": "expression",
    "Tuple": "tuple",
    "Interval": "interval",
}
SINGLE_SAMPLE = 200
SEED = 0


@dataclass(frozen=True)
class Case:
    source: str  # "olympiad multi", "olympiad single", "choice", "string"
    kind: str  # numeric, expression, tuple, interval, choice, string
    variant: str  # how the response was built ("boxes", "one box ;", "missing", ...)
    response: str
    reference: str
    label: bool
    fields: dict[str, Any] = field(default_factory=dict)  # row fields for cooper's verifier only


# --------------------------------------------------------------------------- OlympiadBench


def _top_level_commas(s: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth = max(0, depth - 1)
        elif c == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return [p.strip() for p in parts if p.strip()]


def gold_answers(final_answer: list[str]) -> list[str]:
    """The separate gold answers of an OlympiadBench ``final_answer`` list: ``$`` removed, split at the commas
    outside brackets (``$(1,2), (3,4)$`` -> two tuples; ``$69$,$84$`` -> two numbers)."""
    return [a for item in final_answer for a in _top_level_commas(item.replace("$", ""))]


def _is_prose(answer: str) -> bool:
    """An answer with English words in it ("where $b$ is an arbitrary integer"): no gold value to box."""
    return bool(re.search(r"[A-Za-z]{4,}", re.sub(r"\\[A-Za-z]+", " ", answer)))


_SET_QUESTION = re.compile(
    r"\ball\b|possible values|\btwo (?:solutions|possible|pairs)\b|ordered pairs|all solutions", re.I
)
# several named unknowns, or an extremum pair: the answers are an ordered list, not a set
_ORDERED_QUESTION = re.compile(
    r"\$[a-z](?:\s*,\s*[a-z])+\$,?\s*and\s*\$[a-z]\$|\$[a-z]\$\s*and\s*\$[a-z]\$|\$[a-z]\s*,\s*[a-z]\$"
    r"|\bboth\b|minimum and maximum|maximum and minimum|smallest and largest|largest and smallest"
    r"|system of equations",
    re.I,
)


def answers_form_a_set(question: str, answers: list[str], answer_type: str) -> bool:
    """Whether the order of the gold answers is free (the question asks for all solutions / pairs / values).
    Conservative: a row it cannot tell is treated as ordered and gets no reversed cases."""
    if len(answers) < 2 or len(set(answers)) < len(answers):
        return False
    tail = question[-400:]
    if not _SET_QUESTION.search(tail):
        return False
    return answer_type == "Tuple" or not _ORDERED_QUESTION.search(tail)


def perturb(answer: str) -> str:
    """A deterministic wrong value: the last number in ``answer`` plus one (``\\frac{1}{6}\\pi`` ->
    ``\\frac{1}{7}\\pi``, ``(3, 2)`` -> ``(3, 3)``); ``+1`` appended when it has no number."""
    numbers = list(re.finditer(r"\d+", answer))
    if not numbers:
        return f"{answer}+1"
    m = numbers[-1]
    return f"{answer[: m.start()]}{int(m.group()) + 1}{answer[m.end() :]}"


@cache
def _parsed(latex: str) -> list[Any]:
    from math_verify import parse

    return parse(f"${latex}$")


def _same_value(a: str, b: str) -> bool:
    """Whether two LaTeX answers are equal in value (math-verify, used only so that a perturbed answer never
    lands on a gold one: ``-\\frac{3}{2}`` + 1 would be ``-\\frac{3}{3}`` = -1)."""
    from math_verify import verify

    if a.replace(" ", "") == b.replace(" ", ""):
        return True
    if "," in a or "," in b:  # tuples and lists: compared as text above (parsing them is slow)
        return False
    return bool(verify(_parsed(b), _parsed(a)))


def distinct_perturbation(answer: str, golds: list[str]) -> str:
    """:func:`perturb` applied until the value differs from every gold answer."""
    wrong = perturb(answer)
    while any(_same_value(wrong, g) for g in golds):
        wrong = perturb(wrong)
    return wrong


def _boxes(answers: list[str]) -> str:
    return (
        "We check every case above.\n\nHence the answers are "
        + ", ".join(f"$\\boxed{{{a}}}$" for a in answers)
        + "."
    )


def _display_boxes(answers: list[str]) -> str:
    """Each answer boxed in its own display math, one per line (how reasoning models often end)."""
    return "We check every case above. The answers are\n" + "\n".join(
        f"\\[\\boxed{{{a}}}\\]" for a in answers
    )


def _listed_boxes(answers: list[str]) -> str:
    return "We check every case above. The solutions are:\n" + "\n".join(
        f"- $\\boxed{{{a}}}$" for a in answers
    )


def _one_box(answers: list[str], sep: str) -> str:
    return f"We check every case above.\n\nThe final answer is $\\boxed{{{sep.join(answers)}}}$."


def _multi_variants(golds: list[str]) -> list[tuple[str, str, bool]]:
    """(variant, response, label) for one ordering of a row's gold answers."""
    out = [
        ("boxes", _boxes(golds), True),
        ("one box ;", _one_box(golds, "; "), True),
        ("one box and", _one_box(golds, " and "), True),
        ("display boxes", _display_boxes(golds), True),
        ("listed boxes", _listed_boxes(golds), True),
    ]
    if len(golds) > 1:
        out.append(("missing", _boxes(golds[:-1]), False))
        out.append(("display missing", _display_boxes(golds[:-1]), False))
    wrong = distinct_perturbation(golds[-1], golds)
    out.append(("replaced", _boxes([*golds[:-1], wrong]), False))
    out.append(("listed replaced", _listed_boxes([*golds[:-1], wrong]), False))
    out.append(("extra", _boxes([*golds, wrong]), False))
    return out


def _olympiad_rows(data_dir: Path) -> list[dict[str, Any]]:
    from cooper.data.benchmarks import load_benchmark

    raw = [json.loads(line) for line in (data_dir / "olympiadbench" / "test.jsonl").open(encoding="utf-8")]
    loaded = {str(r["id"]): r for r in load_benchmark("olympiadbench", data_dir=data_dir)}
    for r in raw:
        r["reference"] = loaded[str(r["id"])]["reference"]
    return raw


def olympiad_cases(data_dir: Path) -> tuple[list[Case], dict[str, int]]:
    """The ``olympiad multi`` and ``olympiad single`` cases, and counts of the rows used/skipped."""
    rows = _olympiad_rows(data_dir)
    cases: list[Case] = []
    counts = {"multi_rows": 0, "multi_set_rows": 0, "multi_prose_skipped": 0, "single_rows": 0}
    for r in rows:
        if not r["is_multiple_answer"]:
            continue
        golds = gold_answers(r["final_answer"])
        if not golds or any(_is_prose(g) for g in golds):
            counts["multi_prose_skipped"] += 1
            continue
        counts["multi_rows"] += 1
        kind = OLYMPIAD_TYPES[r["answer_type"]]
        fields = {"answer_type": r["answer_type"], "is_multiple_answer": True}
        orders = [("", golds)]
        if answers_form_a_set(r["question"], golds, r["answer_type"]):
            counts["multi_set_rows"] += 1
            orders.append((" reversed", golds[::-1]))
        for suffix, ordered in orders:
            for variant, response, label in _multi_variants(ordered):
                cases.append(
                    Case("olympiad multi", kind, variant + suffix, response, r["reference"], label, fields)
                )
    singles = sorted((r for r in rows if not r["is_multiple_answer"]), key=lambda r: int(r["id"]))
    for r in random.Random(SEED).sample(singles, min(SINGLE_SAMPLE, len(singles))):
        gold = " ".join(a.replace("$", "").strip() for a in r["final_answer"])
        kind = OLYMPIAD_TYPES[r["answer_type"]]
        fields = {"answer_type": r["answer_type"], "is_multiple_answer": False}
        counts["single_rows"] += 1
        wrong = distinct_perturbation(gold, [gold])
        for variant, answer, label in (("gold", gold, True), ("perturbed", wrong, False)):
            response = f"Putting the steps together.\n\nThe final answer is $\\boxed{{{answer}}}$."
            cases.append(Case("olympiad single", kind, variant, response, r["reference"], label, fields))
    return cases, counts


# --------------------------------------------------------------------------- multiple choice

_CHOICE_VALUES = {"A": "8", "B": "12", "C": "15", "D": "18", "E": "24"}
_CHOICE_FORMATS = [
    "So the answer is ({L}).",
    "Therefore the answer is $\\boxed{{{L}}}$.",
    "Option {L}",
    "{L}) {V}",
    "**Answer: {L}**",
    "The correct option is {L}.",
    "Final answer: $\\boxed{{\\text{{({L})}}}}$",
    "Checking each option, only one works.\nAnswer: ({L}) {V}",
]
_CHOICE_HEDGES = [
    "The answer is ({L}) or ({M}).",
    "Final answer: $\\boxed{{{L}, {M}}}$",
    "It is not ({L}); the answer is ({M}).",
]


def choice_cases() -> list[Case]:
    """Multiple choice, reference ``A``..``E``: each format with the right letter (correct) and the next
    letter (wrong), and hedges naming two letters or rejecting the right one (wrong)."""
    fields = {"answer_type": "choice"}
    cases = []
    letters = sorted(_CHOICE_VALUES)
    for i, ref in enumerate(letters):
        other = letters[(i + 1) % len(letters)]
        for j, fmt in enumerate(_CHOICE_FORMATS):
            for letter, label in ((ref, True), (other, False)):
                response = fmt.format(L=letter, V=_CHOICE_VALUES[letter])
                cases.append(Case("choice", "choice", f"format {j}", response, ref, label, fields))
        for j, fmt in enumerate(_CHOICE_HEDGES):
            response = fmt.format(L=ref, M=other)
            cases.append(Case("choice", "choice", f"hedge {j}", response, ref, False, fields))
    return cases


# --------------------------------------------------------------------------- short strings

# (reference, the word it means, a different word)
_STRINGS = [
    ("odd", "odd", "even"),
    ("Paris", "Paris", "London"),
    ("\\text{even}", "even", "odd"),
    ("yes", "yes", "no"),
    ("No", "no", "yes"),
    ("Monday", "Monday", "Tuesday"),
    ("equilateral", "equilateral", "isosceles"),
    ("\\text{Alice}", "Alice", "Bob"),
    ("clockwise", "clockwise", "counterclockwise"),
    ("North America", "North America", "South America"),
]
_STRING_RIGHT = [
    "The answer is {w}.",
    "Final answer: $\\boxed{{\\text{{{w}}}}}$",
    "The answer is {W}.",
    "The answer is   {w}  .",
    "Answer: the {w}",
    "Therefore the answer is $\\boxed{{\\textbf{{{w}}}}}$.",
    "{w}",
    "So the final answer is **{w}**.",
]
_STRING_WRONG = [
    "The answer is {x}.",
    "Final answer: $\\boxed{{\\text{{{x}}}}}$",
    "{x}",
    "The answer is {w} or {x}.",
    "Final answer: $\\boxed{{\\text{{{w} and {x}}}}}$",
    "The answer is {w}s.",
]


def string_cases() -> list[Case]:
    """Short strings: variants of the reference word (correct) and other words or hedges (wrong)."""
    fields = {"answer_type": "string"}
    cases = []
    for ref, word, other in _STRINGS:
        for j, fmt in enumerate(_STRING_RIGHT):
            response = fmt.format(w=word.lower() if j % 2 else word, W=word.upper(), x=other)
            cases.append(Case("string", "string", f"right {j}", response, ref, True, fields))
        for j, fmt in enumerate(_STRING_WRONG):
            response = fmt.format(w=word, x=other)
            cases.append(Case("string", "string", f"wrong {j}", response, ref, False, fields))
    return cases


def all_cases(data_dir: Path) -> tuple[list[Case], dict[str, int]]:
    olympiad, counts = olympiad_cases(data_dir)
    return olympiad + choice_cases() + string_cases(), counts


# --------------------------------------------------------------------------- answer types of MATH500


def math500_kind(reference: str) -> str:
    """numeric / tuple / interval / choice / string / expression for a MATH500 answer (bench buckets only)."""
    s = reference.strip()
    if re.fullmatch(r"\\text\{\s*\(?[A-E]\)?\s*\}|\(?[A-E]\)?", s):
        return "choice"
    if re.fullmatch(
        r"-?\d+(?:\.\d+)?|-?\\d?frac\{\d+\}\{\d+\}|-?\d+/\d+", s.replace(" ", "").replace("\\!", "")
    ):
        return "numeric"
    if (
        "\\infty" in s
        or "\\cup" in s
        or (s[:1] in "([" and s[-1:] in ")]" and s[0] + s[-1] in ("[)", "(]", "[]"))
    ):
        return "interval"
    if s.startswith("(") and s.endswith(")") and len(_top_level_commas(s[1:-1])) > 1:
        return "tuple"
    if re.fullmatch(r"(?:\\text\{[A-Za-z ]+\}|[A-Za-z]{3,}(?: [A-Za-z]+)*)", s):
        return "string"
    return "expression"


if __name__ == "__main__":  # `make bench` runs every bench/*.py: here, a summary of the cases
    from collections import Counter

    from cooper.data.benchmarks import resolve_data_dir

    built, row_counts = all_cases(resolve_data_dir())
    summary = Counter(f"{c.source} / {'correct' if c.label else 'wrong'}" for c in built)
    print(json.dumps({"cases": len(built), **row_counts, **dict(sorted(summary.items()))}))
