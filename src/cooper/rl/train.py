"""``cooper train``: GRPO through TRL's ``GRPOTrainer`` with the rule, static-RM or Cooper reward.

TRL does generation, the GRPO loss, KL, PEFT, DeepSpeed/FSDP, logging and policy checkpoints; cooper adds the
reward callable (:mod:`cooper.rl.reward`, one step of the algorithm box per call) and one callback
(:mod:`cooper.rl.callback`: metrics.jsonl, the reward-hacking monitor, the RM state in every checkpoint).
:func:`train` checks everything first (:mod:`cooper.rl.build`), decides fresh start / resume / nothing to do
(:mod:`cooper.rl.checkpoint`), then runs.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import pickle
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import set_seed
from trl import GRPOTrainer

from cooper.rl.build import (
    build_dataset,
    build_reward,
    check_models,
    check_same_config_on_every_rank,
    grpo_config,
    load_prompts,
    resolve_models,
)
from cooper.rl.callback import CooperCallback
from cooper.rl.checkpoint import (
    check_resumable,
    clear_previous_run,
    finished_at,
    latest_checkpoint,
    previous_run,
    run_identity,
)
from cooper.rl.config import TrainConfig, config_to_dict, load_config, parse_overrides
from cooper.rl.plots import plot_run
from cooper.utils.io import atomic_write_json, check_output_dir
from cooper.utils.run_identity import fresh_or_resume, refuse_resume_and_overwrite

log = logging.getLogger(__name__)


def train(
    cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False, callbacks: Sequence[Any] = ()
) -> dict[str, Any]:
    """Train per ``cfg``; returns a summary. Writes OUT/config.json, OUT/metrics.jsonl, checkpoints.

    Everything is checked before anything is loaded or written: the data, the GRPO settings, the model
    directories and the output directory. An output directory that holds another run is refused unless
    ``resume`` (continue it, if its checkpoint was made with the same run-defining settings) or ``overwrite``
    (delete it first). Resuming a run that has reached its end trains nothing and returns its summary.

    ``callbacks``: extra ``transformers.TrainerCallback`` objects (the demo evaluates periodically)."""
    refuse_resume_and_overwrite(resume, overwrite, "output_dir")
    set_seed(cfg.seed)
    out = check_output_dir(cfg.output_dir, "output_dir")
    rows = load_prompts(cfg)  # bad data fails here, before any model is loaded
    args = grpo_config(cfg)
    _ = args.device  # sets up the process group under a multi-process launch, with grpo.ddp_timeout
    check_same_config_on_every_rank(config_to_dict(cfg), resume)
    check_models(cfg)
    identity = run_identity(cfg, args)
    ckpt = _prepare_output_dir(out, identity, resume=resume, overwrite=overwrite)
    if ckpt is not None:
        done = finished_at(ckpt, args)
        if done is not None:
            log.info("--resume: the run in %s already finished at step %d; nothing to do", out, done)
            return _finished_summary(out, cfg, done)
        log.info("resuming from %s (step %d)", ckpt, int(ckpt.name.removeprefix("checkpoint-")))
    return _train(cfg, args, rows, ckpt, identity, callbacks)


def _prepare_output_dir(out: Path, identity: dict[str, Any], *, resume: bool, overwrite: bool) -> Path | None:
    """The checkpoint to resume from (checked to belong to this run), or None for a fresh start."""
    ckpt = latest_checkpoint(out)
    resuming = fresh_or_resume(
        out,
        previous_run(out),
        resume=resume,
        overwrite=overwrite,
        has_checkpoint=ckpt is not None,
        clear=functools.partial(clear_previous_run, out),
        flag="output_dir",
    )
    if not resuming or ckpt is None:
        return None
    check_resumable(ckpt, identity)
    return ckpt


def _finished_summary(out: Path, cfg: TrainConfig, step: int) -> dict[str, Any]:
    path = out / "summary.json"
    if path.is_file():
        summary = json.loads(path.read_text(encoding="utf-8"))
    else:  # it stopped between its last checkpoint and the end: the final policy is that checkpoint
        log.warning("%s has no summary.json: the run's final policy is in %s/checkpoint-%d", out, out, step)
        summary = {"mode": cfg.reward.mode, "steps": step, "seconds": 0.0}
    return {**summary, "already_finished": True}


def _train(
    cfg: TrainConfig,
    args: Any,
    rows: list[dict[str, Any]],
    ckpt: Path | None,
    identity: dict[str, Any],
    callbacks: Sequence[Any],
) -> dict[str, Any]:
    """The run itself: models, the reward, TRL's trainer with cooper's callback, then the final models."""
    out = Path(cfg.output_dir)
    policy_dir, rm_dir = resolve_models(cfg)
    reward = build_reward(cfg, rm_dir, bf16=args.bf16)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", config_to_dict(cfg))
    trainer = GRPOTrainer(
        model=policy_dir,
        reward_funcs=[reward],
        args=args,
        train_dataset=build_dataset(rows, cfg.data.instruction),
    )
    trainer.add_callback(
        CooperCallback(
            reward,
            monitor=cfg.monitor,
            save_total_limit=cfg.grpo.get("save_total_limit"),
            run_identity=identity,
        )
    )
    for extra in callbacks:
        trainer.add_callback(extra)
    t = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)  # the callback restores the reward
    except (
        pickle.UnpicklingError
    ) as e:  # TRL's own files load with weights_only=True: code is refused, not run
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"cannot resume from {ckpt}: a file in it needs code to load, refused ({first})"
        ) from None
    trainer.save_model(str(out / "policy"))
    is_main = trainer.accelerator.is_main_process
    if reward.mode == "cooper":
        reward.rm.save_pretrained(
            out / "reward_model"
        )  # every rank (a sharded RM is gathered); rank 0 writes
    summary = {
        "mode": cfg.reward.mode,
        "steps": trainer.state.global_step,
        "seconds": time.perf_counter() - t,
        "totals": dict(reward.totals),
        "last": reward.last.metrics,
    }
    if is_main:
        atomic_write_json(out / "summary.json", summary)
        if cfg.monitor.plot:
            plot_run(out)
    return summary


def run_cli(args: argparse.Namespace) -> int:
    """``cooper train CONFIG [--resume | --overwrite] [--section.key value ...]``."""
    cfg = load_config(args.config, parse_overrides(args.overrides))
    summary = train(cfg, resume=args.resume, overwrite=args.overwrite)
    print(json.dumps({k: summary[k] for k in ("mode", "steps", "seconds")}))
    return 0
