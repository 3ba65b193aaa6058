"""The verifier on competition-style outputs: precision first (a number from prose, a partial answer set, a
list read as one number), answer sets (several boxes, separators, assignments), every answer type, and
verifiers for other domains (``choice``, ``string``, a user's ``module:function``)."""

from __future__ import annotations

import json
import textwrap

import pytest

from cooper.verify import VerifierError, check_verifier, explain, is_correct, is_correct_batch
from cooper.verify.answers import answer_type, choice_letter, plain_words, split_answers
from cooper.verify.rule import extract_answers

# (response, reference, expected). Each class in both directions.
PRECISION = [
    # a bare number only where the response plainly ends on it as its result
    ("Try x = 14. Then y = 15, so x = 14 and y = 15 is not a solution.", "15", False),
    (
        "We solved it.\n\nOther methods exist, e.g. 15 steps of induction, or generating functions.",
        "15",
        False,
    ),
    ("Is the answer 15?", "15", False),
    ("If we had 15 more, the total would be 30", "30", False),
    ("Adding the two parts gives 15.", "15", True),
    ("So she pays 18 dollars.", "18", True),
    ("So she pays 18 dollars. That seems too much; it is not 18.", "18", False),
    # a reference with several answers needs all of them
    ("The solutions follow. Final: \\boxed{8}", "$2^{-2/3}$, $8$", False),
    ("\\boxed{2^{-2/3}} and \\boxed{8}", "$2^{-2/3}$, $8$", True),
    ("\\boxed{8}", "2^{-2/3}, 8", False),
    # a closing sentence: the span it states as its result, never a span it goes on from or still works on
    ("Therefore, the value of $x$ is 5.", "5", True),
    ("Thus the median of $S$ is 2302.", "2302", True),
    ("In summary the triple $(2,251,252)$ is the only solution.", "(2,251,252)", True),
    ("Thus there are $11$ distinct such triangles.", "11", True),
    ("Therefore we now check the case $x \\geq 5$.", "x \\geq 5", False),
    ("So it remains to consider $x \\geq 5$ separately.", "x \\geq 5", False),
    ("So next we evaluate $f(3) = 2\\pi$ and then continue.", "2\\pi", False),
    ("Therefore, the probability is $\\frac{1}{10}$, since one in ten works.", "\\frac{1}{10}", False),
    # a bare number in a sentence that announces more work, or a number of a circumstance
    ("Let us now check 15", "15", False),
    ("Finally, we check step 15.", "15", False),
    ("Thus we consider the polynomial of degree 15.", "15", False),
    ("So 10 lawns are mowed in 2 hours.", "2", False),
    ("So 10 lawns are mowed in 2 hours.", "10", False),
    ("She pays 9 * 2 = 18 dollars. Check: 2 * 9 = 18.", "18", True),  # a closing check states the result
    # a list is not a number with a thousands separator
    ("\\boxed{32, 349}", "32349", False),
    ("\\boxed{32,349}", "32349", True),
    ("\\boxed{32, 349}", "32, 349", True),
]
MULTI = [
    ("\\boxed{(2, 2)} and \\boxed{(6, 2)}", "(2, 2), (6, 2)", True),
    ("\\boxed{(6, 2)}, \\boxed{(2, 2)}", "(2, 2), (6, 2)", True),  # sets are unordered
    ("\\boxed{(2, 6)} and \\boxed{(2, 2)}", "(2, 2), (6, 2)", False),  # tuples are ordered
    ("\\boxed{1} and \\boxed{2}", "1, 2", True),
    ("x = \\boxed{1} or x = \\boxed{2}.", "1, 2", True),
    ("\\boxed{1} and \\boxed{2} and \\boxed{3}", "1, 2", False),  # an extra answer
    ("\\boxed{1}", "1, 2", False),
    ("First \\boxed{3}, then \\boxed{4}", "4", True),  # boxes apart: the last one answers
    ("So the answer is $-12;-11;-10$.", "\\{-12, -11, -10\\}", True),
    ("So the answer is $-12;-11;-9$.", "\\{-12, -11, -10\\}", False),
    ("\\boxed{p=5,q=2;p=7,q=2}", "(5,2),(7,2)", True),
    ("\\boxed{p=2,q=5;p=7,q=2}", "(5,2),(7,2)", False),
    ("The answers are $21,16$ or $11$.", "11, 16, 21", True),
    ("The answers are $21,16$.", "11, 16, 21", False),
    ("Therefore $x \\geq 5$ is the solution.", "x \\geq 5", True),
    ("Therefore $x \\geq 4$ is the solution.", "x \\geq 5", False),
    ("\\boxed{(1, 2]}", "(1, 2]", True),  # an interval is one answer
    # each box in its own display or inline math, or in a list
    ("\\[\\boxed{(2, 2)}\\]\nand\n\\[\\boxed{(6, 2)}\\]", "(2, 2), (6, 2)", True),
    ("\\(\\boxed{1}\\) and \\(\\boxed{2}\\)", "1, 2", True),
    ("\\(\\boxed{1}\\) and \\(\\boxed{3}\\)", "1, 2", False),
    ("The solutions are:\n- \\boxed{2}\n- \\boxed{6}", "2, 6", True),
    ("The solutions are:\n1. \\boxed{2}\n2. \\boxed{6}", "2, 6", True),
    ("The solutions are:\n1. \\boxed{2}\n2. \\boxed{6}", "2, 7", False),
    # several marked answers, one after another, are one set; a correction after words is not
    ("The answer is $x=2$.\nThe answer is $x=6$.", "2, 6", True),
    ("The answer is $x=2$.\nThe answer is $x=6$.", "6", False),
    ("The answer is 12.\nWait, that is wrong. The answer is 15.", "15", True),
    # a ";" list after a marker in plain text; a ";" before prose still ends the answer
    ("The answer is -12; -11; -10", "\\{-12, -11, -10\\}", True),
    ("The answer is p=5,q=2;p=7,q=2", "(5,2),(7,2)", True),
    ("The answer is p=5,q=2;p=7,q=3", "(5,2),(7,2)", False),
    ("The answer is 5; we verify this below", "5", True),
]
TYPES = [
    # multiple choice
    ("The correct option is (B).", "B", True),
    ("Answer: Option B", "B", True),
    ("\\boxed{B}", "(B)", True),
    ("So the answer is B) 12.", "B", True),
    ("\\boxed{C}", "B", False),
    ("The answer is (C).", "B", False),
    ("The answer is A, B or C", "B", False),
    # short strings
    ("\\boxed{\\text{odd}}", "odd", True),
    ("\\boxed{\\text{even}}", "odd", False),
    ("The answer is The Eiffel Tower.", "eiffel tower", True),
    ("\\boxed{\\text{Paris}}", "\\text{paris}", True),
    ("\\boxed{\\text{London}}", "paris", False),
]


