"""VerifyRM pointwise pre-training (``cooper train-rm``) and evaluation (``cooper eval-rm``).

Pre-training is binary cross-entropy on rows ``{question, reference, completion, label}`` through
transformers' ``Trainer`` (its ``compute_loss_func`` hook; no subclass), so checkpoints, resume,
gradient accumulation, mixed precision, DeepSpeed/FSDP via ``accelerate launch`` and logging backends come
from transformers. Inputs go through the one RM template (:mod:`cooper.rm.template`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import (
    DataCollatorWithPadding,
    EvalPrediction,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from cooper.data.rows import parse_columns
from cooper.rm.data import check_threshold, load_rm_rows
from cooper.rm.metrics import score_metrics
from cooper.rm.model import VerifyRM, check_rm_dir
from cooper.utils.device import attention_implementation, resolve_bf16, trainer_precision
from cooper.utils.io import atomic_write_json, check_output_dir
from cooper.utils.run_identity import (
    RunMismatch,
    fresh_or_resume,
    identity_differences,
    refuse_resume_and_overwrite,
)
from cooper.utils.tiny import tiny_models

log = logging.getLogger(__name__)


@dataclass
class RMTrainConfig:
    """Settings of ``cooper train-rm``; each maps to one flag."""

    data: list[str]
    out: str
    model: str = "tiny"  # a local checkpoint directory, or "tiny" for a random-init tiny Qwen2 classifier
    columns: dict[str, str] = field(default_factory=dict)
    eval_data: list[str] | None = None
    eval_split: float = 0.05
    epochs: float = 1.0
    learning_rate: float = 1e-5
    batch_size: int = 8
    grad_accum: int = 1
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_length: int = 1024
    # batches of rows of similar length (transformers' LengthGroupedSampler): less padding, another order
    group_by_length: bool = False
    seed: int = 0
    logging_steps: int = 10
    save_steps: int = 200
    save_total_limit: int = 2
    threshold: float = 0.5
    resume: bool = False
    overwrite: bool = False  # delete an earlier run's checkpoints and outputs in ``out`` first
    skip_invalid: bool = False
    trust_remote_code: bool = False
    report_to: str = "none"
    # None: bf16 autocast on a GPU that supports it, fp32 on a CPU; True: bf16 autocast there too (pays on a
    # CPU with bf16 instructions, utils.device.cpu_computes_bf16); False: fp32
    bf16: bool | None = None
    progress_bar: bool = True  # the Trainer's tqdm bar (the demo shows its own progress line instead)

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("train-rm needs at least one --data file")
        if not 0.0 <= self.eval_split < 1.0:
            raise ValueError(f"eval_split must be in [0, 1), got {self.eval_split}")
        for name in ("epochs", "learning_rate", "batch_size", "grad_accum", "max_length"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        check_threshold(self.threshold)


# Settings that define a train-rm run: resuming a checkpoint made with other values would continue another
# run. (``epochs`` may grow, to extend a run; the checkpoint and logging cadence and the threshold may change.)
RUN_DEFINING = (
    "model",
    "data",
    "columns",
    "eval_data",
    "eval_split",
    "learning_rate",
    "batch_size",
    "grad_accum",
    "warmup_ratio",
    "weight_decay",
    "max_length",
    "group_by_length",
    "seed",
    "skip_invalid",
)
RUN_FILE = "run.json"  # OUT/run.json: the run-defining settings of the run whose checkpoints OUT holds
RUN_OUTPUTS = ("checkpoints", "model.safetensors", "metrics.json", "train_rm_config.json", RUN_FILE)


def run_identity(cfg: RMTrainConfig) -> dict[str, Any]:
    """The run-defining settings of ``cfg``, with file paths made absolute (a run may resume from elsewhere)."""
    flat = dataclasses.asdict(cfg)
    absolute = {
        "data": [str(Path(p).resolve()) for p in cfg.data],
        "eval_data": [str(Path(p).resolve()) for p in cfg.eval_data] if cfg.eval_data else None,
        "model": cfg.model if cfg.model == "tiny" else str(Path(cfg.model).resolve()),
    }
    return json.loads(json.dumps({k: absolute.get(k, flat[k]) for k in RUN_DEFINING}))


def _prepare_out(out: Path, cfg: RMTrainConfig, identity: dict[str, Any]) -> bool:
    """Whether to resume: ``out`` is checked to hold nothing of another run (or cleared with ``overwrite``),
    and a checkpoint to resume is checked to come from a run with the same run-defining settings."""
    earlier = sorted(n for n in RUN_OUTPUTS if (out / n).exists())

    def clear() -> None:
        for name in earlier:
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()

    resuming = fresh_or_resume(
        out,
        earlier,
        resume=cfg.resume,
        overwrite=cfg.overwrite,
        has_checkpoint=any((out / "checkpoints").glob("checkpoint-*")),
        clear=clear,
        flag="--out",
        kind="train-rm run",
    )
    if not resuming:
        return False
    saved_path = out / RUN_FILE
    if not saved_path.is_file():
        raise RunMismatch(
            f"--resume: {out} does not record the settings that made its checkpoints (an older cooper wrote "
            "them), so they cannot be checked to belong to this run; pass --overwrite to start again"
        )
    diff = identity_differences(json.loads(saved_path.read_text(encoding="utf-8")), identity)
    if diff:
        raise RunMismatch(
            f"--resume: the checkpoints in {out} belong to a different run: {'; '.join(diff)}. Resume with the "
            "settings they were made with, or start again with --overwrite or another --out"
        )
    return True


def _load_or_build_rm(cfg: RMTrainConfig) -> VerifyRM:
    model_dir = cfg.model
    if cfg.model == "tiny":
        model_dir = str(tiny_models(Path(cfg.out) / "tiny-base", seed=cfg.seed).rm_dir)
    # fp32 weights even on GPU: the Trainer's bf16 flag is autocast over fp32 master weights; bf16 weights
    # would make AdamW round most small updates away.
    return VerifyRM.from_pretrained(
        model_dir,
        dtype=torch.float32,
        max_length=cfg.max_length,
        trust_remote_code=cfg.trust_remote_code,
        new_head=True,  # pre-training starts from a base LM: its one-logit head is new
        attn_implementation=attention_implementation(resolve_bf16(cfg.bf16)),
    )


def _split(rows: list[dict[str, Any]], frac: float, seed: int) -> tuple[list[dict], list[dict]]:
    if frac <= 0 or len(rows) < 2:
        return rows, []
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = min(len(rows) - 1, max(1, round(len(rows) * frac)))  # at least one row on each side
    return [rows[i] for i in order[n_eval:]], [rows[i] for i in order[:n_eval]]


def _dataset(rm: VerifyRM, rows: list[dict[str, Any]]) -> Dataset:
    ids = rm.encode(
        [r["question"] for r in rows], [r["reference"] for r in rows], [r["completion"] for r in rows]
    )
    return Dataset.from_dict({"input_ids": ids, "labels": [float(r["label"]) for r in rows]})


def bce_loss(
    outputs: Any, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None
) -> torch.Tensor:
    """Binary cross-entropy on the single logit; sums and divides by the items of the whole
    accumulated batch when the Trainer passes that count, so gradient accumulation is exact."""
    logits = outputs.logits.squeeze(-1).float()  # (B, 1) -> (B,)
    labels = labels.to(logits.dtype)
    if num_items_in_batch is None:
        return F.binary_cross_entropy_with_logits(logits, labels)
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / num_items_in_batch


def _metrics_fn(threshold: float):
    def compute(eval_pred: EvalPrediction) -> dict[str, float]:
        logits = np.asarray(eval_pred.predictions).reshape(-1)
        labels = np.asarray(eval_pred.label_ids).reshape(-1)
        probs = 1.0 / (1.0 + np.exp(-logits))
        m = score_metrics(probs.tolist(), [int(y > 0.5) for y in labels.tolist()], threshold)
        return {k: float(v) for k, v in m.items() if v is not None and k in _REPORTED}

    return compute


_REPORTED = ("accuracy", "precision", "recall", "f1", "roc_auc", "majority_baseline")


def train_rm(cfg: RMTrainConfig, callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """Train, evaluate on the held-out rows, save the model to ``cfg.out``; returns the metrics.
    ``callbacks``: extra ``TrainerCallback`` objects (the demo's progress display)."""
    out = check_output_dir(cfg.out, "--out")  # every mistake is reported before anything is written
    refuse_resume_and_overwrite(cfg.resume, cfg.overwrite, "--out")
    identity = run_identity(cfg)
    set_seed(cfg.seed)
    rows, skipped = load_rm_rows(cfg.data, columns=cfg.columns, skip_invalid=cfg.skip_invalid)
    if cfg.model != "tiny":
        check_rm_dir(cfg.model, new_head=True)
    if cfg.eval_data:
        eval_rows, eval_skipped = load_rm_rows(
            cfg.eval_data, columns=cfg.columns, skip_invalid=cfg.skip_invalid
        )
        train_rows, skipped = rows, skipped + eval_skipped  # skipped eval rows are counted too
    else:
        train_rows, eval_rows = _split(rows, cfg.eval_split, cfg.seed)
    resume = _prepare_out(out, cfg, identity)
    rm = _load_or_build_rm(cfg)
    log.info(
        "train-rm: %d training rows, %d eval rows, max_length %d",
        len(train_rows),
        len(eval_rows),
        rm.max_length,
    )

    args = TrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        warmup_steps=cfg.warmup_ratio,  # a float in [0, 1) is a ratio of total steps in transformers 5
        weight_decay=cfg.weight_decay,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if eval_rows else "no",
        eval_steps=cfg.save_steps if eval_rows else None,
        seed=cfg.seed,
        report_to=cfg.report_to,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        disable_tqdm=not cfg.progress_bar,
        **trainer_precision(cfg.bf16),
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=rm.model,
        args=args,
        train_dataset=_dataset(rm, train_rows),
        eval_dataset=_dataset(rm, eval_rows) if eval_rows else None,
        data_collator=DataCollatorWithPadding(rm.tokenizer),
        compute_loss_func=bce_loss,
        compute_metrics=_metrics_fn(cfg.threshold),
        callbacks=list(callbacks) or None,
    )
    if not resume:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / RUN_FILE, identity)
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    metrics: dict[str, Any] = {"train_loss": result.training_loss, "train_rows": len(train_rows)}
    metrics["eval_rows"] = len(eval_rows)
    metrics["skipped_rows"] = len(skipped)
    if eval_rows:
        metrics.update({k.removeprefix("eval_"): v for k, v in trainer.evaluate().items()})
    rm.model.eval()
    rm.save_pretrained(out)
    atomic_write_json(out / "metrics.json", metrics)
    cfg_dump = dataclasses.asdict(cfg)
    atomic_write_json(out / "train_rm_config.json", cfg_dump)
    log.info("train-rm: saved the reward model to %s; metrics %s", out, metrics)
    return metrics


def run_cli(args: argparse.Namespace) -> int:
    """``cooper train-rm``: train, then print the metrics."""
    cfg = RMTrainConfig(
        data=args.data,
        out=args.out,
        model=args.model,
        columns=parse_columns(args.column),
        eval_data=args.eval_data,
        eval_split=args.eval_split,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        max_length=args.max_length,
        group_by_length=args.group_by_length,
        save_steps=args.save_steps,
        seed=args.seed,
        threshold=args.threshold,
        resume=args.resume,
        overwrite=args.overwrite,
        skip_invalid=args.skip_invalid,
        trust_remote_code=args.trust_remote_code,
        report_to=args.report_to,
        bf16=args.bf16,
    )
    metrics = train_rm(cfg)
    shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
    print(f"train-rm done: {shown}")
    return 0
