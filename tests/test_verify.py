"""The rule verifier: a table of verdicts, answer extraction, and behaviour under threads, asyncio,
worker processes and hostile input."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cooper.verify.pool import (
    VerifierPool,
    explain,
    is_correct,
    is_correct_batch,
    is_correct_batch_async,
    shared_pool,
)
from cooper.verify.rule import extract_answer, judge

# (response, reference, expected verdict). Precision first: the "False" rows are the costly ones.
CASES = [
    # integers and negatives
    ("The answer is 18.", "18", True),
    ("So she makes \\boxed{18} dollars.", "18", True),
    ("#### 18", "18", True),
    ("A: 26", "26", True),
    ("\\boxed{-7}", "-7", True),
    ("\\boxed{7}", "-7", False),
    ("The answer is -3", "3", False),
    ("\\boxed{0}", "0", True),
    ("\\boxed{19}", "18", False),
    # decimals vs fractions
    ("\\boxed{0.5}", "\\frac{1}{2}", True),
    ("\\boxed{\\frac{1}{2}}", "0.5", True),
    ("\\boxed{\\dfrac{3}{4}}", "0.75", True),
    ("\\boxed{0.33}", "\\frac{1}{3}", False),
    ("\\boxed{0.3}", "\\frac{1}{3}", False),
    ("\\boxed{1/3}", "\\frac{1}{3}", True),
    ("\\boxed{2.50}", "2.5", True),
    ("\\boxed{2.05}", "2.5", False),
    ("The answer is 3.5.", "3.5", True),
    # percentages
    ("\\boxed{50\\%}", "50", True),
    ("\\boxed{25\\%}", "25\\%", True),
    ("\\boxed{35\\%}", "25\\%", False),
    # thousands separators
    ("#### 1,000", "1000", True),
    ("\\boxed{1,000}", "1000", True),
    ("\\boxed{1{,}000}", "1000", True),
    ("$1\\,000$", "1000", True),
    ("The total is $12,345.", "12345", True),
    ("\\boxed{1,001}", "1000", False),
    # scientific notation
    ("The distance is 1e3 meters", "1000", True),
    ("\\boxed{1.5e-3}", "0.0015", True),
    ("\\boxed{1.5 \\times 10^{3}}", "1500", True),
    ("\\boxed{1e4}", "1000", False),
    # LaTeX vs plain
    ("\\boxed{\\sqrt{2}}", "2^{1/2}", True),
    ("\\boxed{\\frac{\\pi}{2}}", "\\pi/2", True),
    ("\\boxed{2\\sqrt{3}}", "\\sqrt{12}", True),
    ("\\boxed{\\sqrt{3}}", "\\sqrt{12}", False),
    ("\\boxed{x^2+2x+1}", "(x+1)^2", True),
    ("\\boxed{x^2+1}", "(x+1)^2", False),
    # units in \text{}
    ("\\boxed{3\\text{ cm}}", "3", True),
    ("\\boxed{12 \\text{ dollars}}", "12", True),
    ("\\boxed{5\\text{ cm}}", "3", False),
    # units as plain words after a number (math-verify alone reads "3 pens" as 3*E*n*p*s)
    ("The answer is 12 eggs.", "12", True),
    ("The answer is 3 pens.", "3", True),
    ("She paid $18 dollars in total. The answer is $18 dollars.", "18", True),
    ("The answer is 1,200 people.", "1200", True),
    ("The answer is 1/2 cup.", "1/2", True),
    ("The answer is 4 pens.", "3", False),
    ("The answer is 2 pi.", "2", False),  # a constant, not a unit
    ("The answer is 5 thousand.", "5", False),  # changes the value
    ("The answer is 3 or 4.", "3", False),  # a hedge
    ("\\boxed{\\$18}", "18", True),
    # intervals, sets, tuples
    ("\\boxed{(1,2]}", "(1,2]", True),
    ("\\boxed{[1,2]}", "(1,2]", False),
    ("\\boxed{\\{1,2,3\\}}", "\\{3,2,1\\}", True),
    ("\\boxed{\\{1,2\\}}", "\\{1,2,3\\}", False),
    ("\\boxed{(3, \\frac{\\pi}{2})}", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
    ("\\boxed{(\\frac{\\pi}{2}, 3)}", "\\left( 3, \\frac{\\pi}{2} \\right)", False),
    ("\\boxed{(-\\infty, 0)}", "(-\\infty,0)", True),
    # equations
    ("\\boxed{x = 5}", "5", True),
    ("So $x = 5$, the answer is $x=5$", "5", True),
    ("\\boxed{x = 6}", "5", False),
    ("\\boxed{5}", "x=5", True),
    # multiple choice
    ("\\boxed{B}", "B", True),
    ("The answer is (C).", "C", True),
    ("\\boxed{\\text{(C)}}", "\\text{(C)}", True),
    ("\\boxed{D}", "B", False),
    ("The answer is A, B or C", "B", False),
    # text answers
    ("\\boxed{\\text{Monday}}", "Monday", True),
    ("The answer is Evelyn.", "\\text{Evelyn}", True),
    ("\\boxed{\\text{Tuesday}}", "Monday", False),
    # empty or missing answers
    ("", "5", False),
    ("I do not know.", "5", False),
    ("\\boxed{}", "5", False),
    ("The answer is", "5", False),
    ("\\boxed{5}", "", False),
    # close-looking wrong answers and self-corrections
    ("12 ... no wait, the answer is 15", "15", True),
    ("12 ... no wait, the answer is 15", "12", False),
    ("\\boxed{12}. Hmm, actually the answer is 15", "12", False),
    ("First \\boxed{3}, then \\boxed{4}", "4", True),
    ("First \\boxed{3}, then \\boxed{4}", "3", False),
    ("She has 3 apples and 4 pears, so 7 fruit", "7", True),
    ("She has 7 apples and 4 pears, so 11 fruit", "7", False),
    ("\\boxed{3!}", "3", False),
    ("\\boxed{3!}", "6", True),
    ("\\boxed{0.999}", "1", False),
    ("\\boxed{100}", "10", False),
    ("So \\boxed{44}. We may check our answer: $17\\cdot 44 = 748$, so our answer is correct.", "44", True),
    ("The answer is as follows: 3 + 4 = 7. \\boxed{7}", "7", True),
    ("Final answer: 2.5", "2.5", True),
    # a completion that is only the answer
    ("\\frac{1}{2}", "0.5", True),
    ("$(1, 2]$", "(1,2]", True),
    ("Monday", "\\text{Monday}", True),
    ("maybe 5 or 6", "x+1", False),
    ("x + 2", "x+1", False),
]


def test_table_has_enough_cases():
    assert len(CASES) >= 60
    assert sum(1 for *_, ok in CASES if not ok) >= 25  # plenty of ways to be wrong


@pytest.mark.parametrize(("response", "reference", "expected"), CASES)
def test_verdict_table(response, reference, expected):
    verdict = explain(response, reference)
    assert verdict["correct"] is expected, verdict


def test_batch_matches_single_and_in_process_judge():
    responses = [r for r, _, _ in CASES]
    references = [g for _, g, _ in CASES]
    batch = is_correct_batch(responses, references)
    assert batch == [ok for *_, ok in CASES]
    assert batch == is_correct_batch(responses, references, workers=0)
    assert batch == [judge(r, g)["correct"] for r, g in zip(responses, references, strict=True)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("blah \\boxed{1} blah \\boxed{\\frac{2}{3}}", "\\frac{2}{3}"),
        ("The final answer is $42$.", "$42$"),
        ("The answer is: \\boxed{7}", "7"),
        ("reasoning\n#### 1,234", "1,234"),
        ("work\nA: 26", "26"),
        ("I bought 3 apples for $5 each, paying $15 in total", "15"),
        ("no numbers at all", None),
        ("", None),
        ("\\boxed{\\boxed{9}}", "9"),
        ("\\boxed{\\frac{1}{2}", None),  # unbalanced: no answer, never a guess
        ("..", None),  # punctuation states no answer (it must never pass as a "wrong answer" negative)
        ("The answer is $.", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_extract_answer_last_number_can_be_turned_off():
    assert extract_answer("it is 12 and 13") == "13"
    assert extract_answer("it is 12 and 13", last_number=False) is None


def test_last_number_fallback_only_for_plain_number_references():
    assert is_correct("we get 3 and then x+1", "x+1") is False
    assert is_correct("so the result is 7 apples", "7") is True


def test_works_from_threads():
    responses = ["\\boxed{2}", "\\boxed{3}"] * 10
    with ThreadPoolExecutor(4) as ex:
        out = list(ex.map(lambda r: is_correct(r, "2"), responses))
    assert out == [True, False] * 10


def test_works_inside_asyncio():
    async def main():
        return await asyncio.gather(
            is_correct_batch_async(["\\boxed{5}"], ["5"]),
            is_correct_batch_async(["\\boxed{6}"], ["5"]),
        )

    assert asyncio.run(main()) == [[True], [False]]
    # and a plain synchronous call from inside a running loop (blocking, but correct)
    assert asyncio.run(_sync_in_loop()) is True


async def _sync_in_loop() -> bool:
    return is_correct("\\boxed{5}", "5")


def _in_daemon_child(q):
    q.put(is_correct_batch(["\\boxed{5}", "\\boxed{4}"], ["5", "5"]))


def test_works_inside_a_daemonic_worker_process():
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_in_daemon_child, args=(q,), daemon=True)
    p.start()
    try:
        assert q.get(timeout=120) == [True, False]
    finally:
        p.join(30)


def test_works_after_fork():
    shared_pool().run(["\\boxed{1}"], ["1"], timeout_s=5)  # parent pool is running
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_in_daemon_child, args=(q,))
    p.start()
    try:
        assert q.get(timeout=120) == [True, False]
    finally:
        p.join(30)
    assert is_correct("\\boxed{1}", "1")  # the parent's pool still works


HOSTILE = [
    "x" * 1_000_000,
    "1" * 1_000_000,
    "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
    "\\boxed{10^{10^{10^{10}}}}",
    "\\boxed{2^{10^{9}}}",
    "\\boxed{" + "\\frac{1}{" * 200 + "2" + "}" * 200 + "}",
    "The answer is 5\x00\x00",
    "\ud800\udfff the answer is \ud800",
    "__import__('os').system('touch {canary}')",
    "\\boxed{__import__('os').system('touch {canary}')}",
    "The answer is __import__('os').system('touch {canary}')",
    "$eval(\"__import__('os').system('touch {canary}')\")$",
    "\\boxed{(lambda: exec(\"open('{canary}','w')\"))()}",
]


def test_hostile_input_returns_false_quickly_and_executes_nothing(tmp_path):
    canary = tmp_path / "canary"
    responses = [h.replace("{canary}", str(canary)) for h in HOSTILE]
    pool = shared_pool()
    start = time.monotonic()
    out = is_correct_batch(responses, ["1"] * len(responses), timeout_s=2.0)
    elapsed = time.monotonic() - start
    assert out == [False] * len(responses)
    assert not canary.exists()
    assert elapsed < 2.0 * len(responses) / pool.size + 5  # every item bounded by its deadline
    assert is_correct_batch(["\\boxed{7}"], ["7"]) == [True]  # and the pool still serves


def test_hostile_references_too(tmp_path):
    canary = tmp_path / "canary"
    ref = f"__import__('os').system('touch {canary}')"
    assert is_correct(ref, ref) is False
    assert not canary.exists()
    assert is_correct("\\boxed{1}", "10^{10^{10^{10}}}") is False


def test_non_string_input_is_false_not_a_crash():
    assert is_correct_batch([None, 5, "\\boxed{5}"], ["5", "5", None]) == [False, False, False]  # type: ignore[list-item]


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 responses but 1 references"):
        is_correct_batch(["a", "b"], ["1"])


def test_identical_items_are_judged_once_and_each_gets_its_own_verdict():
    """A GRPO group often repeats a completion: the pool judges each distinct (response, reference, fields)
    once. A different reference or answer type is a different item."""
    pool = VerifierPool(workers=1)
    try:
        responses = ["\\boxed{2}", "\\boxed{2}", "\\boxed{3}", "\\boxed{2}", "\\boxed{B}", "\\boxed{B}"]
        references = ["2", "2", "2", "3", "B", "B"]
        fields = [{}, {}, {}, {}, {"answer_type": "choice"}, {"answer_type": "string"}]
        out = pool.run(responses, references, timeout_s=5.0, fields=fields)
        assert [v["correct"] for v in out] == [True, True, False, False, True, True]
        assert pool.stats["items"] == 6 and pool.stats["duplicates"] == 1
        assert len(pool.last_item_ms) == 5  # the five distinct items were judged
        out[0]["correct"] = "changed"  # one verdict is not another's
        assert out[1]["correct"] is True
    finally:
        pool.close()


def test_a_hung_worker_is_killed_and_replaced():
    """A worker that stops answering (SIGSTOP stands in for a hang in C code) costs one item, no more."""
    pool = VerifierPool(workers=1)
    try:
        pool.start()
        victim = pool.workers[0].proc.pid
        os.kill(victim, signal.SIGSTOP)
        start = time.monotonic()
        out = pool.run(["\\boxed{1}", "\\boxed{2}", "\\boxed{3}"], ["1", "2", "4"], timeout_s=1.0)
        assert time.monotonic() - start < 30
        assert [v["correct"] for v in out] == [False, True, False]
        assert "timed out" in out[0]["note"]
        assert pool.stats["timeouts"] == 1 and pool.stats["worker_restarts"] == 1
        assert pool.workers[0].proc.pid != victim
    finally:
        pool.close()


def test_a_crashed_worker_is_replaced():
    pool = VerifierPool(workers=1)
    try:
        pool.start()
        os.kill(pool.workers[0].proc.pid, signal.SIGKILL)
        out = pool.run(["\\boxed{1}", "\\boxed{2}"], ["1", "2"], timeout_s=5.0)
        assert [v["correct"] for v in out] == [False, True]
        assert out[0]["note"] == "worker crashed"
        assert pool.stats["worker_crashes"] == 1
    finally:
        pool.close()


def test_cli_verify():
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    ok = subprocess.run(
        [sys.executable, "-m", "cooper.cli", "verify", "-r", "18", "-c", "so \\boxed{18}", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.strip().splitlines()[-1])["extracted_answer"] == "18"
    bad = subprocess.run(
        [sys.executable, "-m", "cooper.cli", "verify", "-r", "18", "-c", "so \\boxed{17}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert bad.returncode == 1
    assert "WRONG" in bad.stdout and "'17'" in bad.stdout


def test_thread_safety_of_the_shared_pool():
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            refs = [str(i) for i in range(20)]
            resp = [f"\\boxed{{{i + (k % 2)}}}" for i in range(20)]
            assert is_correct_batch(resp, refs) == [k % 2 == 0] * 20
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