@pytest.mark.parametrize(("response", "reference", "expected"), PRECISION + MULTI + TYPES)
def test_verdicts(response, reference, expected):
    verdict = explain(response, reference)
    assert verdict["correct"] is expected, verdict


def test_batch_equals_single_and_in_process():
    cases = PRECISION + MULTI + TYPES
    responses, references = [c[0] for c in cases], [c[1] for c in cases]
    batch = is_correct_batch(responses, references)
    assert batch == [c[2] for c in cases]
    assert batch == is_correct_batch(responses, references, workers=0)


def test_row_fields_decide_type_and_multiplicity():
    # OlympiadBench's is_multiple_answer False: "1,3" is one answer (say a point), not two
    assert is_correct_batch(["\\boxed{1} and \\boxed{3}"], ["1,3"], is_multiple_answer=[True]) == [True]
    assert is_correct_batch(["\\boxed{1} and \\boxed{3}"], ["1,3"], is_multiple_answer=[False]) == [False]
    # an answer type given by the data wins over the inferred one
    assert is_correct("\\boxed{\\text{B}}", "B", answer_type="string") is True
    assert is_correct("I pick b.", "B", answer_type="Multiple Choice") is False
    assert is_correct("The answer is 7 apples.", "7", answer_type="Numerical") is True


def test_explain_shows_the_sets_the_type_and_the_rule():
    v = explain("\\boxed{(6, 2)} and \\boxed{(2, 2)}", "$(2, 2)$, $(6, 2)$")
    assert v["correct"] is True
    assert v["answers"] == ["(6, 2)", "(2, 2)"] and v["references"] == ["(2, 2)", "(6, 2)"]
    assert v["answer_type"] == "expression" and v["rule"] == "boxed answers"
    assert v["note"] == "answer set"
    assert explain("\\boxed{0.5}", "\\frac12")["note"] == "math-verify"  # the comparison rule is named too


