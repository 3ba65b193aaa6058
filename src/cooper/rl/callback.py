"""The callback that makes a ``trl.GRPOTrainer`` a Cooper run: ``metrics.jsonl`` every step, the
reward-hacking monitor, and the reward's state (the RM and its optimizer) in every checkpoint and back.

It works in any TRL script (``trainer.add_callback(CooperCallback(reward))``); ``cooper train`` uses it too.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from cooper.rl.checkpoint import (
    COMPLETE_MARKER,
    RM_STATE_DIR,
    load_reward_state,
    rotate_checkpoints,
    save_reward_state,
    truncate_metrics,
)
from cooper.rl.config import MonitorConfig

log = logging.getLogger(__name__)


class CooperCallback(TrainerCallback):
    """metrics.jsonl every step, the hacking-gap warning, and the reward's state in every checkpoint.

    ``reward``: the :class:`~cooper.rl.reward.RewardFunction` passed to the trainer. ``output_dir``: where
    ``metrics.jsonl`` goes (default: the trainer's ``output_dir``). ``monitor``: the hacking-gap threshold and
    patience. ``save_total_limit``: checkpoints to keep, applied after cooper's state is complete (leave the
    trainer's own ``save_total_limit`` unset: it deletes old checkpoints before the new one is complete).
    ``run_identity``: settings saved in each checkpoint for ``cooper train --resume`` to compare.

    When the trainer resumes (``trainer.train(resume_from_checkpoint=...)``), the reward's state is restored
    from that step's checkpoint before the first step, and ``metrics.jsonl`` is cut back to that step.

    A step's row is written once TRL has logged that step (``on_log`` follows ``on_step_end``), with TRL's own
    values (loss, kl, entropy, grad_norm, completion lengths, clip ratios: averaged by TRL over the steps since its
    last log) added as ``train/<key>``; on steps TRL does not log (``logging_steps`` > 1) it is written at the
    next step, save or the end of training, always before that step's checkpoint.
    """

    def __init__(
        self,
        reward: Any,
        *,
        output_dir: str | Path | None = None,
        monitor: MonitorConfig | None = None,
        save_total_limit: int | None = None,
        run_identity: dict[str, Any] | None = None,
    ) -> None:
        self.reward = reward
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.monitor = monitor or MonitorConfig()
        self.save_total_limit = save_total_limit
        self.run_identity = run_identity
        self.is_main = True
        self.t_step = time.perf_counter()
        self.high_gap_steps = 0
        self.calls_seen = reward.calls
        self.pending: dict[str, Any] | None = None  # this step's row, until TRL's log for the step joins it

    @property
    def metrics_path(self) -> Path:
        if self.output_dir is None:
            raise RuntimeError("CooperCallback: on_train_begin has not run (no output_dir yet)")
        return self.output_dir / "metrics.jsonl"

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Resumed (TRL restored step N): restore the reward from ``checkpoint-N`` and cut metrics.jsonl back
        to step N. A fresh start: begin an empty metrics.jsonl."""
        self.output_dir = self.output_dir or Path(args.output_dir)
        self.is_main = bool(state.is_world_process_zero)
        if state.global_step > 0:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if not (ckpt / RM_STATE_DIR / COMPLETE_MARKER).is_file():
                raise ValueError(
                    f"resuming at step {state.global_step}, but {ckpt} holds no complete {RM_STATE_DIR}/: the reward "
                    "model's state of that step is unknown (was the checkpoint saved with CooperCallback?)"
                )
            load_reward_state(self.reward, ckpt)
            log.info("restored the reward's state from %s", ckpt)
            if self.is_main:
                truncate_metrics(self.metrics_path, state.global_step)
        elif self.is_main:
            self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
            self.metrics_path.unlink(missing_ok=True)
        self.calls_seen = self.reward.calls

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._flush()
        self.t_step = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        now = time.perf_counter()
        rec = self.reward.last
        row: dict[str, Any] = {
            "step": state.global_step,
            "time": time.time(),
            "new_rollouts": self.reward.calls > self.calls_seen,
        }
        self.calls_seen = self.reward.calls
        row.update(rec.metrics)
        seconds = dict(rec.seconds)
        if row["new_rollouts"]:  # a step that reused earlier rollouts had no generation or reward call
            seconds["generation"] = max(0.0, rec.started - self.t_step)
            seconds["policy_update"] = max(0.0, now - rec.ended)
        seconds["step"] = now - self.t_step
        row.update({f"seconds/{k}": v for k, v in seconds.items()})
        self._monitor(row)
        self._flush()
        self.pending = row if self.is_main else None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
        row = self.pending
        if row is None or row["step"] != state.global_step or not logs:
            return  # an eval log, or the end-of-training summary after the last row was written
        for key, value in logs.items():
            # TRL also logs cooper's own reward metrics (through log_metric); the row has them already
            if key not in row and isinstance(value, (int, float)) and not isinstance(value, bool):
                row[f"train/{key}"] = value
        self._flush()

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._flush()

    def _flush(self) -> None:
        """Append the pending row; strict JSON: a non-finite value (e.g. the loss of an all-skipped RM update)
        is null."""
        row, self.pending = self.pending, None
        if row is None:
            return
        clean = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}
        with self.metrics_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(clean, allow_nan=False) + "\n")

    def _monitor(self, row: dict[str, Any]) -> None:
        """Warn when the RM reward the policy is paid by runs ahead of verified accuracy (modes static_rm and
        cooper; in mode rule the verifier pays and no RM is scored)."""
        gap = row.get("reward/hacking_gap") if self.reward.mode != "rule" else None
        m = self.monitor
        self.high_gap_steps = (
            self.high_gap_steps + 1 if gap is not None and gap > m.hacking_gap_threshold else 0
        )
        if self.high_gap_steps == m.patience:
            log.warning(
                "possible reward hacking: the RM reward the policy is paid by exceeds its verified accuracy by "
                "more than %.2f for %d steps (step %d, gap %.3f)",
                m.hacking_gap_threshold,
                m.patience,
                row["step"],
                gap,
            )

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._flush()  # the step's row before its checkpoint: a resume cuts metrics.jsonl back to the checkpoint
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        save_reward_state(self.reward, ckpt, self.run_identity)  # every rank: each writes its RM shards
        if self.is_main:
            rotate_checkpoints(args.output_dir, self.save_total_limit)
