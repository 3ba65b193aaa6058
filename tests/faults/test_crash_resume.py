"""Crash and resume: ``cooper train`` / ``annotate`` / ``eval`` are SIGKILLed mid-run and run again.

Every kill is a real ``SIGKILL`` of a ``python -m cooper.cli`` child, aimed by polling its outputs (see
``killer.py``): while the Trainer writes a checkpoint, while cooper writes its RM state into it, and between
two checkpoints. After each kill the next run (``--resume``) must start from the newest *complete* checkpoint
(skipping torn ones with a warning) and the finished run must hold every step / row exactly once.
"""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from cooper.utils.io import read_jsonl
from cooper.utils.tiny import TinyPaths
from faults.killer import Child, complete_lines
from helpers_data import write_train_config

pytestmark = pytest.mark.slow


# --- train ----------------------------------------------------------------------------------------------


def _checkpoints(out: Path) -> tuple[list[int], list[int]]:
    """(complete, torn) checkpoint steps, judged independently of cooper.rl.train: a complete checkpoint has
    the Trainer's state and cooper's completion marker."""
    complete, torn = [], []
    for d in out.glob("checkpoint-*"):
        ok = (d / "trainer_state.json").is_file() and (d / "cooper_rm" / "COMPLETE").is_file()
        (complete if ok else torn).append(int(d.name.split("-")[1]))
    return sorted(complete), sorted(torn)


def _metric_steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def _resumed_from(log: str) -> int | None:
    m = re.search(r"resuming from (\S+) \(step (\d+)\)", log)
    if m is None:
        return None
    assert Path(m.group(1)).name == f"checkpoint-{m.group(2)}", m.group(0)
    return int(m.group(2))


