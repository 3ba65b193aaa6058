"""User mistakes with ``cooper annotate``, driven through the command line as a user would.

A judge that never gives a verdict, a rerun into the same ``--out`` with another input, a missing
``--generator`` directory or an ``--out`` that is a file, and an endpoint whose ``/models`` fails with a 5xx:
each must be one clear message and the documented exit code, with nothing half-written in ``--out``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cooper.cli import main
from cooper.utils.endpoints import ChatClient, EndpointConfig, EndpointError
from cooper.utils.io import read_jsonl
from helpers_endpoint import FakeEndpoint, Reply, chat_body

SECRET = "sk-test-DO-NOT-LEAK-5xx-91b2"


def rows(n: int, prefix: str = "r") -> list[dict[str, Any]]:
    """``n`` rows whose completions are right for even i and wrong for odd i."""
    return [
        {
            "id": f"{prefix}{i}",
            "question": f"What is {i} + 1?",
            "reference": str(i + 1),
            "completion": f"The answer is \\boxed{{{i + 1 + i % 2}}}.",
        }
        for i in range(n)
    ]


def write_jsonl(path: Path, data: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
    return path


def grader(
    abstain: Callable[[str], bool] = lambda completion: False,
) -> Callable[[int, dict[str, Any]], Reply]:
    """A judge that compares the last ``\\boxed{}`` with the reference; rows where ``abstain(completion)``
    get a reply without a verdict line."""

    def respond(n: int, body: dict[str, Any]) -> Reply:
        user = body["messages"][-1]["content"]
        reference = user.split("Reference answer:\n", 1)[1].split("\n\nCompletion:", 1)[0].strip()
        completion = user.split("Completion:\n", 1)[1].split("\n\nCompare only", 1)[0]
        if abstain(completion):
            return Reply(body=chat_body("I think the answer is probably right."))
        yes = re.findall(r"\\boxed\{(.*?)\}", completion)[-1] == reference
        return Reply(body=chat_body(f"Final verdict: {'Yes' if yes else 'No'}"))

    return respond


@pytest.fixture
def judge() -> Iterator[FakeEndpoint]:
    with FakeEndpoint(grader()) as srv:
        yield srv


def annotate(data: Path | list[Path], out: Path, url: str, *extra: str) -> int:
    files = [str(p) for p in (data if isinstance(data, list) else [data])]
    args = ["annotate", "--data", *files, "--out", str(out), "--judge-url", url, "--judge-model", "fake"]
    return main([*args, "--judge-backoff", "0.01", *extra])


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def warnings(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


# --- 1. a judge that never gives a verdict ----------------------------------------------------------------


def test_a_judge_that_always_abstains_exits_3_and_says_what_to_do(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", rows(20))
    out = tmp_path / "out"
    verdicts = {"off": True}
    with FakeEndpoint(grader(lambda completion: verdicts["off"])) as srv:
        assert annotate(data, out, srv.url) == 3
        said = warnings(caplog)
        assert "abstained on all 20 rows" in said, said
        assert "--retry-abstentions" in said and "judge model" in said and "no row was kept" in said
        assert read_jsonl(out / "annotated.jsonl") == []
        stats = json.loads((out / "stats.json").read_text())
        assert (stats["abstentions"], stats["agreements"], stats["judge_failures"]) == (20, 0, 0)
        assert "abstentions" in capsys.readouterr().out  # the stats table is still printed

        caplog.clear()  # a plain rerun asks nothing again, and still says so
        assert annotate(data, out, srv.url) == 3
        assert len(srv.chat_requests) == 20 and "abstained on all 20 rows" in warnings(caplog)

        verdicts["off"] = False  # the judge fixed: --retry-abstentions asks again and keeps the rows
        caplog.clear()
        assert annotate(data, out, srv.url, "--retry-abstentions") == 0
        assert len(srv.chat_requests) == 40 and "abstained" not in warnings(caplog)
    assert len(read_jsonl(out / "annotated.jsonl")) == 20


def test_many_abstentions_are_warned_about_but_the_run_is_done(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", rows(10))
    with FakeEndpoint(grader(lambda completion: not completion.endswith("{1}."))) as srv:  # only r0 judged
        assert annotate(data, tmp_path / "out", srv.url) == 0
    said = warnings(caplog)
    assert "abstained on 9 of 10 judged rows" in said and "--retry-abstentions" in said, said
    assert len(read_jsonl(tmp_path / "out" / "annotated.jsonl")) == 1


def test_a_few_abstentions_are_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", rows(10))
    with FakeEndpoint(grader(lambda completion: completion.endswith("{1}."))) as srv:  # only r0 abstains
        assert annotate(data, tmp_path / "out", srv.url) == 0
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["abstentions"] == 1
    assert warnings(caplog) == ""


# --- 2. a rerun into the same --out with another input ------------------------------------------------------


def test_a_rerun_with_another_input_is_refused(
    tmp_path: Path, judge: FakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    first = write_jsonl(tmp_path / "first.jsonl", rows(4))
    out = tmp_path / "out"
    assert annotate(first, out, judge.url) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["data"][0]["path"] == str(first.resolve()) and len(record["data"][0]["sha256"]) == 64
    before, asked = snapshot(out), len(judge.seen)

    other = write_jsonl(tmp_path / "other.jsonl", rows(4, prefix="x"))
    caplog.clear()
    assert annotate(other, out, judge.url) == 2
    error = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert len(error.splitlines()) == 1 and "Traceback" not in error, error
    for needle in (str(out), str(first.resolve()), str(other.resolve()), "new --out", "delete"):
        assert needle in error, (needle, error)
    assert snapshot(out) == before and len(judge.seen) == asked  # nothing written, not even a preflight

    edited = tmp_path / "edited"  # the same file name, other content
    edited.mkdir()
    write_jsonl(edited / "first.jsonl", rows(5))
    assert annotate(edited / "first.jsonl", out, judge.url) == 2
    for settings in (["--judge-model", "another"], ["--column", "id=row_id"]):
        caplog.clear()
        assert annotate(first, out, judge.url, *settings) == 2
        assert str(out) in caplog.text and "new --out" in caplog.text
    assert snapshot(out) == before and len(judge.seen) == asked

    moved = tmp_path / "moved"  # the same file, copied elsewhere: the same rows, so it resumes
    moved.mkdir()
    shutil.copy(first, moved / "first.jsonl")
    assert annotate(moved / "first.jsonl", out, judge.url) == 0
    assert annotate(first, out, judge.url, "--retry-abstentions", "--judge-max-tokens", "64") == 0
    assert len(judge.chat_requests) == 4  # resumed: nothing judged twice
    assert json.loads((out / "stats.json").read_text())["judged"] == 4


def test_an_output_dir_from_before_the_record_is_resumed_with_a_warning(
    tmp_path: Path, judge: FakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", rows(4))
    out = tmp_path / "out"
    assert annotate(data, out, judge.url) == 0
    (out / "run.json").unlink()  # as written by an older cooper
    caplog.clear()
    assert annotate(data, out, judge.url) == 0
    assert "no run.json" in warnings(caplog) and (out / "run.json").is_file()
    assert len(judge.chat_requests) == 4


# --- 3. validate everything before writing anything ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["missing", "weightless"])
def test_a_missing_generator_writes_nothing(
    kind: str, tmp_path: Path, judge: FakeEndpoint, caplog: pytest.LogCaptureFixture, tiny_paths
) -> None:
    data = write_jsonl(
        tmp_path / "q.jsonl", [{k: r[k] for k in ("id", "question", "reference")} for r in rows(2)]
    )
    out = tmp_path / "out"
    generator = tmp_path / "no-such-model"
    if kind == "weightless":  # a config.json but no weights: the one model-directory check says so
        shutil.copytree(tiny_paths.policy_dir, generator)
        for f in generator.glob("*.safetensors"):
            f.unlink()
    assert annotate(data, out, judge.url, "--generator", str(generator)) == 2
    assert str(generator) in caplog.text and "Traceback" not in caplog.text
    if kind == "weightless":
        assert "no weights (no *.safetensors file)" in caplog.text, caplog.text
    assert not out.exists(), sorted(p.name for p in out.iterdir())
    assert judge.seen == []  # reported before the endpoint is even asked


def test_an_out_that_is_a_file_is_refused_before_any_work(
    tmp_path: Path, judge: FakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", rows(2))
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    assert annotate(data, out, judge.url) == 2
    assert f"--out {str(out)!r} cannot be an output directory: it is a file" in caplog.text, caplog.text
    assert out.read_text() == "precious\n" and judge.seen == []
    assert annotate(data, out / "sub", judge.url) == 2  # a file above it: the same clear error
    assert "its parent" in caplog.text and judge.seen == []


# --- 4. an endpoint whose /models fails with a 5xx ---------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
def test_preflight_fails_on_a_5xx_after_the_retries(status: int, monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def fast_sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    with FakeEndpoint(grader(), models_status=status) as srv:
        url = srv.url.replace("http://", f"http://user:{SECRET}@")  # a key pasted into the URL
        config = EndpointConfig(url=url, model="fake", max_retries=2, backoff_s=0.5, timeout_s=5)
        with pytest.raises(EndpointError) as err:
            ChatClient(config, sleep=fast_sleep).preflight()
        assert [s.path for s in srv.seen] == ["/v1/models"] * 3
        assert srv.chat_requests == []
    message = str(err.value)
    assert f"HTTP {status}" in message and "3 attempt" in message and SECRET not in message, message
    assert f"http://***@127.0.0.1:{srv.port}/v1" in message
    assert waits == [0.5, 1.0]


def test_annotate_against_a_failing_server_exits_2_before_any_work(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", rows(3))
    with FakeEndpoint(grader(), models_status=502) as srv:
        assert annotate(data, tmp_path / "out", srv.url, "--judge-retries", "1") == 2
        assert srv.chat_requests == [] and len(srv.seen) == 2
    assert "HTTP 502" in caplog.text and srv.url in caplog.text
    assert not (tmp_path / "out").exists()
