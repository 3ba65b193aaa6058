"""Tests for cooper.annotate (``cooper annotate``): strict verdicts, agreement filter, resume, bad input.

The LLM judge is a stdlib HTTP server (:class:`FakeEndpoint` from ``helpers_endpoint.py``) that answers from
the prompt's content; the last test runs the whole command against a real ``transformers serve``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cooper.annotate.judge import judge_messages, parse_verdict
from cooper.annotate.pipeline import annotate, load_input_rows
from cooper.cli import main
from cooper.data.rows import DataError
from cooper.utils.io import read_jsonl
from cooper.utils.tiny import TinyPaths
from helpers_data import write_user_verifiers
from helpers_endpoint import FakeEndpoint, Reply, chat_body, free_port, steer_model, transformers_serve

ROWS = [
    {
        "id": "p1",
        "question": "What is 1+1?",
        "reference": "2",
        "completion": "1+1=2, so \\boxed{2}.",
        "source": "arith",
    },
    {
        "id": "p2",
        "question": "What is 3*4?",
        "reference": "12",
        "completion": "The answer is \\boxed{12}",
        "source": "arith",
    },
    {
        "id": "n1",
        "question": "What is 2+2?",
        "reference": "4",
        "completion": "2+2=5, so \\boxed{5}.",
        "source": "arith",
    },
    {
        "id": "n2",
        "question": "Half of 1?",
        "reference": "0.5",
        "completion": "It is \\boxed{0.4}",
        "source": "frac",
    },
    {
        "id": "d1",
        "question": "What is 5+5?",
        "reference": "10",
        "completion": "\\boxed{10} FLIP",
        "source": "arith",
    },
    {
        "id": "d2",
        "question": "Half of 1?",
        "reference": "0.5",
        "completion": "\\boxed{\\frac{1}{2}}",
        "source": "frac",
    },
    {
        "id": "a1",
        "question": "What is 6+1?",
        "reference": "7",
        "completion": "GARBLE \\boxed{7}",
        "source": "frac",
    },
]
# verifier: p1 p2 d1 d2 a1 correct; fake judge: string match of the last \boxed{} (so d2 differs), FLIP flips
# its verdict, GARBLE gets an unparseable reply (abstention).


def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def fake_judge(fail: dict[str, bool] | None = None) -> Callable[[int, dict[str, Any]], Reply]:
    """Judges like a string-matching grader; rows whose completion says FAIL get HTTP 500 while
    ``fail["on"]``."""

    def respond(n: int, body: dict[str, Any]) -> Reply:
        user = body["messages"][-1]["content"]
        reference = _between(user, "Reference answer:\n", "\n\nCompletion:")
        completion = _between(user, "Completion:\n", "\n\nCompare only")
        if "FAIL" in completion and fail is not None and fail["on"]:
            return Reply(500, {"error": {"message": "judge overloaded"}})
        if "GARBLE" in completion:
            return Reply(body=chat_body("Hmm, hard to say.\nFinal verdict: Yes or No"))
        boxed = re.findall(r"\\boxed\{(.*)\}", completion)
        yes = bool(boxed) and boxed[-1].strip() == reference.strip()
        if "FLIP" in completion:
            yes = not yes
        return Reply(body=chat_body(f"Comparing answers.\n\nFinal verdict: {'Yes' if yes else 'No'}"))

    return respond


@pytest.fixture
def judge_server() -> Iterator[FakeEndpoint]:
    with FakeEndpoint(fake_judge()) as srv:
        yield srv


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def cli(data: Path | list[Path], out: Path, url: str, *extra: str) -> int:
    files = [str(p) for p in (data if isinstance(data, list) else [data])]
    args = ["annotate", "--data", *files, "--out", str(out), "--judge-url", url, "--judge-model", "fake"]
    return main([*args, "--judge-backoff", "0.01", *extra])


def ids(path: Path) -> list[str]:
    return [r["id"] for r in read_jsonl(path)]


# --- verdict parsing and prompt -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Final verdict: Yes", True),
        ("Final verdict: No", False),
        ("final verdict: yes", True),
        ("FINAL VERDICT: NO.", False),
        ("The answers match.\n\nFinal verdict: Yes\n\n  ", True),
        ("  Final verdict:   No  ", False),
        ("Final verdict:No", False),
        ("Final verdict: No\nFinal verdict: Yes", True),  # only the last line counts
        ("Final verdict: Yes\nbut actually I am unsure", None),
        ("Final verdict: Yes or No", None),
        ("Final verdict: Yes/No", None),
        ("Final verdict: Yes No", None),
        ("Final verdict: Yes!", None),
        ("Final verdict: Yes..", None),
        ("**Final verdict: Yes**", None),
        ("Final verdict: **Yes**", None),
        ("The final verdict: Yes", None),
        ("Verdict: Yes", None),
        ("Yes", None),
        ("Final verdict: Maybe", None),
        ("Final verdict:", None),
        ("", None),
        ("   \n \n", None),
        (None, None),
    ],
)
def test_parse_verdict_is_strict(text: str | None, expected: bool | None) -> None:
    assert parse_verdict(text) is expected


def test_judge_messages_carry_the_row_and_clip_long_completions() -> None:
    system, user = judge_messages("What is 2+2?", "4", "so \\boxed{4}")
    assert system["role"] == "system" and user["role"] == "user"
    assert "What is 2+2?" in user["content"] and "Reference answer:\n4" in user["content"]
    assert "so \\boxed{4}" in user["content"]
    assert user["content"].rstrip().endswith("Final verdict: No")
    long = judge_messages("q", "1", "x" * 20000 + " FINAL \\boxed{1}")[1]["content"]
    assert "FINAL \\boxed{1}" in long and len(long) < 10000


# --- end to end against the fake judge ------------------------------------------------------------------


def test_end_to_end_agreement_filter(
    tmp_path: Path, judge_server: FakeEndpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", ROWS)
    assert cli(data, tmp_path / "out", judge_server.url) == 0
    out = tmp_path / "out"
    kept = {r["id"]: r for r in read_jsonl(out / "annotated.jsonl")}
    assert sorted(kept) == ["n1", "n2", "p1", "p2"]
    assert {i: r["label"] for i, r in kept.items()} == {"p1": 1, "p2": 1, "n1": 0, "n2": 0}
    assert set(kept["p1"]) == {"id", "question", "reference", "completion", "label", "source"}
    assert kept["p1"]["source"] == "arith" and kept["p1"]["completion"] == ROWS[0]["completion"]
    dis = {r["id"]: r for r in read_jsonl(out / "disagreements.jsonl")}
    assert sorted(dis) == ["d1", "d2"]
    assert dis["d2"]["verifier"] is True and dis["d2"]["judge"] is False
    judged = {r["id"]: r for r in read_jsonl(out / "judged.jsonl")}
    assert judged["a1"]["outcome"] == "abstain" and judged["a1"]["judge"] is None
    assert "Yes or No" in judged["a1"]["judge_reply"]
    assert all(r["outcome"] == "agree" for i, r in judged.items() if i in kept)

    stats = json.loads((out / "stats.json").read_text())
    expected = {"rows_in": 7, "judged": 7, "agreements": 4, "disagreements": 2, "abstentions": 1}
    expected |= {"kept_positive": 2, "kept_negative": 2, "judge_failures": 0, "agreement_rate": 0.6667}
    assert {k: stats[k] for k in expected} == expected
    assert stats["per_source"]["frac"] == {
        "rows": 3,
        "judged": 3,
        "agreements": 1,
        "disagreements": 1,
        "abstentions": 1,
        "kept_positive": 0,
        "kept_negative": 1,
        "verifier_correct": 2,
        "judge_failures": 0,
    }
    assert stats["endpoint"]["requests"] == 7 and stats["endpoint"]["failures"] == 0
    assert len(judge_server.chat_requests) == 7
    assert [s.method for s in judge_server.seen].count("GET") == 1  # the preflight, before any POST
    assert judge_server.seen[0].method == "GET"
    printed = capsys.readouterr().out
    assert "agreement rate" in printed and "66.7%" in printed and "arith" in printed


def test_resume_sends_no_new_requests(tmp_path: Path, judge_server: FakeEndpoint) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", ROWS)
    out = tmp_path / "out"
    assert cli(data, out, judge_server.url) == 0
    before = {name: (out / name).read_bytes() for name in ("annotated.jsonl", "disagreements.jsonl")}
    assert cli(data, out, judge_server.url) == 0
    assert len(judge_server.chat_requests) == 7  # no new chat request
    assert {name: (out / name).read_bytes() for name in before} == before
    stats = json.loads((out / "stats.json").read_text())
    assert stats["judged_this_run"] == 0 and stats["skipped_already_judged"] == 7
    assert stats["judged"] == 7 and stats["kept_positive"] == 2 and stats["endpoint"]["requests"] == 0

    assert cli(data, out, judge_server.url, "--retry-abstentions") == 0
    assert len(judge_server.chat_requests) == 8  # only the abstention was asked again
    assert json.loads((out / "stats.json").read_text())["abstentions"] == 1
    for name in ("annotated.jsonl", "disagreements.jsonl"):
        assert len(ids(out / name)) == len(set(ids(out / name)))


def test_resume_after_a_torn_last_line(tmp_path: Path, judge_server: FakeEndpoint) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", ROWS)
    out = tmp_path / "out"
    assert cli(data, out, judge_server.url) == 0
    # A crash while writing n2: its annotated line is half written and it has no (complete) judged line.
    kept = (out / "annotated.jsonl").read_text().splitlines()
    n2 = next(line for line in kept if '"n2"' in line)
    (out / "annotated.jsonl").write_text("".join(x + "\n" for x in kept if x != n2) + n2[: len(n2) // 2])
    # ... and a crash between p1's output line and its judged line (p1 has no judged line at all).
    log = (out / "judged.jsonl").read_text().splitlines()
    n2_log = next(line for line in log if '"n2"' in line)
    complete = [x for x in log if '"n2"' not in x and '"p1"' not in x]
    (out / "judged.jsonl").write_text("".join(x + "\n" for x in complete) + n2_log[:10])

    assert cli(data, out, judge_server.url) == 0
    assert len(judge_server.chat_requests) == 8  # n2 asked again; p1 recovered from annotated.jsonl
    rows = read_jsonl(out / "annotated.jsonl")  # every line parses
    assert sorted(r["id"] for r in rows) == ["n1", "n2", "p1", "p2"]
    assert sorted(set(ids(out / "judged.jsonl"))) == sorted(r["id"] for r in ROWS)
    stats = json.loads((out / "stats.json").read_text())
    assert (stats["judged"], stats["kept_positive"], stats["kept_negative"]) == (7, 2, 2)


def test_judge_failures_are_counted_and_retried_next_run(tmp_path: Path) -> None:
    rows = [*ROWS, {"id": "f1", "question": "2+1?", "reference": "3", "completion": "FAIL \\boxed{3}"}]
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    out = tmp_path / "out"
    fail = {"on": True}
    with FakeEndpoint(fake_judge(fail)) as srv:
        assert cli(data, out, srv.url, "--judge-retries", "1") == 3  # finished, but f1 is unjudged
        stats = json.loads((out / "stats.json").read_text())
        assert stats["judge_failures"] == 1 and stats["judged"] == 7 and stats["abstentions"] == 1
        assert stats["per_source"]["data"]["judge_failures"] == 1
        assert stats["endpoint"]["failures"] == 1 and stats["endpoint"]["http_errors"] == 2
        assert "f1" not in ids(out / "judged.jsonl")
        fail["on"] = False
        assert cli(data, out, srv.url) == 0
        assert len(srv.chat_requests) == 7 + 2 + 1
    assert "f1" in ids(out / "annotated.jsonl")


def test_the_verifier_is_a_choice_recorded_with_the_run(
    tmp_path: Path, judge_server: FakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", ROWS)
    # built in: the choice verifier finds no letter in any completion, so it says "wrong" to all of them
    out = tmp_path / "choice"
    assert cli(data, out, judge_server.url, "--verifier", "choice") == 0
    kept = {r["id"]: r["label"] for r in read_jsonl(out / "annotated.jsonl")}
    assert kept == {"n1": 0, "n2": 0, "d1": 0, "d2": 0} and sorted(ids(out / "disagreements.jsonl")) == [
        "p1",
        "p2",
    ]
    assert json.loads((out / "stats.json").read_text())["verifier"] == "choice"
    assert json.loads((out / "run.json").read_text())["verifier"] == "choice"

    # a user's verifier, given the rows' other columns: correct exactly where source is "arith"
    spec = f"{write_user_verifiers(tmp_path)}:arith"
    out = tmp_path / "mine"
    assert cli(data, out, judge_server.url, "--verifier", spec) == 0
    kept = {r["id"]: r["label"] for r in read_jsonl(out / "annotated.jsonl")}
    assert kept == {"p1": 1, "p2": 1, "n2": 0, "d2": 0} and sorted(ids(out / "disagreements.jsonl")) == [
        "d1",
        "n1",
    ]
    assert json.loads((out / "stats.json").read_text())["verifier"] == spec

    # another verifier is another run: resuming into its --out is refused before any request
    asked = len(judge_server.seen)
    assert cli(data, out, judge_server.url) == 2
    assert f"verifier {spec!r}, this run with 'math'" in caplog.text and len(judge_server.seen) == asked
    # a run.json from before the verifier was a choice records none: it was made with math
    out = tmp_path / "math"
    assert cli(data, out, judge_server.url) == 0
    record = json.loads((out / "run.json").read_text())
    assert record.pop("verifier") == "math"
    (out / "run.json").write_text(json.dumps(record))
    asked = len(judge_server.chat_requests)
    assert cli(data, out, judge_server.url) == 0 and len(judge_server.chat_requests) == asked
    assert cli(data, out, judge_server.url, "--verifier", "choice") == 2


def test_an_unknown_verifier_is_bad_input_before_any_work(
    tmp_path: Path, judge_server: FakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", ROWS)
    assert cli(data, tmp_path / "out", judge_server.url, "--verifier", "nope") == 2
    assert "unknown verifier 'nope'" in caplog.text and judge_server.seen == []
    assert not (tmp_path / "out").exists()


def test_parquet_output(tmp_path: Path, judge_server: FakeEndpoint) -> None:
    import pyarrow.parquet as pq

    data = write_jsonl(tmp_path / "data.jsonl", ROWS)
    assert cli(data, tmp_path / "out", judge_server.url, "--format", "parquet") == 0
    table = pq.read_table(tmp_path / "out" / "annotated.parquet").to_pylist()
    assert table == read_jsonl(tmp_path / "out" / "annotated.jsonl")
    assert not [p.name for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_column_renames_and_several_files(tmp_path: Path, judge_server: FakeEndpoint) -> None:
    theirs = [{"problem": r["question"], "answer": r["reference"], "response": r["completion"]} for r in ROWS]
    a = write_jsonl(tmp_path / "a.jsonl", theirs[:3])
    b = write_jsonl(tmp_path / "b.jsonl", theirs[3:])
    renames = [
        "--column",
        "problem=question",
        "--column",
        "answer=reference",
        "--column",
        "response=completion",
    ]
    assert cli([a, b], tmp_path / "out", judge_server.url, *renames) == 0
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["judged"] == 7 and set(stats["per_source"]) == {"a", "b"}
    assert sorted(ids(tmp_path / "out" / "judged.jsonl"))[:2] == ["a-0", "a-1"]


# --- bad input, bad endpoint --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("second_row", "message"),
    [
        ({"question": "q", "reference": "1"}, r"data\.jsonl line 2: missing field 'completion'"),
        ({"question": "q", "reference": "1", "completion": "  "}, r"line 2: field 'completion' is empty"),
        ({"question": 7, "reference": "1", "completion": "c"}, r"line 2: field 'question' must be a string"),
        ({"reference": "1", "completion": "c"}, r"line 2: missing field 'question'"),
        ({"id": "p1", "question": "q", "reference": "1", "completion": "c"}, r"line 2: duplicate id 'p1'"),
    ],
)
def test_bad_rows_fail_before_any_request(
    tmp_path: Path,
    judge_server: FakeEndpoint,
    caplog: pytest.LogCaptureFixture,
    second_row: dict[str, Any],
    message: str,
) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", [ROWS[0], second_row, ROWS[1]])
    assert cli(data, tmp_path / "out", judge_server.url) == 2
    assert re.search(message, caplog.text), caplog.text
    assert str(data) in caplog.text
    assert judge_server.seen == []  # not even the preflight
    assert not (tmp_path / "out").exists()


def test_renamed_column_is_named_in_errors(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", [{"problem": "q", "answer": "1"}])
    with pytest.raises(DataError, match=r"line 1: missing field 'response' \(read as 'completion'\)"):
        load_input_rows(
            [data], columns={"problem": "question", "answer": "reference", "response": "completion"}
        )


def test_empty_file(tmp_path: Path, judge_server: FakeEndpoint, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "empty.jsonl"
    data.write_text("")
    assert cli(data, tmp_path / "out", judge_server.url) == 2
    assert "empty.jsonl: file is empty" in caplog.text and judge_server.seen == []


def test_skip_invalid(tmp_path: Path, judge_server: FakeEndpoint, caplog: pytest.LogCaptureFixture) -> None:
    bad = [
        {"id": "x1", "question": "q", "reference": "1"},
        {"id": "x2", "question": "", "reference": "1", "completion": "c"},
    ]
    data = write_jsonl(tmp_path / "data.jsonl", [*ROWS[:3], *bad, *ROWS[3:]])
    assert cli(data, tmp_path / "out", judge_server.url, "--skip-invalid") == 0
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["invalid_rows_skipped"] == 2 and stats["judged"] == 7 and stats["rows_in"] == 7
    assert (
        "line 4: missing field 'completion'" in caplog.text
        and "line 5: field 'question' is empty" in caplog.text
    )


def test_unreachable_endpoint_is_reported_before_any_work(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", ROWS)
    start = time.perf_counter()
    assert cli(data, tmp_path / "out", f"http://127.0.0.1:{free_port()}/v1") == 2
    assert time.perf_counter() - start < 10
    assert "cannot reach endpoint http://127.0.0.1:" in caplog.text
    assert not (tmp_path / "out").exists()


def test_missing_key_variable(
    tmp_path: Path, judge_server: FakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", ROWS)
    os.environ.pop("COOPER_TEST_NO_KEY", None)
    assert cli(data, tmp_path / "out", judge_server.url, "--judge-key-env", "COOPER_TEST_NO_KEY") == 2
    assert "$COOPER_TEST_NO_KEY is not set" in caplog.text and judge_server.seen == []


# --- the Python API -------------------------------------------------------------------------------------


def test_api_accepts_plain_and_async_judges(tmp_path: Path) -> None:
    def by_hand(question: str, reference: str, completion: str) -> bool | None:
        return None if "GARBLE" in completion else f"{{{reference}}}" in completion

    stats = annotate(ROWS, by_hand, tmp_path / "sync")
    assert (stats["agreements"], stats["disagreements"], stats["abstentions"]) == (5, 1, 1)
    assert stats["endpoint"] is None

    class AsyncJudge:
        async def judge(self, question: str, reference: str, completion: str) -> bool | None:
            return True

    stats = annotate(ROWS, AsyncJudge(), tmp_path / "async", concurrency=3)
    assert (stats["kept_positive"], stats["kept_negative"], stats["disagreements"]) == (5, 0, 2)

    with pytest.raises(TypeError, match="expected True, False or None"):
        annotate(ROWS[:1], lambda q, r, c: "yes", tmp_path / "bad")


def test_api_validates_rows(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"row 1 \(id 'p2'\): field 'completion' is missing"):
        annotate(
            [ROWS[0], {k: v for k, v in ROWS[1].items() if k != "completion"}], lambda *a: True, tmp_path
        )
    with pytest.raises(DataError, match="duplicate id 'p1'"):
        annotate([ROWS[0], ROWS[0]], lambda *a: True, tmp_path)


def test_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["annotate", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--judge-url", "--judge-key-env", "--generator", "--retry-abstentions", "--skip-invalid"):
        assert option in text


# --- generator mode ---------------------------------------------------------------------------------------


def test_generator_mode_with_the_tiny_model(
    tmp_path: Path,
    judge_server: FakeEndpoint,
    caplog: pytest.LogCaptureFixture,
    one_torch_thread: None,
    tiny_paths: TinyPaths,
) -> None:
    paths = tiny_paths
    data = write_jsonl(
        tmp_path / "q.jsonl", [{k: r[k] for k in ("id", "question", "reference")} for r in ROWS[:3]]
    )
    out = tmp_path / "out"
    gen = ["--generator", str(paths.policy_dir), "--samples", "2", "--max-new-tokens", "8", "--seed", "1"]
    caplog.set_level(logging.INFO)
    assert cli(data, out, judge_server.url, *gen) == 0
    generated = read_jsonl(out / "generated.jsonl")
    assert sorted(r["id"] for r in generated) == ["n1-s0", "n1-s1", "p1-s0", "p1-s1", "p2-s0", "p2-s1"]
    assert all(isinstance(r["completion"], str) and r["row_id"] in ("p1", "p2", "n1") for r in generated)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["rows_in"] == 6 and stats["judged"] == 6 and stats["generator"]["completions"] == 6
    assert len(judge_server.chat_requests) == 6

    before = (out / "generated.jsonl").read_bytes()
    caplog.clear()
    assert cli(data, out, judge_server.url, *gen) == 0
    assert (out / "generated.jsonl").read_bytes() == before  # not regenerated
    assert "completions already in" in caplog.text
    assert len(judge_server.chat_requests) == 6


# --- a real OpenAI-compatible server: `transformers serve` with the tiny model ---------------------------


def verdict_model(policy_dir: Path, out_dir: Path) -> Path:
    """The tiny policy steered to reply "Final verdict: Yes" (1/4), "... No" (1/4) or "... Maybe" (1/2, an
    abstention). Its verdicts are noise; the test checks the plumbing."""
    return steer_model(
        policy_dir, out_dir, {f"Final verdict: {w}": p for w, p in (("Yes", 1), ("No", 1), ("Maybe", 2))}
    )


@pytest.mark.slow
def test_real_transformers_serve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tiny_paths: TinyPaths
) -> None:
    t0 = time.perf_counter()
    model = verdict_model(tiny_paths.policy_dir, tmp_path / "judge")
    with transformers_serve(model, tmp_path) as served:
        t_ready = time.perf_counter()
        rows = [
            {
                "id": f"r{i}",
                "question": f"What is {i} + {i}?",
                "reference": str(2 * i),
                "completion": f"{i} + {i} = {2 * i + i % 2}. The answer is \\boxed{{{2 * i + i % 2}}}.",
            }
            for i in range(1, 16)
        ]  # odd i: a wrong answer
        data = write_jsonl(tmp_path / "data.jsonl", rows)
        out = tmp_path / "out"
        url = served.url
        args = ["--judge-model", str(model), "--judge-temperature", "1.0", "--judge-max-tokens", "24"]
        args += [
            "--judge-concurrency",
            "1",
            "--judge-timeout",
            "30",
            "--judge-key-env",
            "COOPER_TEST_JUDGE_KEY",
        ]
        monkeypatch.setenv("COOPER_TEST_JUDGE_KEY", "sk-local-unused")  # sent, ignored by the server
        assert main(["annotate", "--data", str(data), "--out", str(out), "--judge-url", url, *args]) == 0
        t_first = time.perf_counter()
        stats = json.loads((out / "stats.json").read_text())
        judged = read_jsonl(out / "judged.jsonl")
        assert stats["endpoint"]["requests"] == 15 and stats["endpoint"]["failures"] == 0
        assert stats["judged"] == 15 == stats["agreements"] + stats["disagreements"] + stats["abstentions"]
        replies = {e["judge_reply"] for e in judged if e["outcome"] == "abstain"}
        assert replies <= {"Final verdict: Maybe"}, replies  # the model's third reply, strictly refused
        assert stats["agreements"] + stats["disagreements"] >= 1 and stats["abstentions"] >= 1
        kept = read_jsonl(out / "annotated.jsonl")
        assert all(r["label"] == (int(r["id"][1:]) % 2 == 0) for r in kept)  # label = the verifier's
        assert len(kept) == stats["agreements"]
        assert len(read_jsonl(out / "disagreements.jsonl")) == stats["disagreements"]

        assert main(["annotate", "--data", str(data), "--out", str(out), "--judge-url", url, *args]) == 0
        again = json.loads((out / "stats.json").read_text())
        assert again["endpoint"]["requests"] == 0 and again["judged"] == 15
        retry = [
            "annotate",
            "--data",
            str(data),
            "--out",
            str(out),
            "--judge-url",
            url,
            "--retry-abstentions",
        ]
        assert main([*retry, *args]) == 0
        retried = json.loads((out / "stats.json").read_text())
        assert retried["endpoint"]["requests"] == stats["abstentions"]
    log_path = served.log_path
    posts = log_path.read_text().count("POST /v1/chat/completions")
    assert posts == 15 + stats["abstentions"], log_path.read_text()[-2000:]
    timings = {
        "server_ready_s": round(t_ready - t0, 1),
        "first_run_s": round(t_first - t_ready, 1),
        "total_s": round(time.perf_counter() - t0, 1),
    }
    with capsys.disabled():
        counts = {k: stats[k] for k in ("agreements", "disagreements", "abstentions")}
        print(f"\nreal-server timings: {timings}; first-run outcomes: {counts}")
