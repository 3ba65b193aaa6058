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
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from cooper.verify.answers import (
    answer_type,
    choice_letter,
    normalize_type,
    plain_words,
    split_answers,
    strip_math_delims,
    top_level_split,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
# Only the tail of a completion is searched for its final answer (where the answer lives); this also
# bounds the work one hostile megabyte string can cause.
MAX_RESPONSE_CHARS = 100_000
MAX_ANSWER_CHARS = 1_000
MAX_BRACE_DEPTH = 32
MAX_EXPONENT_NESTING = 2
MAX_SET_ITEMS = 32  # answers in one set; more is refused (bounded work per item)

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE = re.compile(r"[{}]")
_HASHES = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS = re.compile(
    r"\b(?:the|final|my)\s+(?:final\s+)?answers?\s*(?:is|are|:|=|would\s+be|will\s+be)\s*:?\s*(?:\n\s*)?([^\n]+)"
    r"|^\s*(?:final\s+)?answers?\s*:\s*([^\n]+)",
    re.IGNORECASE | re.MULTILINE,
)
# "the answer is correct / as follows / below": a comment on an answer, not an answer.
_NOT_AN_ANSWER = re.compile(
    r"(?:correct|incorrect|right|wrong|as\b|below|above|given|shown|not\b|that\b|this\b|indeed|clearly)",
    re.IGNORECASE,
)
_A_COLON = re.compile(r"(?:^|\n)\s*A:\s*([^\n]+)")
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?|-?\d+/\d+|-?\.\d+")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SCI = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?)[eE]([+-]?\d{1,3})(?![\w.])")
_THIN_SPACE_THOUSANDS = re.compile(r"(?<=\d)\\[,;: ](?=\d{3}\b)")
_CHOICE = re.compile(r"^\(?([A-Ea-e])\)?$")
# Code-like text is refused unevaluated. A ";" between answers is a list separator ("-12; -11"), so it is
# allowed outside brackets; inside one (an item after splitting) it still counts as code.
_CODE_LIKE = re.compile(r"__|\bimport\b|\blambda\b|\beval\b|\bexec\b|\bos\.|\bsys\.|\w\.\w+\(")
# "$a$, $b$ and $c$": a list of math spans joined by separators
_SPAN_LIST = re.compile(r"\$[^$]+\$(?:\s*(?:,|;|\band\b|\bor\b)\s*\$[^$]+\$)*")
# between two boxes of one answer set: separators, spacing, dollars, math delimiters (each box in its own
# "\\[ \\]"), list bullets ("- ", "2. " at a line start), "and"/"or", "x =" (the same list)
_BOX_GAP = re.compile(
    r"(?:[\s$,;.:]|\\(?:quad|qquad|,|;|\[|\]|\(|\)|text\s*\{\s*(?:and|or)\s*\})|\n\s*(?:[-*\u2022]|\d{1,2}[.)])(?=\s)"
    r"|\b(?:and|or)\b|[A-Za-z](?:_\{?\w+\}?)?\s*=)*"
)
# between two marked answers of one answer set ("The answer is $x=2$.\nThe answer is $x=6$."): nothing but
# spacing and separators
_MARK_GAP = re.compile(r"[\s$,;.:]*(?:\b(?:and|or)\b[\s$,;.:]*)?")
_MAX_BOX_GAP = 60
# a last sentence that negates, doubts or discusses states no result
_NOT_A_RESULT = re.compile(
    r"\b(?:not|no|never|cannot|can't|isn't|aren't|wasn't|neither|nor|wrong|incorrect|impossible|invalid|"
    r"unless|if|whether|maybe|perhaps|might|could|would|should|suppose|assume|try|method|approach)\b|\?",
    re.I,
)
# a last sentence that announces work still to do ("Let us now check 15", "So next we evaluate $f(3)$")
# ("check" and "verify" are not: a response may end on a check of its result, "Check: 9 * 2 = 18.")
_STILL_WORKING = re.compile(
    r"\b(?:let(?:'s|\s+us)?|consider(?:ing)?|remains?\s+to|evaluate|simplify|substitute|plug|examine|"
    r"next\s+we|continue|further|step)\b",
    re.I,
)
# a number after one of these words is a circumstance ("... lawns in 2 hours", "for 3 days"), not the result
_CIRCUMSTANCE = re.compile(
    r"\b(?:in|for|after|within|per|every|each|since|until|degree|step|case|part|page)\s*$", re.I
)
# a number ending a response, then up to three unit words and closing punctuation
_ENDS_ON_NUMBER = re.compile(
    r"(?:^|[\s=:(\[$])(-?\$?\d[\d,]*(?:\.\d+)?(?:[eE][+-]?\d{1,3})?)\$?((?:\s+[A-Za-z]+){0,3})[\s.!)*\]$]*$"
)
_CONCLUSION = re.compile(
    r"^\s*(?:therefore|thus|hence|so|finally|in conclusion|in summary|consequently)\b", re.I
)
# what may stand between a conclusion word and the span it concludes: nothing, "we get (that)", words
# ending on a verb of being ("the probability that Bianca wins is", "there are"), or a subject that the
# rest of the sentence calls the result ("the triple $(2,251,252)$ is the only solution")
_RESULT_BEFORE = re.compile(
    r"[\s,]*(?:(?:we|one)\s+(?:have|get|obtain|find|conclude|see)(?:\s+that)?|it\s+follows\s+that|"
    r"(?P<copula>[^$]{0,120}?\b(?:is|are|equals|equal\s+to|must\s+be))|"
    r"(?P<subject>(?:the|this|our)\s+[A-Za-z ]{0,40}))?[\s,:]*",
    re.I,
)
# what may follow it: closing punctuation, or "is (indeed) the (only) solution / smallest such value"
_RESULT_AFTER = re.compile(
    r"\s*(?P<claim>(?:is|are)\s+(?:indeed\s+)?(?:the|our)\s+(?:[A-Za-z]+\s+){0,3}?"
    r"(?:solutions?|answers?|results?|values?|range|set|number)(?:\s+set)?)?[\s.!]*",
    re.I,
)
# after a span that follows a verb of being, up to four words of its unit ("there are $11$ such triangles")
_UNIT_AFTER = re.compile(r"\s+(?!(?:is|are|was|were|equals)\b)[A-Za-z]+(?:\s+[A-Za-z]+){0,3}[\s.!]*", re.I)
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mbox|textnormal|operatorname)\s*\{([^{}]*)\}")


