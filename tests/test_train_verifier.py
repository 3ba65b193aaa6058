"""``reward.verifier``: ``cooper train`` (and ``cooper.RewardFunction``) with a verifier of the user's choice.

A user's verifier (``path/to/file.py:function``, written to tmp_path) is given the data file's other columns
as row fields; it decides ``reward/rule_accuracy``, the rule-mode reward and, in mode ``cooper``, which
negatives are valid. One that raises stops ``cooper train`` with exit 2 naming it; an unknown one stops it
before any model is loaded; ``--resume`` refuses a checkpoint made with another verifier.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

import cooper
from cooper.rl.build import build_dataset
from cooper.rl.negatives import NegativeRequest, make_negatives
from cooper.verify import VerifierError
from helpers_cli import run_cli
from helpers_data import DIGITS, DIGITS_INSTRUCTION, write_user_verifiers


def _run(argv: list, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    return run_cli(argv, caplog, capsys)


def _lines(path: Path) -> list[dict]:
    return (
        [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []
    )


@pytest.fixture
def verifiers(tmp_path: Path) -> Path:
    return write_user_verifiers(tmp_path)


@pytest.fixture
def digits_with_columns(tmp_path: Path):
    """``make(verdict)``: the digits task with three more columns (``verdict``, ``log``, ``answer_type``) in
    tmp_path; returns (data file, the log file the ``check`` verifier appends to)."""

    def make(verdict: str = "yes") -> tuple[Path, Path]:
        log = tmp_path / "verifier-calls.jsonl"
        rows = [json.loads(line) for line in DIGITS.read_text().splitlines()]
        data = tmp_path / "digits-plus.jsonl"
        extra = {"verdict": verdict, "log": str(log), "answer_type": "numeric"}
        data.write_text("".join(json.dumps({**r, **extra}) + "\n" for r in rows), encoding="utf-8")
        return data, log

    return make


@pytest.fixture
def train_config(tmp_path: Path, request: pytest.FixtureRequest):
    """``make(mode, verifier, data)`` writes a YAML config for a 2-step run on the digits task into tmp_path
    (``verifier`` as written there: a relative file is read against the config's folder); with ``models=False``
    the offline "tiny" ones, for runs that stop before any model is built."""

    def make(mode: str, verifier: str, data: Path, *, models: bool = True) -> Path:
        policy = str(request.getfixturevalue("digits_policy")) if models else "tiny"
        rm = str(request.getfixturevalue("tiny_paths").rm_dir) if models else "tiny"
        tree = {
            "output_dir": str(tmp_path / "run"),
            "policy": policy,
            "data": {"files": [str(data)], "limit": 8, "instruction": DIGITS_INSTRUCTION},
            "reward": {"mode": mode, "rm": rm, "rm_max_length": 128, "verifier": verifier},
            "monitor": {"plot": False},
            "grpo": {
                "max_steps": 2,
                "save_steps": 2,
                "per_device_train_batch_size": 8,
                "num_generations": 4,
                "max_completion_length": 8,
                "beta": 0.0,
            },
        }
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(tree), encoding="utf-8")
        return path

    return make


# -- end to end through `cooper train` -------------------------------------------------------------------------
@pytest.mark.slow
def test_train_in_mode_rule_is_paid_by_a_user_verifier_with_the_data_columns(
    train_config, digits_with_columns, verifiers, tmp_path, caplog, capsys
):
    data, calls = digits_with_columns("yes")
    cfg = train_config("rule", "my_verifiers.py:check", data)  # relative to the config's folder
    rc, text = _run(["train", cfg], caplog, capsys)
    assert rc == 0, text
    run = tmp_path / "run"
    rows = _lines(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    # the verifier says "yes" from the data's verdict column: every completion is correct and paid 1
    assert all(r["reward/rule_accuracy"] == 1.0 for r in rows), rows
    assert all(r["reward/policy_reward_mean"] == 1.0 for r in rows), rows
    seen = _lines(calls)
    assert len(seen) == 2 * 8  # 2 steps x 2 prompts x 4 rollouts, each verified once
    refs = {json.loads(line)["reference"] for line in DIGITS.read_text().splitlines()}
    assert all(c["verdict"] == "yes" and c["reference"] in refs for c in seen)
    assert all(c["fields"] == ["answer_type"] for c in seen), seen[0]  # no TRL bookkeeping among them
    config = json.loads((run / "config.json").read_text())
    assert config["reward"]["verifier"] == f"{verifiers}:check"
    identity = json.loads((run / "checkpoint-2" / "cooper_rm" / "run.json").read_text())
    assert identity["reward.verifier"] == f"{verifiers}:check"

    # the verifier defines the run: resuming its checkpoint with another one is refused, nothing trained
    rc, text = _run(["train", cfg, "--resume", "--reward.verifier", "math"], caplog, capsys)
    assert rc == 2 and "reward.verifier" in text and "'math'" in text, text
    assert len(_lines(run / "metrics.jsonl")) == 2


@pytest.mark.slow
def test_train_in_mode_cooper_judges_rollouts_and_negatives_with_the_user_verifier(
    train_config, digits_with_columns, verifiers, tmp_path, caplog, capsys
):
    data, calls = digits_with_columns("yes")
    rc, text = _run(["train", train_config("cooper", f"{verifiers}:check", data)], caplog, capsys)
    assert rc == 0, text
    run = tmp_path / "run"
    rows = _lines(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["reward/rule_accuracy"] == 1.0 for r in rows), rows
    assert all("reward/rm_mean" in r and "reward/hacking_gap" in r for r in rows)
    assert all(r["rm/groups_with_positive"] == 2 for r in rows)  # every group has a verified positive
    totals = json.loads((run / "summary.json").read_text())["totals"]
    # The negatives are judged by the same verifier: it calls every perturbed answer correct, so none is
    # kept (the math verifier would keep them), and no rollout is wrong, so the policy source has none.
    assert totals.get("negatives/perturb_rejected", 0) > 0, totals
    assert totals.get("negatives/perturb", 0) == 0 and totals.get("negatives/policy", 0) == 0, totals
    assert len(_lines(calls)) > 2 * 8  # the rollouts, then the negative candidates


@pytest.mark.slow
def test_a_user_verifier_that_raises_stops_train_with_exit_2_naming_it(
    train_config, digits_with_columns, verifiers, caplog, capsys
):
    data, _ = digits_with_columns()
    rc, text = _run(["train", train_config("rule", f"{verifiers}:boom", data)], caplog, capsys)
    assert rc == 2, text
    assert f"{verifiers}:boom" in text and "raised RuntimeError: my verifier broke" in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", "unknown verifier 'nope'"),
        ("missing.py:check", "missing.py"),
        ("my_verifiers.py:no_such_function", "has no function 'no_such_function'"),
    ],
)
def test_an_unusable_verifier_stops_train_before_any_model_loads(
    spec, message, train_config, digits_with_columns, verifiers, tmp_path, monkeypatch, caplog, capsys
):
    from cooper.rl import train as train_module

    def no_models(cfg):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(train_module, "resolve_models", no_models)
    data, _ = digits_with_columns()
    rc, text = _run(["train", train_config("cooper", spec, data, models=False)], caplog, capsys)
    assert rc == 2 and "VerifierError" in text and message in text, text
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


# -- the pieces: the dataset's columns, the reward callable, the negatives -------------------------------------
def test_the_dataset_carries_the_columns_every_row_has_with_one_type(caplog):
    rows = [
        {
            "id": "a",
            "question": "q",
            "reference": "1",
            "source": "f",
            "answer_type": "numeric",
            "n": 1,
            "x": 1,
        },
        {"id": "b", "question": "q", "reference": "2", "source": "f", "answer_type": None, "n": 2, "x": "2"},
        {
            "id": "c",
            "question": "q",
            "reference": "3",
            "source": "f",
            "answer_type": "string",
            "n": 3,
            "x": 3,
            "y": 0,
        },
    ]
    with caplog.at_level(logging.WARNING):
        ds = build_dataset(rows, "Answer.")
    assert ds.column_names == ["prompt", "question", "reference", "id", "answer_type", "n"]
    assert ds["answer_type"] == ["numeric", None, "string"] and ds["n"] == [1, 2, 3]
    assert "'x' mixes types" in caplog.text and "['y'] are not in every row" in caplog.text
    plain = build_dataset([{"id": 1, "question": "q", "reference": "1", "source": "f"}], "Answer.")
    assert plain.column_names == ["prompt", "question", "reference", "id"]  # as before: no extra columns


def test_the_reward_function_passes_the_data_columns_to_its_verifier(verifiers, tmp_path):
    log = tmp_path / "calls.jsonl"
    reward = cooper.RewardFunction("rule", verifier=f"{verifiers}:check")
    n = 4
    rewards = reward(
        ["q"] * n,
        ["The answer is 1."] * n,
        reference=["1"] * n,
        question=["q"] * n,
        id=["a", "a", "b", "b"],
        verdict=["yes", "no", "no", "yes"],
        log=[str(log)] * n,
        answer_type=["numeric"] * n,
        completion_ids=[[1, 2]] * n,  # TRL's own arguments are not row fields
        trainer_state=SimpleNamespace(global_step=1),
        log_extra=lambda *a: None,
    )
    assert rewards == [1.0, 0.0, 0.0, 1.0]
    assert reward.last.metrics["reward/rule_accuracy"] == 0.5
    assert [c["fields"] for c in _lines(log)] == [["answer_type"]] * n

    # the built-in verifiers read answer_type: "\boxed{1000}" is 10^3 as maths, not as a string
    math = cooper.RewardFunction("rule")
    assert math(["q"], ["\\boxed{1000}"], reference=["10^3"]) == [1.0]
    assert math(["q"], ["\\boxed{1000}"], reference=["10^3"], answer_type=["string"]) == [0.0]
    with pytest.raises(VerifierError, match="unknown verifier 'nope'"):
        cooper.RewardFunction("rule", verifier="nope")


def test_negatives_are_judged_by_the_run_verifier(verifiers):
    def source(requests, rng):
        return ["The answer is 9." for _ in requests]

    reqs = [
        NegativeRequest("q", "5", "The answer is 5.", [], {"verdict": "yes"}),  # the verifier: correct
        NegativeRequest("q", "5", "The answer is 5.", [], {"verdict": "no"}),  # the verifier: wrong
    ]
    made, counts = make_negatives(reqs, ["s"], {"s": source}, random.Random(0), verifier=f"{verifiers}:check")
    assert made == [None, ("The answer is 9.", "s")]
    assert counts == {"negatives/s_rejected": 1, "negatives/s": 1, "negatives/none": 1}
    made, _ = make_negatives(reqs, ["s"], {"s": source}, random.Random(0))  # math: 9 is wrong for both
    assert made == [("The answer is 9.", "s")] * 2