def test_train_killed_during_and_between_checkpoint_writes_resumes_without_gaps(
    tiny_paths: TinyPaths, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    max_steps = 8
    config = write_train_config(
        tmp_path / "c.yaml",
        out,
        policy=tiny_paths.policy_dir,
        rm=tiny_paths.rm_dir,
        max_steps=max_steps,
        save_steps=2,
    )

    def ckpt(name: str) -> Path:
        return out / name

    def metrics_rows() -> int:
        return len(complete_lines(out / "metrics.jsonl"))

    # (what the kill aims at, the condition that fires it): one chain, each run resuming the last one
    trials = [
        ("the Trainer writing checkpoint-4", lambda child: ckpt("checkpoint-4").is_dir()),
        (
            "cooper writing its RM state into checkpoint-6",
            lambda child: ckpt("checkpoint-6/.cooper_rm.tmp").is_dir(),
        ),
        # once metrics.jsonl has been cut back to the resumed step (logged right after), and step 7 is done
        (
            "step 7, between checkpoints 6 and 8",
            lambda child: "resuming from" in child.log and metrics_rows() >= 7,
        ),
    ]
    hit: dict[str, int] = {"during": 0, "between": 0}
    kept: dict[int, str] = {}  # metrics lines of steps that a resume keeps: they must never change
    for i, (aim, condition) in enumerate([*trials, ("nothing (run to the end)", None)]):
        complete, torn = _checkpoints(out)
        resume = i > 0
        child = Child(["train", str(config), *(["--resume"] if resume else [])], tmp_path / f"train{i}.log")
        if condition is None:
            assert child.wait() == 0, child.log[-3000:]
        else:
            assert child.kill_when(partial(condition, child)), (
                f"run {i} ended before the kill at {aim}:\n{child.log[-3000:]}"
            )
        log = child.log
        if resume:  # the run started from the newest complete checkpoint and said why it skipped torn ones
            assert _resumed_from(log) == max(complete), (aim, complete, torn, log[-3000:])
            for step in torn:
                assert f"skipping incomplete checkpoint {ckpt(f'checkpoint-{step}')}" in log
        if condition is None:
            break
        # what the kill left: checkpoints newer than the newest complete one are torn ("during" a write)
        complete, torn = _checkpoints(out)
        rows = metrics_rows()
        hit["during" if torn and max(torn) > max(complete, default=0) else "between"] += 1
        assert rows >= max(complete, default=0), "a checkpoint was written before its step's metrics row"
        lines = complete_lines(out / "metrics.jsonl")
        kept.update({s: lines[s - 1] for s in range(1, max(complete, default=0) + 1)})

    assert hit["during"] >= 1 and hit["between"] >= 1, f"the kills missed their windows: {hit}"
    assert _metric_steps(out) == list(range(1, max_steps + 1))
    final = (out / "metrics.jsonl").read_text().splitlines()
    assert all(final[s - 1] == line for s, line in kept.items()), "a finished step's metrics row changed"
    assert _checkpoints(out) == ([2, 4, 6, 8], [])
    assert not list(out.glob("checkpoint-*/.cooper_rm.tmp")), "a temporary RM state was left behind"
    assert json.loads((out / "summary.json").read_text())["steps"] == max_steps
    assert (out / "reward_model" / "model.safetensors").is_file()


def test_torn_checkpoints_are_skipped_with_a_warning(tiny_paths: TinyPaths, tmp_path: Path) -> None:
    """Rule mode (no RM) writes the completion marker too; a checkpoint without it, or with a torn
    trainer_state.json, is skipped and the previous complete one is used; a torn metrics line is dropped."""
    out = tmp_path / "run"
    config = write_train_config(
        tmp_path / "c.yaml",
        out,
        policy=tiny_paths.policy_dir,
        rm=tiny_paths.rm_dir,
        mode="rule",
        max_steps=3,
        save_steps=1,
    )
    first = Child(["train", str(config)], tmp_path / "first.log")
    assert first.wait() == 0, first.log[-3000:]
    assert _checkpoints(out) == ([1, 2, 3], [])
    # checkpoint-3: killed while cooper wrote its state (no marker, a temporary directory left behind)
    (out / "checkpoint-3" / "cooper_rm").rename(out / "checkpoint-3" / ".cooper_rm.tmp")
    (out / "checkpoint-3" / ".cooper_rm.tmp" / "COMPLETE").unlink()
    # checkpoint-2: its trainer_state.json cut short (e.g. lost on power failure) although marked complete
    state = out / "checkpoint-2" / "trainer_state.json"
    state.write_bytes(state.read_bytes()[:40])
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"step": 4, "reward/rule_')  # a torn last line

    second = Child(["train", str(config), "--resume", "--grpo.max_steps", "4"], tmp_path / "second.log")
    assert second.wait() == 0, second.log[-3000:]
    log = second.log
    assert _resumed_from(log) == 1, log[-3000:]
    for step in (2, 3):
        assert re.search(rf"WARNING .*skipping incomplete checkpoint \S*checkpoint-{step}\b", log), log[
            -3000:
        ]
    assert _metric_steps(out) == [1, 2, 3, 4]
    assert _checkpoints(out) == ([1, 2, 3, 4], [])


def test_checkpoint_rotation_keeps_a_complete_checkpoint_through_a_crash(
    tiny_paths: TinyPaths, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    config = write_train_config(
        tmp_path / "c.yaml",
        out,
        policy=tiny_paths.policy_dir,
        rm=tiny_paths.rm_dir,
        max_steps=4,
        save_steps=1,
    )
    child = Child(["train", str(config), "--grpo.save_total_limit", "1"], tmp_path / "train.log")
    if not child.kill_when(lambda: (out / "checkpoint-3" / ".cooper_rm.tmp").is_dir()):
        pytest.fail(f"the run ended before the kill:\n{child.log[-3000:]}")  # not the expected failure
    assert _checkpoints(out)[0], "no complete checkpoint left to resume from"
    resumed = Child(
        ["train", str(config), "--grpo.save_total_limit", "1", "--resume"], tmp_path / "resume.log"
    )
    assert resumed.wait() == 0, resumed.log[-3000:]
    assert _metric_steps(out) == [1, 2, 3, 4]
    assert _checkpoints(out) == ([4], [])  # rotation kept the newest complete checkpoint only


# --- annotate -------------------------------------------------------------------------------------------


def _judge_rows(n: int) -> list[dict[str, Any]]:
    """Rows the verifier and a string-matching judge agree on (even i) and disagree on (i % 3 == 0)."""
    rows = []
    for i in range(n):
        answer = i if i % 2 == 0 else i + 1
        note = " DISAGREE" if i % 3 == 0 else ""
        completion = f"So the answer is \\boxed{{{answer}}}.{note}"
        rows.append(
            {"id": f"r{i:02d}", "question": f"What is {i}?", "reference": str(i), "completion": completion}
        )
    return rows


def _judge(delay: dict[str, float]) -> Any:
    from helpers_endpoint import Reply, chat_body

    def respond(n: int, body: dict[str, Any]) -> Reply:
        if "messages" not in body:  # a request torn by the kill: its client is gone
            return Reply(400, {"error": {"message": "no messages"}})
        user = body["messages"][-1]["content"]
        reference = user.split("Reference answer:\n", 1)[1].split("\n\nCompletion:", 1)[0].strip()
        completion = user.split("Completion:\n", 1)[1].split("\n\nCompare only", 1)[0]
        yes = re.findall(r"\\boxed\{(.*?)\}", completion)[-1] == reference
        yes = not yes if "DISAGREE" in completion else yes
        return Reply(body=chat_body(f"Final verdict: {'Yes' if yes else 'No'}"), delay_s=delay["s"])

    return respond


def test_annotate_killed_mid_run_loses_and_repeats_no_row(tmp_path: Path) -> None:
    from cooper.cli import main
    from helpers_endpoint import FakeEndpoint

    rows = _judge_rows(40)
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out, reference_out = tmp_path / "out", tmp_path / "reference"
    outputs = ("annotated.jsonl", "disagreements.jsonl", "judged.jsonl")
    delay = {"s": 0.05}
    with FakeEndpoint(_judge(delay)) as srv:
        args = ["annotate", "--data", str(data), "--judge-url", srv.url, "--judge-model", "fake"]
        args += ["--judge-concurrency", "2"]
        child = Child([*args, "--out", str(out)], tmp_path / "annotate.log")
        assert child.kill_when(lambda: len(complete_lines(out / "judged.jsonl")) >= 10), child.log[-3000:]
        before = {name: complete_lines(out / name) for name in outputs}
        finished = {json.loads(line)["id"] for lines in before.values() for line in lines}
        assert 10 <= len(finished) < len(rows)
        # a write torn by the crash: half of the line of a row not judged yet
        torn_row = next(r for r in rows if r["id"] not in finished)
        with (out / "annotated.jsonl").open("a") as f:
            f.write(json.dumps({**torn_row, "label": 1})[:30])

        delay["s"] = 0.0
        srv.wait_idle()  # the killed child's last request may reach the server after its death
        asked_before = len(srv.chat_requests)
        assert main([*args, "--out", str(out)]) == 0
        asked_on_rerun = len(srv.chat_requests) - asked_before
        assert main([*args, "--out", str(reference_out)]) == 0  # the same rows, never interrupted

    assert asked_on_rerun == len(rows) - len(finished), "finished rows were judged again (or some skipped)"
    for name in outputs:
        lines = (out / name).read_text().splitlines()
        assert lines[: len(before[name])] == before[name], f"{name}: a finished row was lost or changed"
        ids = [json.loads(line)["id"] for line in lines]  # every line parses: the torn one is gone
        assert len(ids) == len(set(ids)), f"{name}: repeated rows"

        def by_id(path: Path) -> dict[str, Any]:
            return {r["id"]: r for r in read_jsonl(path)}

        assert by_id(out / name) == by_id(reference_out / name), name
    stats = json.loads((out / "stats.json").read_text())
    assert stats["judged"] == len(rows) and stats["judged_this_run"] == len(rows) - len(finished)


# --- eval -----------------------------------------------------------------------------------------------


def test_eval_resume_after_a_kill_keeps_every_finished_sample(tiny_paths: TinyPaths, tmp_path: Path) -> None:
    problems = tmp_path / "sums.jsonl"
    problems.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "question": f"What is {i} + 1?", "reference": str(i + 1)}) + "\n"
            for i in range(8)
        )
    )
    n, total = 2, 16
    args = ["eval", "--model", str(tiny_paths.policy_dir), "--data", str(problems), "--n", str(n)]
    args += ["--max-new-tokens", "24", "--batch-size", "1", "--device", "cpu"]
    out, reference_out = tmp_path / "out", tmp_path / "reference"
    samples = out / "samples.jsonl"

    child = Child([*args, "--out", str(out)], tmp_path / "eval.log")
    assert child.kill_when(lambda: len(complete_lines(samples)) >= 5), child.log[-3000:]
    before = complete_lines(samples)
    assert 5 <= len(before) < total
    assert json.loads((out / "results.json").read_text())["status"] == "running"
    with samples.open("a") as f:
        f.write('{"id": "sums/q7/1", "benchmark": "su')  # a torn last line

    resumed = Child([*args, "--out", str(out), "--resume"], tmp_path / "resumed.log")
    assert resumed.wait() == 0, resumed.log[-3000:]
    reference = Child([*args, "--out", str(reference_out)], tmp_path / "reference.log")
    assert reference.wait() == 0, reference.log[-3000:]

    lines = samples.read_text().splitlines()
    assert lines[: len(before)] == before, "a finished sample was lost or changed"
    ids = [json.loads(line)["id"] for line in lines]
    assert len(ids) == total and len(set(ids)) == total, "samples missing or repeated"
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "complete"
    bench = results["benchmarks"]["sums"]
    assert bench["samples_generated"] == total - len(before) and bench["n_samples"] == total
    # each sample is seeded by its id: the resumed run has exactly the samples of an uninterrupted one
    expected = {r["id"]: r["completion"] for r in read_jsonl(reference_out / "samples.jsonl")}
    assert {r["id"]: r["completion"] for r in read_jsonl(samples)} == expected
    assert (
        results["benchmarks"]["sums"]["mean_accuracy"]
        == json.loads((reference_out / "results.json").read_text())["benchmarks"]["sums"]["mean_accuracy"]
    )