def test_an_unknown_answer_type_is_an_error_naming_it():
    with pytest.raises(ValueError, match="'numerc'.*numeric, expression, choice, string"):
        is_correct("\\boxed{3}", "3", answer_type="numerc")
    v = explain("So she pays 18 dollars.", "18")
    assert (v["answer_type"], v["rule"], v["answers"]) == ("numeric", "final number", ["18"])


def test_helpers():
    assert split_answers("(2, 2), (6, 2)") == ["(2, 2)", "(6, 2)"]
    assert split_answers("$-12;-11;-10$") == ["-12", "-11", "-10"]
    assert split_answers("p=5,q=2;p=7,q=2") == ["(5, 2)", "(7, 2)"]
    assert split_answers("x=3 or x=4") == ["3", "4"]
    assert split_answers("1,000") == ["1,000"] and split_answers("(1, 2]") == ["(1, 2]"]
    assert [choice_letter(s) for s in ("(C)", "Option D", "B) 12", "Bob", "\\text{(E)}")] == [
        "C",
        "D",
        "B",
        None,
        "E",
    ]
    assert plain_words("The \\text{Eiffel Tower}.") == "eiffel tower"
    assert [answer_type(s) for s in ("B", "18", "1,000", "odd", "\\text{odd}", "x+1")] == [
        "choice",
        "numeric",
        "numeric",
        "string",
        "string",
        "expression",
    ]
    assert extract_answers("\\boxed{1}, \\boxed{2}, and \\boxed{3}")[0] == ["1", "2", "3"]


def test_hostile_answer_sets_are_refused_unevaluated(tmp_path):
    canary = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {canary}')"
    responses = [
        f"\\boxed{{1}} and \\boxed{{{payload}}}",
        f"The answers are $1$, ${payload}$",
        "\\boxed{f(a; b)}",
    ]
    assert is_correct_batch(responses, ["1, 2", "1, 2", "f(a; b)"]) == [False, False, False]
    assert not canary.exists()


# -- verifiers for other domains ------------------------------------------------------------------------------
USER_VERIFIERS = """
import time

def exact(responses, references, **fields):
    return [r.strip().lower() == g.strip().lower() for r, g in zip(responses, references)]

def by_language(responses, references, language=None, **fields):
    return [lang == "fr" and r == g for r, g, lang in zip(responses, references, language)]

def raises(responses, references, **fields):
    raise RuntimeError("boom")

def hangs(responses, references, **fields):
    time.sleep(60)

def too_few(responses, references, **fields):
    return []

def not_bools(responses, references, **fields):
    return ["yes" for _ in responses]
"""


@pytest.fixture
def user_module(tmp_path):
    path = tmp_path / "my_verifiers.py"
    path.write_text(textwrap.dedent(USER_VERIFIERS))
    return path


def test_builtin_choice_and_string_verifiers():
    assert is_correct_batch(["Option B", "(c)"], ["B", "B"], verifier="choice") == [True, False]
    assert is_correct_batch(
        ["The answer is Paris.", "\\boxed{Rome}"], ["paris", "Paris"], verifier="string"
    ) == [
        True,
        False,
    ]


def test_a_user_verifier_runs_in_the_pool_with_row_fields(user_module):
    spec = f"{user_module}:exact"
    assert check_verifier(spec) == spec
    assert is_correct_batch(["Yes", "no"], ["yes", "yes"], verifier=spec) == [True, False]
    by_lang = f"{user_module}:by_language"
    out = is_correct_batch(["a", "a"], ["a", "a"], verifier=by_lang, language=["fr", "en"])
    assert out == [True, False]