def _box_content(text: str, open_end: int) -> str | None:
    """The content of the box whose opening brace ends at ``open_end``, up to its balancing brace; None if it
    never closes. Read at most ``2 * MAX_ANSWER_CHARS`` far (a longer box comes back cut there, and
    :func:`refusal_reason` refuses it as too long), so a response of many boxes costs linear time."""
    depth, stop = 1, min(len(text), open_end + 2 * MAX_ANSWER_CHARS)
    for m in _BRACE.finditer(text, open_end, stop):
        depth += 1 if m.group() == "{" else -1
        if depth == 0:
            return text[open_end : m.start()]
    return text[open_end:stop] if stop < len(text) else None


def _boxed_spans(text: str) -> list[str]:
    """Contents of every balanced ``\\boxed{...}`` / ``\\fbox{...}`` in ``text``, in order."""
    found = (_box_content(text, m.end()) for m in _BOXED.finditer(text))
    return [c for c in found if c is not None]


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
        listed = _SPAN_LIST.match(s)
        return listed.group(0).strip().rstrip(",;") if listed else s[: s.index("$", 1) + 1]
    boxed = _boxed_spans(s)
    if boxed:
        return boxed[-1]
    # End at a sentence break that is not a decimal point.
    # ";" ends it only before prose: "-12; -11; -10" and "p=5,q=2;p=7,q=2" are one list
    m = re.search(r"(?<!\d)\.(?!\d)|\. |;(?=[^;]*(?<!\\)\b[A-Za-z]{3,})|\bbecause\b|\bsince\b", s)
    return _strip_sentence_end(s[: m.start()] if m else s)


