"""The rule-based verifier: is a free-form completion's final answer equal to the reference?

Cooper trusts this verifier when it says "correct": those completions become the positives the reward
model is trained on. So a false "correct" is the costly error, and every rule here leans to precision:

* the final answer is taken from the *last* explicit answer marker (``\\boxed{}``, ``#### N``,
  "the answer is …", ``A: N``), so an unboxed self-correction ("12 … no, it is 15") yields 15;
* a bare last number is used only when the reference itself is a plain number;
* an answer that looks like code, is absurdly long, or nests too deep is refused, never evaluated;
* equivalence is decided by math-verify (LaTeX and expression parsing, sympy comparison), after a
  few normalisations it gets wrong (``1e3``, ``1\\,000``, thousands separators).

Public API: :func:`is_correct`, :func:`is_correct_batch`, :func:`extract_answer`, :func:`explain`.
The batch functions run the comparison in a pool of worker *processes* with a per-item deadline (see
:mod:`cooper.verify.pool`): math-verify's own timeouts rely on ``signal.alarm``, which fails off the main
thread, so these functions work the same from any thread, inside asyncio code and in worker processes.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
# Only the tail of a completion is searched for its final answer (where the answer lives); this also
# bounds the work one hostile megabyte string can cause.
MAX_RESPONSE_CHARS = 100_000
MAX_ANSWER_CHARS = 1_000
MAX_BRACE_DEPTH = 32
MAX_EXPONENT_NESTING = 2

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_HASHES = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS = re.compile(
    r"\b(?:the|final|my)\s+(?:final\s+)?answer\s*(?:is|:|=|would\s+be|will\s+be)\s*:?\s*(?:\n\s*)?([^\n]+)"
    r"|^\s*(?:final\s+)?answer\s*:\s*([^\n]+)",
    re.IGNORECASE | re.MULTILINE,
)
# "the answer is correct / as follows / below": a comment on an answer, not an answer.
_NOT_AN_ANSWER = re.compile(
    r"(?:correct|incorrect|right|wrong|as\b|below|above|given|shown|not\b|that\b|this\b|indeed|clearly)",
    re.IGNORECASE,
)
_A_COLON = re.compile(r"(?:^|\n)\s*A:\s*([^\n]+)")
_NUMBER = re.compile(r"(?<![\w.])-?\$?\d[\d,]*(?:\.\d+)?(?:[eE][+-]?\d{1,3})?(?![\w])")
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?|-?\d+/\d+|-?\.\d+")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SCI = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?)[eE]([+-]?\d{1,3})(?![\w.])")
_THIN_SPACE_THOUSANDS = re.compile(r"(?<=\d)\\[,;: ](?=\d{3}\b)")
_CHOICE = re.compile(r"^\(?([A-Ea-e])\)?$")
_CODE_LIKE = re.compile(r"__|\bimport\b|\blambda\b|\beval\b|\bexec\b|\bos\.|\bsys\.|\w\.\w+\(|;")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mbox|textnormal|operatorname)\s*\{([^{}]*)\}")


def _boxed_spans(text: str) -> list[str]:
    """Contents of every balanced ``\\boxed{...}`` / ``\\fbox{...}`` in ``text``, in order."""
    out: list[str] = []
    for m in _BOXED.finditer(text):
        depth, start = 1, m.end()
        i = start
        while i < len(text) and depth:
            c = text[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            i += 1
        if depth == 0:
            out.append(text[start : i - 1])
    return out


def _strip_sentence_end(s: str, chars: str = ".,;!?:") -> str:
    """'The answer is 3.5.' -> '3.5' (trailing punctuation of prose; a factorial '!' only if asked)."""
    s = s.strip()
    while s and s[-1] in chars:
        s = s[:-1].rstrip()
    return s


def _clip_answer_phrase(s: str) -> str:
    """'$42$ dollars, since ...' -> '$42$ dollars' (the first clause of an 'answer is' phrase)."""
    s = s.strip()
    if s.startswith("$") and s.count("$") >= 2:
        return s[: s.index("$", 1) + 1]
    boxed = _boxed_spans(s)
    if boxed:
        return boxed[-1]
    # End at a sentence break that is not a decimal point.
    m = re.search(r"(?<!\d)\.(?!\d)|\. |;|\bbecause\b|\bsince\b", s)
    return _strip_sentence_end(s[: m.start()] if m else s)


def _marker_candidates(text: str) -> list[tuple[int, str]]:
    """(position, answer string) for every explicit final-answer marker in ``text``."""
    found: list[tuple[int, str]] = []
    for m in _BOXED.finditer(text):
        spans = _boxed_spans(text[m.start() :])
        if spans:
            found.append((m.start(), spans[0]))
    found += [(m.start(), _strip_sentence_end(m.group(1), ".,;")) for m in _HASHES.finditer(text)]
    for m in _ANSWER_IS.finditer(text):
        phrase = m.group(1) or m.group(2)
        if not _NOT_AN_ANSWER.match(phrase.lstrip(" $")):
            found.append((m.start(), _clip_answer_phrase(phrase)))
    found += [(m.start(), _strip_sentence_end(m.group(1), ".,;")) for m in _A_COLON.finditer(text)]
    return [(pos, ans) for pos, ans in found if ans]


def extract_answer(text: str, *, last_number: bool = True) -> str | None:
    """The final answer of a free-form completion, as a string, or None if it states none.

    The last explicit marker wins: ``\\boxed{}`` (the last one), "the (final) answer is …", ``#### N``,
    ``A: N``. Without any marker and with ``last_number=True``, the last number in the text.
    """
    if not isinstance(text, str) or not text:
        return None
    text = text[-MAX_RESPONSE_CHARS:].replace("\x00", "")
    text = _THIN_SPACE_THOUSANDS.sub("", text)
    found = _marker_candidates(text)
    if found:
        answer = max(found, key=lambda pa: pa[0])[1]
        # "The answer is \boxed{5}" and "the answer is: $5$" both mean 5.
        inner = _boxed_spans(answer)
        return _meaningful((inner[-1] if inner else answer).strip())
    if _is_bare_answer(text):  # the whole completion is just an expression: "\frac{1}{2}", "(1, 2]"
        return _meaningful(text.strip())
    if last_number and not _BOXED.search(text):  # an unclosed \boxed{ is a truncated answer, not a guess
        numbers = _NUMBER.findall(text)
        if numbers:
            return numbers[-1].replace("$", "").rstrip(",")
    return None


def _meaningful(answer: str) -> str | None:
    """An answer needs at least one letter, digit or LaTeX symbol: ``".."`` or ``"$"`` states nothing."""
    return answer if re.search(r"[0-9A-Za-z\\]|[^\x00-\x7f]", answer) else None


def _is_bare_answer(text: str) -> bool:
    """A short single line with no prose: one word, or math whose only words are LaTeX commands/text."""
    s = text.strip()
    if not s or len(s) > 200 or "\n" in s or _BOXED.search(s):
        return False
    if re.fullmatch(r"[A-Za-z]+|-?[\d.,]+\s*[A-Za-z]+", s):  # "Monday", "5 Robins", "13.45 years"
        return True
    math = re.sub(
        r"\\(?:text|mbox|mathrm|textbf)\s*\{[^{}]*\}|\\(?:begin|end)\s*\{\w+\*?\}|\\[A-Za-z]+|\band\b", " ", s
    )
    # a word of 3+ letters, or a short function word ("it is 12 or 13"), means prose or a hedge
    return not re.search(r"[A-Za-z]{3,}|\b(?:is|it|or|so|we|be|to|of|if|in|on|at|by|no)\b", math, re.I)


def _strip_math_delims(s: str) -> str:
    s = s.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
            s = s[len(left) : len(s) - len(right)].strip()
    return s


def normalize_answer(s: str) -> str:
    """Surface normalisations math-verify gets wrong; the result is still LaTeX/plain text."""
    s = _strip_math_delims(s.strip())
    boxed = _boxed_spans(s)
    if boxed and s.lstrip().startswith(("\\boxed", "\\fbox")):
        s = boxed[-1].strip()
    if s.startswith("####"):
        s = s[4:].strip()
    s = s.replace("\\!", "").replace("{,}", ",").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _THIN_SPACE_THOUSANDS.sub("", s)  # 1\,000 -> 1000 (math-verify reads 1*0)
    s = re.sub(r"^\\\$\s*|^\$\s*(?=\d)", "", s)  # leading currency sign
    if _THOUSANDS.fullmatch(s.replace(" ", "")):
        s = s.replace(",", "").replace(" ", "")
    s = _SCI.sub(lambda m: _sci_to_decimal(m.group(1), m.group(2)), s)
    return _strip_sentence_end(s, ".,;")


def _sci_to_decimal(mantissa: str, exponent: str) -> str:
    try:
        return format(Decimal(mantissa).scaleb(int(exponent)).normalize(), "f")
    except (InvalidOperation, ValueError):
        return f"{mantissa}e{exponent}"


def _plain_text(s: str) -> str:
    """Lower-case, unwrapped, punctuation-free form for text and multiple-choice answers."""
    prev = None
    while prev != s:
        prev, s = s, _TEXT_WRAP.sub(r"\1", s)
    s = _strip_math_delims(s)
    return re.sub(r"[\s.,;:!?'\"`{}\\]+", " ", s).strip().lower()


def is_plain_number(reference: str) -> bool:
    """True for references like ``18``, ``-3.5``, ``1,000``, ``3/4`` (last-number fallback allowed)."""
    ref = normalize_answer(reference)
    return bool(_PLAIN_NUMBER.fullmatch(ref))


def _exponent_nesting(s: str) -> int:
    """How deep ``^`` exponents nest (``10^{10^{10}}`` -> 2): deep towers make sympy hang in C code."""
    depth = best = 0
    stack: list[bool] = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "^":
            if i + 1 < len(s) and s[i + 1] == "{":
                depth += 1
                best = max(best, depth)
                stack.append(True)
                i += 2
                continue
            best = max(best, depth + 1)
        elif c == "{":
            stack.append(False)
        elif c == "}" and stack and stack.pop():
            depth -= 1
        i += 1
    return best + s.count("**")


def refusal_reason(answer: str) -> str | None:
    """Why an extracted answer is refused without evaluation (hostile or absurd), or None."""
    if len(answer) > MAX_ANSWER_CHARS:
        return f"answer longer than {MAX_ANSWER_CHARS} characters"
    depth = best = 0
    for c in answer:
        depth += (c in "{([") - (c in "})]")
        best = max(best, depth)
    if best > MAX_BRACE_DEPTH:
        return f"brackets nested deeper than {MAX_BRACE_DEPTH}"
    if _CODE_LIKE.search(answer):
        return "answer looks like code; it is never evaluated"
    if _exponent_nesting(answer) > MAX_EXPONENT_NESTING:
        return "exponent tower too deep to evaluate safely"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in answer):
        return "invalid unicode (lone surrogate)"
    return None


_NUMBER_THEN_WORDS = re.compile(r"\$?(-?\d[\d,]*(?:\.\d+)?(?:/\d+)?)\s+([A-Za-z]+(?:\s+[A-Za-z]+){0,2})\.?")
# words that change a number's value or make it a hedge: never dropped as a unit
_MATH_WORDS = frozenset(
    [
        "pi",
        "e",
        "i",
        "inf",
        "infinity",
        "sqrt",
        "root",
        "log",
        "ln",
        "sin",
        "cos",
        "tan",
        "exp",
        "times",
        "over",
        "divided",
        "plus",
        "minus",
        "and",
        "or",
        "to",
        "percent",
        "squared",
        "cubed",
        "thousand",
        "thousands",
        "million",
        "millions",
        "billion",
        "billions",
        "hundred",
        "hundreds",
        "dozen",
        "dozens",
        "half",
        "halves",
        "third",
        "thirds",
        "quarter",
        "quarters",
    ]
)


def drop_unit_words(answer: str) -> str:
    """``"18 eggs"`` -> ``"18"``: up to three plain words after a number are its unit.

    Without this, math-verify reads the words as LaTeX symbols (``3 pens`` -> ``3*E*n*p*s``) and a correct
    GSM8K-style answer fails, or passes, depending on the letters of its unit. Words that change the value
    or hedge (:data:`_MATH_WORDS`: ``2 pi``, ``3 or``, ``5 thousand``) are kept, so those answers still fail.
    """
    m = _NUMBER_THEN_WORDS.fullmatch(answer.strip())
    if not m or any(w.lower() in _MATH_WORDS for w in m.group(2).split()):
        return answer
    return m.group(1)


@lru_cache(maxsize=4096)
def _parse_cached(latex: str) -> tuple[Any, ...]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    wrapped = latex if "$" in latex or "\\(" in latex else f"${latex}$"
    parsed = parse(wrapped, extraction_config=configs, parsing_timeout=None)
    if not parsed:
        parsed = parse(latex, extraction_config=configs, parsing_timeout=None)
    return tuple(parsed)


def judge(response: str, reference: str) -> dict[str, Any]:
    """The verdict with its evidence, computed in this process with no timeout of its own.

    Returns ``{"correct", "extracted_answer", "reference_answer", "note"}``. Prefer
    :func:`is_correct_batch` / :func:`explain`, which run this under a deadline in a worker process.
    """
    from math_verify import verify

    if not isinstance(response, str) or not isinstance(reference, str):
        return _verdict(False, None, None, "response and reference must be strings")
    ref = normalize_answer(reference.replace("\x00", ""))
    if not ref:
        return _verdict(False, None, ref, "empty reference")
    if reason := refusal_reason(ref):
        return _verdict(False, None, ref, f"reference refused: {reason}")
    numeric_ref = bool(_PLAIN_NUMBER.fullmatch(ref))  # ref is normalised
    raw = extract_answer(response, last_number=numeric_ref)
    if raw is None:
        return _verdict(False, None, ref, "no final answer found")
    if reason := refusal_reason(raw):
        return _verdict(False, raw[:200], ref, reason)
    ans = normalize_answer(drop_unit_words(raw) if numeric_ref else raw)
    if not ans:
        return _verdict(False, raw, ref, "empty answer")

    choice = _CHOICE.fullmatch(_plain_text(ref).upper())
    if choice:  # multiple choice: the answer must name the same letter and nothing else
        got = _CHOICE.fullmatch(_plain_text(ans).upper())
        return _verdict(bool(got and got.group(1) == choice.group(1)), ans, ref, "multiple choice")
    if not re.search(r"\d", ref) and _plain_text(ref) and _plain_text(ref) == _plain_text(ans):
        return _verdict(True, ans, ref, "text match")

    gold = _parse_cached(ref)
    pred = _parse_cached(ans)
    if not gold:
        return _verdict(False, ans, ref, "reference could not be parsed")
    if not pred:
        return _verdict(False, ans, ref, "answer could not be parsed")
    ok = bool(verify(list(gold), list(pred), timeout_seconds=None))
    return _verdict(ok, ans, ref, None)


def _verdict(correct: bool, extracted: str | None, reference: str | None, note: str | None) -> dict[str, Any]:
    return {"correct": correct, "extracted_answer": extracted, "reference_answer": reference, "note": note}