def test_a_relative_verifier_file_is_read_from_the_callers_directory(user_module, monkeypatch):
    """The pool's workers may have started in another directory: a relative ``file.py:function`` still
    names the caller's file."""
    assert is_correct_batch(["x"], ["x"]) == [True]  # the shared pool runs, started from here
    monkeypatch.chdir(user_module.parent)
    assert is_correct_batch(["Yes", "no"], ["yes", "yes"], verifier=f"{user_module.name}:exact") == [
        True,
        False,
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("raises", "raised RuntimeError: boom"),
        ("hangs", "gave no verdict"),
        ("too_few", "must return a list with one bool per response"),
        ("not_bools", "must return bools"),
    ],
)
def test_a_failing_user_verifier_is_a_clear_error_naming_it(name, message, user_module):
    spec = f"{user_module}:{name}"
    with pytest.raises(VerifierError, match=message) as e:
        is_correct_batch(["a"], ["a"], verifier=spec, timeout_s=1.0)
    assert spec in str(e.value)


def _verify(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from cooper.cli import main

    rc = main(["verify", *argv])
    return rc, capsys.readouterr().out


def test_the_verify_command_takes_an_answer_type_and_a_verifier(user_module, capsys, caplog):
    rc, out = _verify(
        ["-r", "B", "-c", "So the answer is (B) 12.", "--answer-type", "choice", "--json"], capsys
    )
    verdict = json.loads(out)
    assert rc == 0 and verdict["correct"] is True
    keys = {"correct", "extracted_answer", "reference_answer", "note", "answers", "references", "answer_type"}
    assert keys | {"rule"} <= set(verdict) and verdict["answer_type"] == "choice"
    # the answer type decides the comparison: 1000 is 10^3 as maths, not as a string
    assert _verify(["-r", "10^3", "-c", "\\boxed{1000}"], capsys)[0] == 0
    rc, out = _verify(["-r", "10^3", "-c", "\\boxed{1000}", "--answer-type", "string", "--json"], capsys)
    assert rc == 1 and json.loads(out)["answer_type"] == "string"

    assert _verify(["-r", "B", "-c", "Option B", "--verifier", "choice"], capsys)[0] == 0
    spec = f"{user_module}:exact"
    rc, out = _verify(["-r", "yes", "-c", "Yes", "--verifier", spec, "--json"], capsys)
    assert rc == 0 and json.loads(out)["rule"] == spec
    assert _verify(["-r", "yes", "-c", "no", "--verifier", spec], capsys)[0] == 1

    assert _verify(["-r", "1", "-c", "1", "--verifier", "nope"], capsys)[0] == 2
    assert "unknown verifier 'nope'" in caplog.text
    assert _verify(["-r", "1", "-c", "1", "--verifier", f"{user_module}:raises"], capsys)[0] == 2
    assert "raised RuntimeError: boom" in caplog.text
    with pytest.raises(SystemExit) as e:
        _verify(["-r", "1", "-c", "1", "--answer-type", "integer"], capsys)
    assert e.value.code == 2


@pytest.mark.parametrize("spec", ["nope", "no_such_module_xyz:f", "math:nothing", "/no/file.py:f", ""])
def test_unknown_verifiers_are_refused_up_front(spec):
    with pytest.raises(VerifierError):
        check_verifier(spec)


@pytest.mark.parametrize(
    ("response", "reference", "expected"),
    [
        ("The answer is (A) or (B).", "A", False),  # a hedge between choices
        ("The answer is (B) or (B).", "B", True),
        ("\\boxed{16}, \\boxed{3}, \\boxed{1}", "16,3,1,1", False),  # repeats make an ordered list
        ("\\boxed{16}, \\boxed{3}, \\boxed{1}, \\boxed{1}", "16,3,1,1", True),
        ("\\boxed{3}, \\boxed{16}, \\boxed{1}, \\boxed{1}", "16,3,1,1", False),
        ("\\boxed{-2}", "-2,-2", False),
        ("**odd**", "odd", True),
        ("North America", "North America", True),
        ("not North America", "North America", False),
    ],
)
def test_benchmark_findings(response, reference, expected):
    """Cases the verifier benchmark's labelled items found (bench/verify.py)."""
    assert explain(response, reference)["correct"] is expected


def test_a_response_of_thousands_of_boxes_is_judged_not_timed_out():
    """Each box is read once (reading every later box again for each one made 11,000 boxes take about a
    minute, past any deadline): the verdict comes from the verifier, not from the timeout."""
    verdict = explain("\\boxed{1} " * 11_000, "1", timeout_s=5.0)
    assert "timed out" not in str(verdict["note"]) and verdict["correct"] is True, verdict