def _marker_candidates(text: str) -> list[tuple[int, int, str]]:
    """(start, end, answer string) for every explicit final-answer marker in ``text``."""
    found: list[tuple[int, int, str]] = []
    for m in _BOXED.finditer(text):
        content = _box_content(text, m.end())
        if content is not None:
            found.append((m.start(), m.end() + len(content) + 1, content))
    found += [(m.start(), m.end(), _strip_sentence_end(m.group(1), ".,;")) for m in _HASHES.finditer(text)]
    for m in _ANSWER_IS.finditer(text):
        phrase = m.group(1) or m.group(2)
        if not _NOT_AN_ANSWER.match(phrase.lstrip(" $")):
            found.append((m.start(), m.end(), _clip_answer_phrase(phrase)))
    found += [(m.start(), m.end(), _strip_sentence_end(m.group(1), ".,;")) for m in _A_COLON.finditer(text)]
    return [(start, end, ans) for start, end, ans in found if ans]


def _final_marker_group(text: str, found: list[tuple[int, int, str]]) -> list[str]:
    """The answers of the marked statements that end ``text`` one after another ("The answer is $x=2$.
    The answer is $x=6$."): the last marker and those just before it, with only separators between them. A
    marker inside another (the box of "the answer is \\boxed{5}") is part of that one."""
    outer: list[tuple[int, int, str]] = []
    for c in sorted(found, key=lambda c: (c[0], -c[1])):  # by start; of two at one start, the longer first
        if not outer or c[1] > outer[-1][1]:  # not inside the one before (which reaches at least as far)
            outer.append(c)
    group = _trailing_run(text, outer, lambda gap: bool(_MARK_GAP.fullmatch(gap)))
    inner = [_boxed_spans(ans) for _, _, ans in group]
    return [
        a for a in ((b[-1] if b else ans).strip() for b, (_, _, ans) in zip(inner, group, strict=True)) if a
    ]


def extract_answers(text: str, *, last_number: bool = True) -> tuple[list[str], str]:
    """The final answer of a completion as the list of its stated answers, and the rule that found it.

    In order: the last explicit marker (``\\boxed{}``, "the (final) answer(s) is/are …", ``#### N``,
    ``A: N``), where several boxes close together at the end (``\\boxed{1} and \\boxed{2}``) form one answer
    set; a completion that is only an expression; a closing sentence ("Therefore $x \\geq 5$ …") with one
    math span; and, with ``last_number``, a number the response plainly ends on. ``([], "")`` if it states
    none: a number inside a negation or a discussion is never taken. Marked statements one after another at
    the end ("The answer is $x=2$. The answer is $x=6$.") also form one answer set.
    """
    if not isinstance(text, str) or not text:
        return [], ""
    text = text[-MAX_RESPONSE_CHARS:].replace("\x00", "")
    text = _THIN_SPACE_THOUSANDS.sub("", text)
    found = _marker_candidates(text)
    if found:
        pos, _, answer = max(found, key=lambda c: c[0])
        if text.startswith(("\\boxed", "\\fbox"), pos):
            group = _final_box_group(text, found)
            if len(group) > 1:
                answers = [a for a in (_meaningful(g.strip()) for g in group) if a]
                return answers, "boxed answers"
        if len(marked := _final_marker_group(text, found)) > 1:
            return [a for a in map(_meaningful, marked) if a], "marked answers"
        # "The answer is \\boxed{5}" and "the answer is: $5$" both mean 5.
        inner = _boxed_spans(answer)
        got = _meaningful((inner[-1] if inner else answer).strip())
        return ([got], "answer marker") if got else ([], "")
    if _is_bare_answer(text):  # the whole completion is just an expression: "\\frac{1}{2}", "(1, 2]"
        got = _meaningful(text.strip())
        return ([got], "bare answer") if got else ([], "")
    if _BOXED.search(text):  # an unclosed \\boxed{ is a truncated answer, never a guess
        return [], ""
    closing = _closing_math(text)
    if closing:
        return [closing], "closing sentence"
    if last_number:
        number = _final_number(text)
        if number:
            return [number], "final number"
    return [], ""


def extract_answer(text: str, *, last_number: bool = True) -> str | None:
    """The final answer of a free-form completion, as a string, or None if it states none (the last of the
    answers :func:`extract_answers` finds)."""
    answers, _ = extract_answers(text, last_number=last_number)
    return answers[-1] if answers else None


