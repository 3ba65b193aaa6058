"""Answer sets and answer types: pure string functions, no math-verify.

A competition problem may have several answers (``x = 2`` and ``x = 6``; the pairs ``(2, 2), (6, 2)``).
:func:`split_answers` turns one answer string into its items: it splits at top-level separators (``,`` ``;``
"and" "or", outside any brackets), unwraps a set written as ``\\{...\\}``, reads ``x = 3`` as ``3`` and a
group of assignments (``p=5, q=2``) as the tuple ``(5, 2)``. Sets compare unordered, tuples ordered: a tuple
stays one item, compared as a whole.

:func:`answer_type` names the comparison an answer needs: ``numeric``, ``expression``, ``choice`` (a letter
A-E) or ``string`` (a short word or phrase).
"""

from __future__ import annotations

import re

ANSWER_TYPES = ("numeric", "expression", "choice", "string")
# OlympiadBench's answer_type and VerifyBench's names mapped to ours
TYPE_ALIASES = {
    "numerical": "numeric",
    "numeric": "numeric",
    "number": "numeric",
    "expression": "expression",
    "tuple": "expression",
    "interval": "expression",
    "equation": "expression",
    "multiple choice": "choice",
    "multiple_choice": "choice",
    "choice": "choice",
    "string": "string",
    "text": "string",
    "short text": "string",
}
_OPEN, _CLOSE = "([{", ")]}"
_WORD_SEPARATOR = re.compile(
    r"\s+(?:and|or)\s+|\s*,?\s*\\(?:text|mbox|mathrm)\s*\{\s*(?:and|or)\s*\}\s*", re.I
)
_ASSIGNMENT = re.compile(r"^\s*([A-Za-z](?:_\{?\w+\}?)?'?)\s*=\s*(?!=)(.+)$", re.S)
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SET = re.compile(r"^\\\{(.*)\\\}$", re.S)
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)
_CHOICE = re.compile(r"^\(?([A-E])\)?$")


def normalize_type(answer_type: str | None) -> str | None:
    """Our name for a dataset's answer type (``"Numerical"`` -> ``"numeric"``), or None if unknown."""
    if not answer_type or not isinstance(answer_type, str):
        return None
    return TYPE_ALIASES.get(answer_type.strip().lower())


def top_level_split(s: str, separators: str = ",;") -> list[str]:
    """``s`` split at the ``separators`` that sit outside every bracket (``(1, 2), (3, 4)`` -> two parts)."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s) and s[i + 1] in "{}":
            depth += 1 if s[i + 1] == "{" else -1
            i += 2
            continue
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth = max(0, depth - 1)
        elif c in separators and depth == 0:
            parts.append(s[start:i])
            start = i + 1
        i += 1
    parts.append(s[start:])
    return [p.strip() for p in parts]


def strip_math_delims(s: str) -> str:
    """``s`` without one pair of enclosing ``$$``, ``$``, ``\\(...\\)`` or ``\\[...\\]`` (repeated for each kind)."""
    s = s.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
            s = s[len(left) : len(s) - len(right)].strip()
    return s


def math_spans(s: str) -> list[str]:
    """The contents of each ``$...$``, ``$$...$$``, ``\\(...\\)`` and ``\\[...\\]`` span in ``s``, in order."""
    return [next(g for g in m.groups() if g is not None).strip() for m in _MATH_SPAN.finditer(s)]


def split_answers(answer: str) -> list[str]:
    """The items of an answer: several answers give several items, a single answer (a number, a tuple, an
    interval, an expression) gives one. Items keep their LaTeX; empty items are dropped."""
    s = answer.strip()
    spans = math_spans(s)
    if len(spans) > 1 and not _MATH_SPAN.sub("", s).strip(" ,;.\n\tandor"):  # "$a$, $b$" or "$a$ and $b$"
        return [item for span in spans for item in split_answers(span)]
    s = strip_math_delims(s)
    s = re.sub(r",\\!\s*|\{,\}", ",", s)  # LaTeX thousands separators: "11,\\! 111" and "11{,}111"
    m = _SET.match(s)
    if m:
        s = m.group(1)
    if _THOUSANDS.fullmatch(s):  # "1,000" is one number, written with a thousands separator
        return [s]
    items: list[str] = []
    for group in top_level_split(s, ";"):
        pieces = [p for part in _WORD_SEPARATOR.split(group) for p in top_level_split(part, ",")]
        pieces = [p for p in pieces if p]
        values = [_ASSIGNMENT.match(p) for p in pieces]
        names = [v.group(1) for v in values if v]
        if len(pieces) > 1 and all(values) and len(set(names)) == len(names):  # "p=5, q=2" -> "(5, 2)"
            items.append("(" + ", ".join(v.group(2).strip() for v in values if v) + ")")
        else:
            items += [v.group(2).strip() if v else p for p, v in zip(pieces, values, strict=True)]
    return [i for i in items if i]


def choice_letter(answer: str) -> str | None:
    """The letter of a multiple-choice answer: ``B``, ``(B)``, ``B)``, ``Option B``, ``\\text{(B)}``."""
    s = strip_math_delims(answer.strip())
    s = re.sub(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}", r"\1", s).strip()
    s = re.sub(r"^(?:option|choice|answer)\s*:?\s*", "", s, flags=re.I).strip().rstrip(".")
    m = _CHOICE.fullmatch(s) or re.match(r"\(([A-E])\)|([A-E])[).:](?:\s|$)", s)  # "(B) 12", "B) 12", "B. 12"
    return next(g for g in m.groups() if g) if m else None


def plain_words(s: str) -> str:
    """A short string answer for comparison: unwrapped from ``\\text{}`` and math delimiters, lower-case,
    without punctuation around it, articles or repeated spaces."""
    prev = None
    while prev != s:
        prev, s = (
            s,
            re.sub(r"\\(?:text|textbf|textit|mathrm|mbox|textnormal|operatorname)\s*\{([^{}]*)\}", r"\1", s),
        )
    s = strip_math_delims(s).replace("\\ ", " ").replace("~", " ")
    s = re.sub(r"[\s.,;:!?'\"`{}()\[\]\\*_]+", " ", s).strip().lower()  # markdown ** and __ too
    return re.sub(r"^(?:the|a|an)\s+", "", s)


def answer_type(reference: str) -> str:
    """The comparison a reference needs: ``choice`` for a lone letter A-E, ``numeric`` for a plain number,
    ``string`` for words without digits or LaTeX, ``expression`` otherwise."""
    s = strip_math_delims(reference.strip())
    if choice_letter(s) and len(s) <= 12:
        return "choice"
    if re.fullmatch(r"-?\d+(?:\.\d+)?|-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+/\d+|-?\.\d+", s.replace(" ", "")):
        return "numeric"
    words = plain_words(s)
    unwrapped = re.sub(r"\\(?:text|textbf|textit|mathrm|mbox|textnormal)\s*\{([^{}]*)\}", r"\1", s)
    if words and not re.search(r"\d|[\\^_=<>+*/|]", unwrapped) and len(words.split()) <= 6:
        return "string"
    return "expression"
