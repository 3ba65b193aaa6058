"""Tests for VerifyRM pre-training (`cooper train-rm`), evaluation (`cooper eval-rm`) and cooper.rm.metrics."""

from __future__ import annotations

import json
import logging
import math
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from cooper.cli import main
from cooper.data.rows import parse_columns
from cooper.rm.data import parse_label
from cooper.rm.evaluate import evaluate_rm, judge_table, markdown
from cooper.rm.metrics import binary_metrics, roc_auc, score_metrics
from cooper.rm.model import VerifyRM
from cooper.rm.pretrain import RMTrainConfig, bce_loss, train_rm
from cooper.utils.tiny import TinyPaths
from helpers_data import write_user_verifiers
from helpers_precision import TrainingSetup, computed_dtypes, linear_outputs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def digit_rows(n: int, seed: int = 0, positive: float = 0.4) -> list[dict]:
    """Learnable rows: the completion is correct iff its digit equals the reference digit."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        ref = rng.randint(0, 9)
        pos = rng.random() < positive
        x = ref if pos else rng.choice([d for d in range(10) if d != ref])
        rows.append(
            {
                "question": "Digit?",
                "reference": str(ref),
                "completion": f"The answer is {x}",
                "label": int(pos),
            }
        )
    return rows


# --------------------------------------------------------------------------- metrics


def test_roc_auc_matches_pairwise_count_with_ties() -> None:
    rng = random.Random(0)
    for trial in range(60):
        n = rng.randint(2, 40)
        scores = [rng.choice([0.1, 0.2, 0.5, 0.5, 0.7, 0.9]) if trial % 2 else rng.random() for _ in range(n)]
        labels = [rng.random() < 0.4 for _ in range(n)]
        pos = [s for s, y in zip(scores, labels, strict=True) if y]
        neg = [s for s, y in zip(scores, labels, strict=True) if not y]
        if not pos or not neg:
            assert roc_auc(scores, labels) is None
            continue
        wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
        assert roc_auc(scores, labels) == pytest.approx(wins / (len(pos) * len(neg)), abs=1e-12)


def test_roc_auc_edge_cases() -> None:
    assert roc_auc([0.1, 0.2, 0.9], [1, 1, 1]) is None
    assert roc_auc([0.1, 0.2], [0, 0]) is None
    assert roc_auc([], []) is None
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0
    assert roc_auc([0.5] * 4, [0, 1, 0, 1]) == 0.5
    with pytest.raises(ValueError):
        roc_auc([0.1, 0.2], [1])


def test_binary_metrics_hand_computed() -> None:
    preds = [True, True, False, False, True, False, True]
    labels = [1, 0, 1, 0, 1, 0, 0]
    m = binary_metrics(preds, labels)
    assert (m["tp"], m["fp"], m["fn"], m["tn"], m["n"]) == (2, 2, 1, 2, 7)
    assert m["accuracy"] == pytest.approx(4 / 7)
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(4 / 7)
    none_predicted = binary_metrics([False, False], [1, 0])
    assert (none_predicted["precision"], none_predicted["recall"], none_predicted["f1"]) == (0.0, 0.0, 0.0)
    assert none_predicted["accuracy"] == 0.5
    with pytest.raises(ValueError, match="3 predictions but 2 labels"):
        binary_metrics([True] * 3, [1, 0])


def test_score_metrics() -> None:
    m = score_metrics([0.9, 0.5, 0.2, 0.49, 0.7], [1, 0, 0, 0, 1])
    assert m["majority_baseline"] == pytest.approx(3 / 5)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 0, 2)  # 0.5 >= threshold counts as positive
    assert m["roc_auc"] == 1.0
    assert score_metrics([0.9, 0.5], [1, 0], threshold=0.95)["tp"] == 0
    assert score_metrics([0.3], [1])["roc_auc"] is None


# --------------------------------------------------------------------------- parsing and config


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (1, 1), (0.0, 0), (1.0, 1), (True, 1), (False, 0), ("true", 1), ("False", 0)]
    + [("0", 0), ("1", 1), (" yes ", 1), ("incorrect", 0)],
)
def test_parse_label_accepts(value, expected) -> None:
    assert parse_label(value) == expected
    assert type(parse_label(value)) is int


@pytest.mark.parametrize("value", [2, -1, 0.5, float("nan"), "maybe", "", "2", None, [1], {"x": 1}])
def test_parse_label_rejects(value) -> None:
    with pytest.raises(ValueError, match="label must be 0/1 or true/false"):
        parse_label(value)


def test_parse_columns() -> None:
    assert parse_columns(None) == {}
    assert parse_columns(["reference_answer=reference", "correct=label"]) == {
        "reference_answer": "reference",
        "correct": "label",
    }
    assert parse_columns(["a=b=c"]) == {"a": "b=c"}
    for bad in ("reference", "=reference", "reference_answer="):
        with pytest.raises(ValueError, match="THEIRS=OURS"):
            parse_columns([bad])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("data", [], "at least one --data"),
        ("eval_split", 1.0, "eval_split"),
        ("eval_split", -0.1, "eval_split"),
        ("epochs", 0, "epochs must be > 0"),
        ("learning_rate", -1e-5, "learning_rate must be > 0"),
        ("batch_size", 0, "batch_size must be > 0"),
        ("grad_accum", 0, "grad_accum must be > 0"),
        ("max_length", 0, "max_length must be > 0"),
        ("threshold", 0.0, "threshold"),
        ("threshold", 1.0, "threshold"),
    ],
)
def test_config_validation(field, value, message) -> None:
    kwargs = {"data": ["rows.jsonl"], "out": "out", field: value}
    with pytest.raises(ValueError, match=message):
        RMTrainConfig(**kwargs)


def test_bce_loss() -> None:
    logits = torch.tensor([[2.0], [-1.0], [0.5], [0.0]])
    labels = torch.tensor([1.0, 0.0, 0.0, 1.0])
    expected = -(
        torch.log(torch.sigmoid(logits[0, 0]))
        + torch.log(1 - torch.sigmoid(logits[1, 0]))
        + torch.log(1 - torch.sigmoid(logits[2, 0]))
        + torch.log(torch.sigmoid(logits[3, 0]))
    )
    out = SimpleNamespace(logits=logits)
    assert bce_loss(out, labels).item() == pytest.approx(expected.item() / 4, rel=1e-6)
    # Over a gradient-accumulated batch of 10 items: this micro-batch's sum over the whole count.
    assert bce_loss(out, labels, num_items_in_batch=torch.tensor(10)).item() == pytest.approx(
        expected.item() / 10, rel=1e-6
    )


# --------------------------------------------------------------------------- training


def test_split_keeps_rows_on_both_sides() -> None:
    from cooper.rm.pretrain import _split

    rows = [{"i": i} for i in range(10)]
    train, held_out = _split(rows, 0.2, seed=0)
    assert (len(train), len(held_out)) == (8, 2)
    assert sorted(r["i"] for r in train + held_out) == list(range(10))
    assert _split(rows, 0.2, seed=0) == (train, held_out)  # deterministic
    assert _split(rows, 0.0, seed=0) == (rows, [])
    for n, frac in ((2, 0.9), (3, 0.99), (2, 0.01)):
        train, held_out = _split(rows[:n], frac, seed=0)
        assert len(train) >= 1 and len(held_out) >= 1 and len(train) + len(held_out) == n


@pytest.mark.slow
def test_train_rm_learns_the_reference_comparison(tiny_paths: TinyPaths, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", digit_rows(800))
    out = tmp_path / "rm"
    cfg = RMTrainConfig(
        data=[str(data)],
        out=str(out),
        model=str(tiny_paths.rm_dir),
        # The comparison is learnt in a jump after a plateau; 16 epochs leave margin (here data seeds 0-2 all
        # reach >= 0.88 accuracy, seed 0 about 0.97; at 12 epochs one seed in three stays on the plateau).
        epochs=16,
        learning_rate=2e-3,
        batch_size=16,
        max_length=96,
        eval_split=0.2,
        save_steps=10_000,
    )
    metrics = train_rm(cfg)
    assert (metrics["train_rows"], metrics["eval_rows"], metrics["skipped_rows"]) == (640, 160, 0)
    assert metrics["majority_baseline"] == pytest.approx(0.6, abs=0.06)
    assert metrics["accuracy"] >= metrics["majority_baseline"] + 0.08, metrics
    assert metrics["roc_auc"] > 0.7, metrics
    # The output directory: a loadable model with its template settings, the metrics and the config.
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(metrics)
    saved_cfg = json.loads((out / "train_rm_config.json").read_text())
    assert saved_cfg["learning_rate"] == 2e-3 and saved_cfg["max_length"] == 96
    assert saved_cfg["data"] == [str(data)]
    assert json.loads((out / "cooper_rm.json").read_text())["max_length"] == 96
    assert (out / "model.safetensors").is_file() and not (out / "pytorch_model.bin").exists()
    rm = VerifyRM.from_pretrained(out, device="cpu")
    assert rm.max_length == 96
    fresh = digit_rows(200, seed=99)
    probs = rm.score(*([r[k] for r in fresh] for k in ("question", "reference", "completion")))
    assert roc_auc(probs, [r["label"] for r in fresh]) > 0.7


@pytest.mark.parametrize("group", [False, True])
def test_group_by_length_batches_rows_of_similar_length(
    group: bool, monkeypatch: pytest.MonkeyPatch, tiny_paths: TinyPaths, tmp_path: Path
) -> None:
    """``--group-by-length`` hands the Trainer transformers' LengthGroupedSampler: each batch then holds rows
    of similar length (less padding); without it the order is random and batches mix lengths."""
    from transformers import DataCollatorWithPadding

    rng = random.Random(0)
    rows = [  # lengths from a few tokens to about a hundred, labels mixed
        {"question": "Q?", "reference": "3", "completion": "x " * rng.randint(1, 60) + "3", "label": i % 2}
        for i in range(96)
    ]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    batches: list[list[int]] = []
    real_call = DataCollatorWithPadding.__call__

    def spy(self, features):  # record every training batch's row lengths
        batches.append([len(f["input_ids"]) for f in features])
        return real_call(self, features)

    monkeypatch.setattr(DataCollatorWithPadding, "__call__", spy)
    cfg = RMTrainConfig(
        data=[str(data)],
        out=str(tmp_path / "rm"),
        model=str(tiny_paths.rm_dir),
        epochs=1,
        batch_size=8,
        max_length=160,
        eval_split=0.0,
        group_by_length=group,
    )
    train_rm(cfg)
    assert len(batches) == 12
    spread = sum(max(b) - min(b) for b in batches) / len(batches)
    assert (spread < 20) if group else (spread > 40), spread
    assert json.loads((tmp_path / "rm" / "train_rm_config.json").read_text())["group_by_length"] is group


def test_bf16_trains_in_bf16_over_fp32_weights_on_a_cpu(tiny_paths: TinyPaths, tmp_path: Path) -> None:
    """``train-rm --bf16`` on a CPU: the layers compute in bf16 (autocast), the weights and the saved model stay
    fp32, and the attention is eager (torch's CPU flash-attention backward is slow in bf16)."""
    data = write_jsonl(tmp_path / "train.jsonl", digit_rows(96))
    setup = TrainingSetup()
    with linear_outputs() as outputs:
        metrics = train_rm(
            RMTrainConfig(
                data=[str(data)],
                out=str(tmp_path / "rm"),
                model=str(tiny_paths.rm_dir),
                epochs=2,
                learning_rate=2e-3,
                batch_size=16,
                max_length=96,
                eval_split=0.25,
                bf16=True,
            ),
            callbacks=[setup],
        )
    assert setup.bf16 is True and setup.attention == "eager"
    assert torch.bfloat16 in computed_dtypes(outputs)
    assert math.isfinite(metrics["train_loss"])
    rm = VerifyRM.from_pretrained(tmp_path / "rm", device="cpu")
    assert {p.dtype for p in rm.model.parameters()} == {torch.float32}


def test_training_loads_fp32_weights(
    monkeypatch: pytest.MonkeyPatch, tiny_paths: TinyPaths, tmp_path: Path
) -> None:
    """Training must hold fp32 master weights even where scoring would load bf16 (on a GPU)."""
    from cooper.rm import pretrain as rm_train

    seen = {}
    real = VerifyRM.from_pretrained.__func__

    def spy(cls, path, **kwargs):
        seen.update(kwargs)
        return real(cls, path, **kwargs)

    monkeypatch.setattr(VerifyRM, "from_pretrained", classmethod(spy))
    rm = rm_train._load_or_build_rm(
        RMTrainConfig(data=["x"], out=str(tmp_path), model=str(tiny_paths.rm_dir))
    )
    assert seen["dtype"] == torch.float32
    assert next(rm.model.parameters()).dtype == torch.float32


def test_resume_continues_from_the_checkpoint(
    tiny_paths: TinyPaths, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", digit_rows(64, seed=3))
    out = tmp_path / "rm"

    def run(epochs: float) -> dict:
        cfg = RMTrainConfig(
            data=[str(data)],
            out=str(out),
            model=str(tiny_paths.rm_dir),
            epochs=epochs,
            learning_rate=1e-3,
            batch_size=16,
            max_length=96,
            eval_split=0.25,  # 48 training rows: 3 steps per epoch
            save_steps=2,
            logging_steps=1,
            resume=True,
        )
        return train_rm(cfg)

    def state(step: int) -> dict:
        return json.loads((out / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json").read_text())

    with caplog.at_level(logging.INFO, logger="cooper"):
        run(epochs=2)
    assert "no checkpoint" in caplog.text and "starting fresh" in caplog.text
    first = state(6)
    assert first["global_step"] == 6
    caplog.clear()

    run(epochs=4)
    second = state(12)
    assert second["global_step"] == 12
    assert "starting fresh" not in caplog.text
    # Steps 1-6 were not redone: their records (learning rate of a 6-step schedule, losses) are the first
    # run's, restored from checkpoint-6. A fresh 12-step run would have logged other learning rates.
    early = [h for h in second["log_history"] if h["step"] <= 6]
    assert early == first["log_history"]
    assert any("learning_rate" in h for h in early)
    assert VerifyRM.from_pretrained(out, device="cpu").max_length == 96


# --------------------------------------------------------------------------- the train-rm command


GOOD = {"question": "Digit?", "reference": "3", "completion": "The answer is 3", "label": 1}


@pytest.mark.parametrize(
    ("lines", "where", "field"),
    [
        ([GOOD, {k: v for k, v in GOOD.items() if k != "completion"}], "line 2", "'completion'"),
        ([GOOD, GOOD, {**GOOD, "label": 2}], "line 3", "'label'"),
        ([{**GOOD, "label": "maybe"}], "line 1", "'label'"),
        ([GOOD, {**GOOD, "label": None}], "line 2", "'label'"),
        ([GOOD, {**GOOD, "question": ""}], "line 2", "'question'"),
        ([], "", ""),  # an empty file
    ],
)
def test_train_rm_cli_rejects_bad_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, lines, where, field
) -> None:
    data = write_jsonl(tmp_path / "rows.jsonl", lines)
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR):
        code = main(["train-rm", "--data", str(data), "--out", str(out), "--max-length", "96"])
    assert code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert str(data) in errors[0] and where in errors[0] and field in errors[0]
    if not lines:
        assert "empty" in errors[0]
    assert not out.exists() or not any(out.iterdir())  # nothing written: no model, no checkpoints


def test_train_rm_cli_missing_file_and_bad_flags(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(["train-rm", "--data", str(tmp_path / "nope.jsonl"), "--out", str(out)]) == 2
    assert "nope.jsonl" in caplog.text and "does not exist" in caplog.text
    data = write_jsonl(tmp_path / "rows.jsonl", [GOOD])
    with pytest.raises(SystemExit) as exc:  # argparse refuses an out-of-range number before any work
        main(["train-rm", "--data", str(data), "--out", str(out), "--eval-split", "1.5"])
    assert exc.value.code == 2
    assert main(["train-rm", "--data", str(data), "--out", str(out), "--column", "oops"]) == 2
    assert not out.exists()


def test_train_rm_cli_skip_invalid_and_column_renames(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    rows = [
        {
            "question": r["question"],
            "reference_answer": r["reference"],
            "completion": r["completion"],
            "ok": r["label"],
        }
        for r in digit_rows(36, seed=5)
    ]
    rows[4]["ok"] = "maybe"
    rows[11].pop("completion")
    rows[20]["ok"] = 2
    rows[33]["ok"] = "yes please"  # in the eval file
    data = write_jsonl(tmp_path / "renamed.jsonl", rows[:30])
    eval_data = write_jsonl(tmp_path / "renamed-eval.jsonl", rows[30:])
    out = tmp_path / "out"
    base = ["train-rm", "--data", str(data), "--eval-data", str(eval_data), "--out", str(out)]
    base += ["--max-length", "96", "--batch-size", "8", "--save-steps", "1000", "--epochs", "1"]

    # Without the renames the file lacks our columns; the error names theirs.
    assert main(base) == 2
    assert "missing field 'reference'" in caplog.text and "line 1" in caplog.text
    renames = ["--column", "reference_answer=reference", "--column", "ok=label"]
    # With the renames, the first bad row stops the run and names the file's own column.
    caplog.clear()
    assert main(base + renames) == 2
    assert "line 5" in caplog.text and "'ok' (read as 'label')" in caplog.text
    assert not out.exists() or not any(out.iterdir())

    capsys.readouterr()
    assert main(base + renames + ["--skip-invalid"]) == 0  # --model defaults to a fresh tiny RM
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["skipped_rows"] == 4  # three training rows and one eval row
    assert (metrics["train_rows"], metrics["eval_rows"]) == (27, 5)
    assert "train-rm done" in capsys.readouterr().out
    assert "skipped 3 invalid rows" in caplog.text and "skipped 1 invalid rows" in caplog.text
    assert VerifyRM.from_pretrained(out, device="cpu").max_length == 96


# --------------------------------------------------------------------------- eval-rm

# (reference, completion, gold_correct, answer_type); the rule verdict is whether the boxed value matches.
EVAL_ROWS = [
    ("7", "So the answer is \\boxed{7}", True, "integer"),  # rule right: tp
    ("12", "\\boxed{12}", True, "integer"),  # tp
    ("\\frac{1}{2}", "\\boxed{\\frac{1}{2}}", True, "fraction"),  # tp
    ("7", "\\boxed{8}", False, "integer"),  # tn
    ("\\frac{1}{2}", "\\boxed{\\frac{1}{3}}", False, "fraction"),  # tn
    ("5", "\\boxed{6}", False, "integer"),  # tn
    ("9", "\\boxed{9}", False, "integer"),  # the rule says correct, the gold label not: fp
    ("4", "\\boxed{40}", True, "integer"),  # the rule says wrong, the gold label correct: fn
]
RULE = [True, True, True, False, False, False, True, False]


def counts(m: dict) -> tuple[int, int, int, int]:
    return m["tp"], m["fp"], m["fn"], m["tn"]


def test_judge_table_hand_made() -> None:
    probs = [0.9, 0.2, 0.7, 0.1, 0.6, 0.4]
    rule = [True, False, False, True, False, True]
    labels = [1, 0, 1, 1, 0, 0]
    types = ["num", "num", "expr", "expr", "num", "expr"]
    t = judge_table(probs, rule, labels, types)
    o = t["overall"]
    assert counts(o["rm"]) == (2, 1, 1, 2)
    assert counts(o["rule"]) == (2, 1, 1, 2)
    assert counts(o["rule_or_rm"]) == (3, 2, 0, 1)
    assert counts(o["rule_and_rm"]) == (1, 0, 2, 3)
    assert o["rule_or_rm"]["precision"] == pytest.approx(3 / 5) and o["rule_or_rm"]["recall"] == 1.0
    assert o["rule_and_rm"]["precision"] == 1.0 and o["rule_and_rm"]["recall"] == pytest.approx(1 / 3)
    assert o["rm"]["roc_auc"] == pytest.approx(2 / 3)
    by = t["by_answer_type"]
    assert sorted(by) == ["expr", "num"]
    assert counts(by["num"]["rm"]) == (1, 1, 0, 1) and counts(by["num"]["rule"]) == (1, 0, 0, 2)
    assert counts(by["expr"]["rule"]) == (1, 1, 1, 0)
    assert counts(by["expr"]["rule_or_rm"]) == (2, 1, 0, 0)
    assert counts(by["expr"]["rule_and_rm"]) == (0, 0, 2, 1)
    assert by["num"]["rm"]["roc_auc"] == 1.0 and by["expr"]["rm"]["roc_auc"] == 0.5
    # A higher threshold turns the RM's 0.6 and 0.7 into "wrong".
    high = judge_table(probs, rule, labels, types, threshold=0.8)["overall"]
    assert counts(high["rm"]) == (1, 0, 2, 3)

    md = markdown(t)
    lines = md.strip().splitlines()
    assert len(lines) == 2 + 4 * 3
    assert "| overall | rule_or_rm | 6 | 0.667 | 0.600 | 1.000 |" in lines
    assert "| expr | rule | 3 | 0.333 | 0.500 | 0.500 |" in lines


def test_judge_table_single_type() -> None:
    assert "by_answer_type" not in judge_table([0.9, 0.1], [True, False], [1, 0], ["all", "all"])
    one = judge_table([0.9, 0.1], [True, False], [1, 0], ["integer", "integer"])
    assert list(one["by_answer_type"]) == ["integer"]


def eval_files(tmp_path: Path) -> tuple[Path, Path]:
    verifybench = [
        {"question": f"Problem {i}?", "answer": ref, "completion": c, "gold_correct": y, "answer_type": t}
        for i, (ref, c, y, t) in enumerate(EVAL_ROWS)
    ]
    training = [
        {"question": f"Problem {i}?", "reference": ref, "completion": c, "label": int(y), "answer_type": t}
        for i, (ref, c, y, t) in enumerate(EVAL_ROWS)
    ]
    return write_jsonl(tmp_path / "vb.jsonl", verifybench), write_jsonl(tmp_path / "train.jsonl", training)


def test_evaluate_rm_on_verifybench_and_training_rows(tiny_paths: TinyPaths, tmp_path: Path) -> None:
    vb, tr = eval_files(tmp_path)
    rm = VerifyRM.from_pretrained(tiny_paths.rm_dir, device="cpu")
    probs = rm.score(
        [f"Problem {i}?" for i in range(8)], [r[0] for r in EVAL_ROWS], [r[1] for r in EVAL_ROWS]
    )
    threshold = sorted(probs)[4]  # half the rows above: both RM verdicts occur
    labels = [int(r[2]) for r in EVAL_ROWS]

    result = evaluate_rm(str(tiny_paths.rm_dir), [str(vb)], threshold=threshold, out=str(tmp_path / "report"))
    assert result["rows"] == 8 and result["skipped_rows"] == 0 and result["threshold"] == threshold
    o = result["overall"]
    # The rule verifier column is exact.
    assert counts(o["rule"]) == (3, 1, 1, 3) and o["rule"]["accuracy"] == 0.75
    by = result["by_answer_type"]
    assert counts(by["integer"]["rule"]) == (2, 1, 1, 2) and counts(by["fraction"]["rule"]) == (1, 0, 0, 1)
    # The RM columns are the RM's own scores at the threshold.
    rm_says = [p >= threshold for p in probs]
    assert counts(o["rm"]) == counts(binary_metrics(rm_says, labels))
    assert o["rm"]["roc_auc"] == pytest.approx(roc_auc(probs, labels))
    either = [a or b for a, b in zip(RULE, rm_says, strict=True)]
    both = [a and b for a, b in zip(RULE, rm_says, strict=True)]
    assert counts(o["rule_or_rm"]) == counts(binary_metrics(either, labels))
    assert counts(o["rule_and_rm"]) == counts(binary_metrics(both, labels))

    # .json and .md are written, and agree with the result.
    assert json.loads((tmp_path / "report.json").read_text()) == json.loads(json.dumps(result))
    assert (tmp_path / "report.md").read_text() == markdown(result)

    # The training format gives the same tables.
    same = evaluate_rm(str(tiny_paths.rm_dir), [str(tr)], threshold=threshold)
    for key in ("overall", "by_answer_type"):
        assert same[key] == result[key]


def test_eval_rm_cli_prints_the_table(
    tiny_paths: TinyPaths, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    vb, _ = eval_files(tmp_path)
    stem = tmp_path / "cli-report"
    assert main(["eval-rm", "--model", str(tiny_paths.rm_dir), "--data", str(vb), "--out", str(stem)]) == 0
    printed = capsys.readouterr().out
    assert printed == (tmp_path / "cli-report.md").read_text()
    assert printed.startswith("| subset | judge | n | accuracy | precision | recall |")
    assert "| overall | rule | 8 | 0.750 | 0.750 | 0.750 |" in printed
    assert "| fraction | rule | 2 | 1.000 | 1.000 | 1.000 |" in printed


def test_eval_rm_missing_model(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    vb, _ = eval_files(tmp_path)
    with pytest.raises(FileNotFoundError, match="reward model directory not found"):
        evaluate_rm(str(tmp_path / "no-model"), [str(vb)])
    assert main(["eval-rm", "--model", str(tmp_path / "no-model"), "--data", str(vb)]) == 2
    assert "no-model" in caplog.text


def test_eval_rm_with_a_builtin_and_a_user_verifier(
    tiny_paths: TinyPaths, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    vb, _ = eval_files(tmp_path)
    model = str(tiny_paths.rm_dir)
    default = evaluate_rm(model, [str(vb)])
    assert default["verifier"] == "math" and counts(default["overall"]["rule"]) == (3, 1, 1, 3)
    # the choice verifier finds no letter: the rule says "wrong" to every row
    choice = evaluate_rm(model, [str(vb)], verifier="choice")
    assert choice["verifier"] == "choice" and counts(choice["overall"]["rule"]) == (0, 0, 4, 4)
    # a user's verifier gets each row's answer_type: "correct" exactly on the integer rows (6, 3 of them right)
    spec = f"{write_user_verifiers(tmp_path)}:typed"
    stem = tmp_path / "mine"
    assert main(["eval-rm", "--model", model, "--data", str(vb), "--verifier", spec, "--out", str(stem)]) == 0
    saved = json.loads(stem.with_suffix(".json").read_text())
    assert saved["verifier"] == spec
    assert counts(saved["overall"]["rule"]) == (3, 3, 1, 1)
    assert counts(saved["by_answer_type"]["fraction"]["rule"]) == (0, 0, 1, 1)
    assert "| overall | rule | 8 | 0.500 |" in capsys.readouterr().out
    # the RM's columns do not depend on the verifier
    assert saved["overall"]["rm"] == json.loads(json.dumps(default["overall"]["rm"]))


def test_eval_rm_unknown_verifier_is_bad_input_before_the_model_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vb, _ = eval_files(tmp_path)
    argv = ["eval-rm", "--model", str(tmp_path / "no-model"), "--data", str(vb), "--verifier", "nope"]
    assert main(argv) == 2
    assert "unknown verifier 'nope'" in caplog.text and "no-model" not in caplog.text


@pytest.mark.parametrize(("flag", "expected"), [([], None), (["--bf16"], True), (["--no-bf16"], False)])
def test_train_rm_cli_bf16_flag(
    flag: list[str], expected: bool | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cooper.rm import pretrain

    seen: list[RMTrainConfig] = []
    monkeypatch.setattr(pretrain, "train_rm", lambda cfg: seen.append(cfg) or {})
    assert main(["train-rm", "--data", "rows.jsonl", "--out", "rm", *flag]) == 0
    assert seen[0].bf16 is expected