def _final_box_group(text: str, found: list[tuple[int, int, str]]) -> list[str]:
    """The contents of the boxes that end ``text``'s answer (the last of ``found`` is a box): that box and the
    boxes just before it, each separated from the next only by separators (``,`` ``;`` "and" "or" ``x =``
    ``$``, math delimiters, list bullets)."""
    boxes = sorted(c for c in found if text.startswith(("\\boxed", "\\fbox"), c[0]))
    group = _trailing_run(text, boxes, lambda gap: len(gap) <= _MAX_BOX_GAP and bool(_BOX_GAP.fullmatch(gap)))
    return [g[2] for g in group]


def _trailing_run(
    text: str, spans: list[tuple[int, int, str]], gap_ok: Callable[[str], bool]
) -> list[tuple[int, int, str]]:
    """The last of ``spans`` (sorted by start) and those just before it, each ending before the next begins
    with a gap of ``text`` that ``gap_ok`` accepts."""
    group = [spans[-1]]
    for prev in reversed(spans[:-1]):
        if prev[1] > group[0][0] or not gap_ok(text[prev[1] : group[0][0]]):  # nested, or too far apart
            break
        group.insert(0, prev)
    return group


def _last_sentence(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z])", last)
    return parts[-1] if parts else last


def _short_phrase(text: str) -> str | None:
    """A response that is only a short phrase ("North America", "**odd**"): the answer to a string question."""
    s = text.strip().strip("*_").strip()
    if not s or "\n" in s or len(s.split()) > 6 or _NOT_A_RESULT.search(s):
        return None
    return s


def _final_number(text: str) -> str | None:
    """The number a response plainly ends on as its result ("… so she pays 18 dollars."), else None: never in
    a sentence that negates, doubts or announces more work, nor after "in", "for", "step" ("in 2 hours")."""
    sentence = _last_sentence(text)
    if not sentence or _NOT_A_RESULT.search(sentence) or _STILL_WORKING.search(sentence):
        return None
    m = _ENDS_ON_NUMBER.search(sentence)
    if not m or _CIRCUMSTANCE.search(sentence[: m.start(1)].rstrip("$ ")):
        return None
    words = m.group(2).split()
    if any(w.lower() in _MATH_WORDS or w.lower() in ("is", "are", "was", "were", "be") for w in words):
        return None
    return m.group(1).replace("$", "").rstrip(",")


def _closing_math(text: str) -> str | None:
    """The one math span of a concluding last sentence that states it as the result: the sentence ends on it
    ("Therefore, $x = 5$.", "Thus the minimum is $5$.") or calls it the solution ("Therefore $x \\geq 5$ is
    the solution."). Never a span the sentence goes on from ("the value of $x$ is 5") or one it still works
    on ("Therefore we now check the case $x \\geq 5$.")."""
    sentence = _last_sentence(text)
    conclusion = _CONCLUSION.match(sentence)
    if not conclusion or _NOT_A_RESULT.search(sentence) or _STILL_WORKING.search(sentence):
        return None
    spans = list(re.finditer(r"\$([^$]+)\$", sentence))
    if len(spans) != 1:
        return None
    before = _RESULT_BEFORE.fullmatch(sentence[conclusion.end() : spans[0].start()])
    after = sentence[spans[0].end() :]
    if not before:
        return None
    claim = _RESULT_AFTER.fullmatch(after)
    stated = claim and (claim.group("claim") or not before.group("subject"))
    if not (stated or (before.group("copula") and _UNIT_AFTER.fullmatch(after))):
        return None
    return _meaningful(spans[0].group(1).strip())


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


def normalize_answer(s: str) -> str:
    """Surface normalisations math-verify gets wrong; the result is still LaTeX/plain text."""
    s = strip_math_delims(s.strip())
    boxed = _boxed_spans(s)
    if boxed and s.lstrip().startswith(("\\boxed", "\\fbox")):
        s = boxed[-1].strip()
    if s.startswith("####"):
        s = s[4:].strip()
    s = re.sub(r",\\!\s*", ",", s)  # 11,\\! 111 is LaTeX for the thousands separator of 11,111
    s = s.replace("\\!", "").replace("{,}", ",").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _THIN_SPACE_THOUSANDS.sub("", s)  # 1\,000 -> 1000 (math-verify reads 1*0)
    s = re.sub(r"^\\\$\s*|^\$\s*(?=\d)", "", s)  # leading currency sign
    if _THOUSANDS.fullmatch(s):  # "1,000"; never "32, 349", which is a list of two numbers
        s = s.replace(",", "")
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
    s = strip_math_delims(s)
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


def _semicolon_in_brackets(s: str) -> bool:
    """A ``;`` inside brackets: code (``f(a; b)``), never a separator between answers."""
    return any(";" in part for part in top_level_split(s, ",;"))


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
    if _CODE_LIKE.search(answer) or _semicolon_in_brackets(answer):
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


def judge(
    response: str, reference: str, *, answer_type: str | None = None, multiple: bool | None = None
) -> dict[str, Any]:
    """The verdict with its evidence, computed in this process with no timeout of its own.

    ``answer_type``: ``numeric``, ``expression``, ``choice`` or ``string`` (or a dataset's name for one, such
    as OlympiadBench's ``Numerical``); None infers it from the reference. ``multiple``: whether the reference
    lists several answers (OlympiadBench's ``is_multiple_answer``); None decides from its form. Several
    answers compare as a set: each reference answer must be matched, and no extra answer may be given.

    Returns ``{"correct", "extracted_answer", "reference_answer", "note", "answers", "references",
    "answer_type", "rule"}``. Prefer :func:`~cooper.verify.pool.is_correct_batch` /
    :func:`~cooper.verify.pool.explain`, which run this under a deadline in a worker process.
    """
    if not isinstance(response, str) or not isinstance(reference, str):
        return _verdict(False, None, None, "response and reference must be strings")
    ref = normalize_answer(reference.replace("\x00", ""))
    if not ref:
        return _verdict(False, None, ref, "empty reference")
    if reason := refusal_reason(ref):
        return _verdict(False, None, ref, f"reference refused: {reason}")
    refs = [ref] if multiple is False else [normalize_answer(r) for r in split_answers(reference)]
    refs = [r for r in refs if r] or [ref]
    kind = normalize_type(answer_type) or _infer_type(ref, refs)
    if kind == "choice":
        return _judge_choice(response, ref)
    numeric_ref = len(refs) == 1 and (kind == "numeric" or bool(_PLAIN_NUMBER.fullmatch(refs[0])))
    raws, rule = extract_answers(response, last_number=numeric_ref and len(refs) == 1)
    if not raws and kind == "string" and (short := _short_phrase(response)):
        raws, rule = [short], "bare answer"
    if not raws:
        return _verdict(False, None, ref, "no final answer found", refs=refs, kind=kind)
    for raw in raws:
        if reason := refusal_reason(raw):
            return _verdict(False, raw[:200], ref, reason, refs=refs, kind=kind, rule=rule)
    if kind == "string":
        return _judge_string(raws, ref, refs, rule)
    if numeric_ref:
        raws = [drop_unit_words(r) for r in raws]  # "1,200 people" -> "1,200" before any list is read
    ordered = len(set(refs)) < len(refs)  # a reference that repeats an answer is an ordered list
    if not ordered:
        raws = list(dict.fromkeys(raws))  # the same answer boxed twice is one answer
    answers = raws if multiple is False else [item for raw in raws for item in split_answers(raw)]
    answers = [a for a in (normalize_answer(drop_unit_words(a) if numeric_ref else a) for a in answers) if a]
    shown = ", ".join(answers)
    if not answers:
        return _verdict(False, ", ".join(raws), ref, "empty answer", refs=refs, kind=kind, rule=rule)
    if len(answers) == 1 and len(refs) == 1:
        ok, note = _equivalent(answers[0], refs[0])
        return _verdict(ok, answers[0], ref, note, answers=answers, refs=refs, kind=kind, rule=rule)
    if len(answers) > MAX_SET_ITEMS or len(refs) > MAX_SET_ITEMS:
        note = f"more than {MAX_SET_ITEMS} answers"
        return _verdict(False, shown, ref, note, answers=answers, refs=refs, kind=kind, rule=rule)
    ok = _match_lists(answers, refs) if ordered else _match_sets(answers, refs)
    note = (
        "answer set"
        if ok
        else f"answer set: {len(answers)} answer(s) do not match the {len(refs)} reference answer(s)"
    )
    return _verdict(ok, shown, ref, note, answers=answers, refs=refs, kind=kind, rule=rule)


def _infer_type(ref: str, refs: list[str]) -> str:
    """The answer type of a (normalised) reference: its own type when it is one answer; several answers are
    ``numeric`` when all are plain numbers, else ``expression``."""
    if len(refs) == 1:
        return answer_type(ref)
    return "numeric" if all(answer_type(r) == "numeric" for r in refs) else "expression"


def _equivalent(answer: str, reference: str) -> tuple[bool, str | None]:
    """Whether one answer equals one reference answer, and which rule said so ("text match" or "math-verify")."""
    from math_verify import verify

    if (
        not re.search(r"\d", reference)
        and _plain_text(reference)
        and _plain_text(reference) == _plain_text(answer)
    ):
        return True, "text match"
    gold = _parse_cached(reference)
    pred = _parse_cached(answer)
    if not gold:
        return False, "reference could not be parsed"
    if not pred:
        return False, "answer could not be parsed"
    return bool(verify(list(gold), list(pred), timeout_seconds=None)), "math-verify"


def _match_sets(answers: list[str], refs: list[str]) -> bool:
    """Sets compare unordered (a tuple is one item, compared ordered): every reference answer is given, and
    every given answer is one of the reference answers, so a missing or an extra wrong answer fails, while an
    answer restated in another form (``15\\frac{39}{40}`` or ``\\frac{639}{40}``) does not."""
    same = [[_equivalent(a, r)[0] for r in refs] for a in answers]
    return all(any(row[j] for row in same) for j in range(len(refs))) and all(any(row) for row in same)


def _match_lists(answers: list[str], refs: list[str]) -> bool:
    """A reference that repeats an answer (``16, 3, 1, 1``: the values of a, b, c, d) is an ordered list:
    the same number of answers, each equal to the reference answer in its place."""
    return len(answers) == len(refs) and all(_equivalent(a, r)[0] for a, r in zip(answers, refs, strict=True))


def _judge_choice(response: str, ref: str) -> dict[str, Any]:
    """Multiple choice: the response must name the reference's letter and no other."""
    want = choice_letter(ref)
    raws, rule = extract_answers(response, last_number=False)
    if not raws:
        tail = _last_sentence(response) if isinstance(response, str) else ""
        m = re.search(
            r"\b(?i:option|choice|answer)\s*(?:is\s*)?:?\s*\(?([A-E])\b\)?|\(([A-E])\)\s*[.!]?\s*$", tail
        )
        raws, rule = ([m.group(1) or m.group(2)], "choice in the last sentence") if m else ([], "")
    got = [choice_letter(r) for r in raws]
    named = {m for r in raws for m in re.findall(r"(?<![A-Za-z])\(?([A-E])\)?(?![A-Za-z])", r)}
    ok = len(got) == 1 and got[0] is not None and got[0] == want and named <= {want}  # "(A) or (B)" hedges
    shown = ", ".join(raws) if raws else None
    return _verdict(
        ok,
        shown,
        ref,
        "multiple choice",
        answers=[g or "?" for g in got],
        refs=[want or ref],
        kind="choice",
        rule=rule,
    )


def _judge_string(raws: list[str], ref: str, refs: list[str], rule: str) -> dict[str, Any]:
    """Short strings: equal after case, whitespace, ``\\text{}``, punctuation and articles are ignored."""
    answers = [plain_words(r) for r in raws]
    want = sorted(plain_words(r) for r in refs)
    ok = bool(want) and sorted(answers) == want
    return _verdict(
        ok, ", ".join(raws), ref, "text match", answers=answers, refs=want, kind="string", rule=rule
    )


def _verdict(
    correct: bool,
    extracted: str | None,
    reference: str | None,
    note: str | None,
    *,
    answers: list[str] | None = None,
    refs: list[str] | None = None,
    kind: str | None = None,
    rule: str = "",
) -> dict[str, Any]:
    """A verdict and its evidence: the extracted answer set, the normalised reference set, the answer type
    and the rule that found the answer (``cooper verify --json`` shows them)."""
    return {
        "correct": correct,
        "extracted_answer": extracted,
        "reference_answer": reference,
        "note": note,
        "answers": answers if answers is not None else ([extracted] if extracted else []),
        "references": refs if refs is not None else ([reference] if reference else []),
        "answer_type": kind,
        "rule": rule,
    }
