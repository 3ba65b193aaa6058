"""``cooper train``: GRPO through TRL's ``GRPOTrainer`` with the rule, static-RM or Cooper reward.

TRL does generation, the GRPO loss, KL, PEFT, DeepSpeed/FSDP, logging and policy checkpoints; cooper adds
the reward callable (:mod:`cooper.rewards`) and one ``TrainerCallback`` (:class:`CooperCallback`) that
writes ``OUT/metrics.jsonl`` every step (the reward-hacking monitor), warns when the hacking gap stays high,
and saves the reward model, its optimizer and the reward's RNG into each TRL checkpoint, so ``--resume``
continues with policy and RM consistent.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import pickle
import shutil
import time
from pathlib import Path
from typing import Any

from cooper.io import atomic_write_json, atomic_write_text
from cooper.train_config import TrainConfig, config_to_dict, load_config, parse_overrides

log = logging.getLogger(__name__)

RM_STATE_DIR = "cooper_rm"
COMPLETE_MARKER = "COMPLETE"


# -- data -------------------------------------------------------------------------------------------
def load_prompts(cfg: TrainConfig) -> list[dict[str, Any]]:
    """Rows ``{id, question, reference}``; a row without a reference is an error before training."""
    from cooper.data import load_benchmark, load_rows

    d = cfg.data
    if d.benchmark:
        rows = load_benchmark(d.benchmark, data_dir=d.data_dir, limit=d.limit)
    else:
        # ids must be unique: the reward groups each prompt's rollouts by id
        rows = load_rows(d.files, columns=d.columns, required=("question", "reference"), unique_ids=True)[
            : d.limit
        ]
    if not rows:
        raise ValueError("the training data has no rows")
    return rows


def build_dataset(rows: list[dict[str, Any]], instruction: str) -> Any:
    from datasets import Dataset

    def prompt(q: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"{q}\n{instruction}".strip()}]

    return Dataset.from_dict(
        {
            "prompt": [prompt(r["question"]) for r in rows],
            "question": [r["question"] for r in rows],
            "reference": [r["reference"] for r in rows],
            "id": [str(r["id"]) for r in rows],
        }
    )


# -- models ---------------------------------------------------------------------------------------
def check_models(cfg: TrainConfig) -> None:
    """Check the policy and RM directories the config names (not the offline "tiny" ones) before anything is
    loaded or written: a missing or weightless directory, or an RM that is not a trained one-logit
    classifier, is an error that says what to do."""
    from cooper.models import check_model_dir
    from cooper.reward_model import check_rm_dir

    if cfg.policy != "tiny":
        check_model_dir(cfg.policy, "policy")
    rm = rm_used(cfg)
    if rm and rm != "tiny":
        check_rm_dir(rm)


def rm_used(cfg: TrainConfig) -> str | None:
    """The RM the run loads: none in mode ``rule``, where the verifier pays the policy (an RM named there is
    not loaded, so no RM metric or hacking warning can describe a reward the policy never saw)."""
    return None if cfg.reward.mode == "rule" else cfg.reward.rm


def resolve_models(cfg: TrainConfig) -> tuple[str, str | None]:
    """Local directories of the policy and the RM ("tiny" builds tiny random-init models, offline)."""
    check_models(cfg)
    policy, rm = cfg.policy, rm_used(cfg)
    if cfg.reward.mode == "rule" and cfg.reward.rm:
        log.info(
            "reward.mode rule: the rule verifier pays the policy; reward.rm %s is not loaded", cfg.reward.rm
        )
    if "tiny" in (policy, rm):
        from cooper.tiny import tiny_models

        paths = tiny_models(Path(cfg.output_dir) / "tiny-base", seed=cfg.seed)
        policy = str(paths.policy_dir) if policy == "tiny" else policy
        rm = str(paths.rm_dir) if rm == "tiny" else rm
    return policy, rm


def grpo_config(cfg: TrainConfig) -> Any:
    """TRL's GRPOConfig from the ``grpo`` section, with CPU-safe defaults the user can override."""
    import torch
    from trl import GRPOConfig

    on_gpu = torch.cuda.is_available()
    defaults: dict[str, Any] = {
        "logging_steps": 1,
        "report_to": "none",
        "save_strategy": "steps",
        "save_steps": 50,
        "use_cpu": not on_gpu,
        "bf16": bool(on_gpu and torch.cuda.is_bf16_supported()),
        "gradient_checkpointing": False,
        "remove_unused_columns": False,
    }
    kwargs = {**defaults, **cfg.grpo, "output_dir": cfg.output_dir, "seed": cfg.seed}
    # Checkpoint rotation is cooper's (see rotate_checkpoints): the Trainer deletes old checkpoints inside its
    # save, before cooper's marker makes the new one complete, so a crash there would leave none to resume.
    kwargs["save_total_limit"] = None
    try:
        return GRPOConfig(**kwargs)
    except TypeError as e:
        raise ValueError(f"grpo section: {e} (keys pass to trl.GRPOConfig unchanged)") from None


def build_reward(cfg: TrainConfig, rm_dir: str | None) -> Any:
    from cooper.cooper import RMUpdater
    from cooper.rewards import RewardFunction

    sources = None
    if cfg.reward.mode == "cooper" and "assistant" in cfg.cooper.negatives:
        from cooper.endpoints import ChatClient
        from cooper.negatives import NEGATIVE_SOURCES, AssistantSource

        client = ChatClient(cfg.cooper.assistant)
        client.preflight()  # an unreachable endpoint is reported before any model is loaded
        sources = {**NEGATIVE_SOURCES, "assistant": AssistantSource(client)}
    rm = None
    if rm_dir:
        import torch

        from cooper.reward_model import VerifyRM

        train_rm = cfg.reward.mode == "cooper"
        on_gpu = torch.cuda.is_available()
        # each process's own GPU (accelerate sets the current device only later, inside the trainer)
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if on_gpu else "cpu"
        rm = VerifyRM.from_pretrained(
            rm_dir,
            device=device,
            max_length=cfg.reward.rm_max_length,
            trust_remote_code=cfg.trust_remote_code,
            dtype=torch.float32 if train_rm else None,  # fp32 master weights for the RM's own optimizer
        )
        if train_rm and on_gpu and torch.cuda.is_bf16_supported():
            rm.autocast_dtype = torch.bfloat16
    updater = RMUpdater(rm, cfg.cooper.rm_update) if cfg.reward.mode == "cooper" else None
    return RewardFunction(
        cfg.reward.mode,
        rm=rm,
        updater=updater,
        negative_order=tuple(cfg.cooper.negatives),
        negative_sources=sources,
        negatives_from=cfg.cooper.negatives_from,
        positive=cfg.cooper.positive,
        rm_batch_size=cfg.reward.rm_batch_size,
        verifier_timeout_s=cfg.reward.verifier_timeout_s,
        seed=cfg.seed,
    )


# -- checkpoints ------------------------------------------------------------------------------------
def save_reward_state(reward: Any, ckpt_dir: Path, identity: dict[str, Any] | None = None) -> Path:
    """RM weights + tokenizer, its optimizer/scheduler, the reward's RNG and counters, and the run-defining
    settings ``identity`` (:func:`run_identity`, what ``--resume`` compares), atomically."""
    import torch

    final = ckpt_dir / RM_STATE_DIR
    tmp = ckpt_dir / f".{RM_STATE_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if reward.mode == "cooper":
        reward.rm.save_pretrained(tmp / "model")
        torch.save(reward.updater.state_dict(), tmp / "updater.pt")
    with open(tmp / "reward_state.pkl", "wb") as f:
        pickle.dump({"rng": reward.rng.getstate(), "totals": dict(reward.totals), "calls": reward.calls}, f)
    if identity is not None:
        atomic_write_json(tmp / RUN_IDENTITY_FILE, identity)
    (tmp / COMPLETE_MARKER).write_text("ok\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def load_reward_state(reward: Any, ckpt_dir: Path) -> None:
    import torch
    from safetensors.torch import load_file

    state_dir = ckpt_dir / RM_STATE_DIR
    if reward.mode == "cooper":
        weights = load_file(str(state_dir / "model" / "model.safetensors"))
        reward.rm.model.load_state_dict(weights, strict=False)
        reward.updater.load_state_dict(torch.load(state_dir / "updater.pt", weights_only=False))
    with open(state_dir / "reward_state.pkl", "rb") as f:
        st = pickle.load(f)  # noqa: S301 - our own file, written by save_reward_state
    reward.rng.setstate(st["rng"])
    reward.totals.update(st["totals"])
    reward.calls = st["calls"]


# -- one run per output directory -------------------------------------------------------------------
# Settings that define a run: resuming a checkpoint made with other values would continue a different run.
# (``max_steps``/``num_train_epochs``, checkpoint and logging cadence, the monitor and endpoints may change.)
RUN_DEFINING = (
    "policy", "seed", "data", "reward.mode", "reward.rm", "reward.rm_max_length", "cooper.positive",
    "cooper.negatives", "cooper.negatives_from", "cooper.rm_update",
)  # fmt: skip
# The grpo keys that change the data order, the batch or the loss; compared by their effective values
# (an unset key is TRL's default).
RUN_DEFINING_GRPO = (
    "per_device_train_batch_size", "gradient_accumulation_steps", "num_generations", "steps_per_generation",
    "generation_batch_size", "num_iterations", "shuffle_dataset", "data_seed", "beta", "loss_type",
    "epsilon", "epsilon_high", "delta", "scale_rewards", "importance_sampling_level", "max_completion_length",
    "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "mask_truncated_completions",
    "learning_rate", "lr_scheduler_type", "weight_decay", "max_grad_norm", "optim",
)  # fmt: skip
RUN_IDENTITY_FILE = "run.json"
# What a run writes into its output_dir (``--overwrite`` deletes these and nothing else).
RUN_OUTPUTS = ("metrics.jsonl", "summary.json", "config.json", "policy", "reward_model", "plots", "tiny-base")


def run_identity(cfg: TrainConfig, args: Any) -> dict[str, Any]:
    """The run-defining settings as one flat JSON-able dict (``data.files``, ``grpo.beta``, ...)."""
    flat = _flatten(config_to_dict(cfg))
    flat["reward.rm"] = rm_used(cfg)  # mode rule loads no RM: naming another one changes nothing
    keep = {k: v for k, v in flat.items() if any(k == p or k.startswith(p + ".") for p in RUN_DEFINING)}
    grpo = args.to_dict()
    keep.update({f"grpo.{k}": grpo.get(k) for k in RUN_DEFINING_GRPO if k in grpo})
    return json.loads(json.dumps(keep, default=str))  # tuples as lists, as they come back from the file


def identity_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key (checkpoint: a, now: b)`` for each run-defining setting that differs."""
    keys = sorted(set(saved) | set(current))
    return [
        f"{k} (checkpoint: {saved.get(k, '<unset>')!r}, now: {current.get(k, '<unset>')!r})"
        for k in keys
        if saved.get(k, "<unset>") != current.get(k, "<unset>")
    ]


def check_resumable(ckpt: Path, identity: dict[str, Any]) -> None:
    """Refuse ``ckpt`` unless it was made by a run with the same run-defining settings, naming the keys."""
    path = ckpt / RM_STATE_DIR / RUN_IDENTITY_FILE
    if not path.is_file():
        raise ValueError(
            f"--resume: {ckpt} does not record the config that made it (an older cooper wrote it), so it "
            "cannot be checked to belong to this run; start again with --overwrite or another output_dir"
        )
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"--resume: unreadable {path} ({e})") from None
    diff = identity_differences(saved, identity)
    if diff:
        shown = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
        raise ValueError(
            f"--resume: {ckpt} belongs to a different run: {shown}. Resume with the settings it was made with, "
            "or start again with --overwrite or another output_dir"
        )


def previous_run(out: Path) -> list[str]:
    """The names of what an earlier run left in ``out`` (checkpoints and ``RUN_OUTPUTS``), sorted."""
    if not out.is_dir():
        return []
    found = [d.name for d in out.glob("checkpoint-*")] + [n for n in RUN_OUTPUTS if (out / n).exists()]
    return sorted(n for n in found if n not in ("tiny-base", "config.json"))


def clear_previous_run(out: Path) -> None:
    """Delete an earlier run's outputs (``--overwrite``); anything else in ``out`` is left alone."""
    for d in out.glob("checkpoint-*"):
        shutil.rmtree(d, ignore_errors=True)
    for name in RUN_OUTPUTS:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)


def finished_at(ckpt: Path, args: Any) -> int | None:
    """The step of ``ckpt`` if the run ends there (``max_steps``, or the epochs the checkpoint counted), else
    None. TRL's Trainer resumed at its last step would still train one more."""
    state = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
    step = int(state["global_step"])
    if args.max_steps and args.max_steps > 0:
        end = args.max_steps
    elif state.get("num_train_epochs") == args.num_train_epochs and state.get("max_steps"):
        end = int(state["max_steps"])
    else:
        return None  # the number of epochs changed: the run may go on
    return step if step >= end else None


def _checkpoint_problem(d: Path, step: int) -> str | None:
    """Why checkpoint dir ``d`` cannot be resumed from, or None. Cooper's marker is written last (after the
    Trainer's files, in ``on_save``), so a checkpoint torn by a crash has none."""
    if not (d / RM_STATE_DIR / COMPLETE_MARKER).is_file():
        return f"no {RM_STATE_DIR}/{COMPLETE_MARKER} marker (interrupted while being written)"
    try:
        state = json.loads((d / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"unreadable trainer_state.json ({e})"
    if not isinstance(state, dict) or state.get("global_step") != step:
        return f"trainer_state.json has no global_step {step}"
    return None


def _checkpoints(output_dir: str | Path) -> list[tuple[int, Path, str | None]]:
    """Every ``checkpoint-N`` directory as ``(N, path, why it cannot be resumed from or None)``, by step."""
    found = []
    for d in Path(output_dir).glob("checkpoint-*"):
        step = d.name.removeprefix("checkpoint-")
        if step.isdigit():
            found.append((int(step), d, _checkpoint_problem(d, int(step))))
    return sorted(found)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest ``checkpoint-N`` whose Trainer state and cooper state are both complete; torn ones are
    skipped with a warning."""
    complete = []
    for _, d, problem in _checkpoints(output_dir):
        if problem is None:
            complete.append(d)
        else:
            log.warning("skipping incomplete checkpoint %s: %s", d, problem)
    return complete[-1] if complete else None


def rotate_checkpoints(output_dir: str | Path, limit: int | None) -> list[Path]:
    """Keep the newest ``limit`` complete checkpoints (``grpo.save_total_limit``); delete older ones, complete
    or torn. Called after a checkpoint is marked complete, so the newest complete one is never deleted and a
    crash at any moment leaves one to resume from. Returns the deleted directories."""
    if not limit or limit < 1:
        return []
    found = _checkpoints(output_dir)
    complete = [step for step, _, problem in found if problem is None]
    if not complete:
        return []
    keep_from = complete[-limit:][0]
    deleted = []
    for step, d, _ in found:
        if step < keep_from:
            shutil.rmtree(d, ignore_errors=True)
            deleted.append(d)
    return deleted


def truncate_metrics(path: Path, last_step: int) -> None:
    """Keep metrics.jsonl rows up to ``last_step`` (a resumed run rewrites the steps after it)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # a torn last line
        if row.get("step", 0) <= last_step:
            keep.append(line)
    atomic_write_text(path, "".join(x + "\n" for x in keep))


# -- the callback -----------------------------------------------------------------------------------
class CooperCallbackMixin:
    """metrics.jsonl every step, the hacking-gap warning, and the RM state in every checkpoint.

    A step's row is written once TRL has logged that step (``on_log`` follows ``on_step_end``), with TRL's own
    values (loss, kl, entropy, grad_norm, completion lengths, clip ratios: averaged by TRL over the steps since its
    last log) added as ``train/<key>``; on steps TRL does not log (``grpo.logging_steps`` > 1) it is written at the
    next step, save or the end of training, always before that step's checkpoint.

    Combined with ``transformers.TrainerCallback`` by :func:`cooper_callback` (so importing this module
    does not import transformers).
    """

    def __init__(self, reward: Any, cfg: TrainConfig, is_main: bool) -> None:
        self.reward = reward
        self.cfg = cfg
        self.is_main = is_main
        self.metrics_path = Path(cfg.output_dir) / "metrics.jsonl"
        self.t_step = time.perf_counter()
        self.high_gap_steps = 0
        self.calls_seen = reward.calls
        self.pending: dict[str, Any] | None = None  # this step's row, until TRL's log for the step joins it

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
        m = self.cfg.monitor
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
        if self.is_main:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            save_reward_state(self.reward, ckpt, run_identity(self.cfg, args))
            rotate_checkpoints(args.output_dir, self.cfg.grpo.get("save_total_limit"))


def cooper_callback(reward: Any, cfg: TrainConfig, is_main: bool) -> Any:
    from transformers import TrainerCallback

    cls = type("CooperCallback", (CooperCallbackMixin, TrainerCallback), {})
    return cls(reward, cfg, is_main)


# -- the run ----------------------------------------------------------------------------------------
def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def check_same_config_on_every_rank(cfg_dict: dict[str, Any], resume: bool) -> None:
    """Under a multi-process launch every rank must run the same config and resume flag.

    Each rank's settings are compared with rank 0's; on a mismatch every rank raises the same error (so all
    stop together instead of hanging on a collective), naming the ranks and the differing keys. A no-op on
    one process.
    """
    import torch.distributed as dist

    from cooper.cooper import _dist

    _, world = _dist()
    if world == 1:
        return
    mine = _flatten({"config": cfg_dict, "resume": resume})
    everyone: list[Any] = [None] * world
    dist.all_gather_object(everyone, mine)
    ref = everyone[0]
    problems = []
    for rank, other in enumerate(everyone[1:], start=1):
        keys = sorted(k for k in set(ref) | set(other) if ref.get(k, "<unset>") != other.get(k, "<unset>"))
        if keys:
            shown = ", ".join(
                f"{k} ({ref.get(k, '<unset>')!r} on rank 0, {other.get(k, '<unset>')!r})" for k in keys[:5]
            )
            problems.append(
                f"rank {rank} differs in {shown}" + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
            )
    if problems:
        raise ValueError("the ranks were started with different configs: " + "; ".join(problems))


def train(
    cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False, callbacks: list[Any] = ()
) -> dict[str, Any]:
    """Train per ``cfg``; returns a summary. Writes OUT/config.json, OUT/metrics.jsonl, checkpoints.

    Everything is checked before anything is loaded or written: the data, the GRPO settings, the model
    directories and the output directory. An output directory that holds another run is refused unless
    ``resume`` (continue it, if its checkpoint was made with the same run-defining settings) or ``overwrite``
    (delete it first). Resuming a run that has reached its end trains nothing and returns its summary.

    ``callbacks``: extra ``transformers.TrainerCallback`` objects (the demo evaluates periodically)."""
    from transformers import set_seed

    from cooper.io import check_output_dir

    if resume and overwrite:
        raise ValueError(
            "--resume continues the run in output_dir and --overwrite deletes it: give one of them"
        )
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
    return _train(cfg, args, rows, ckpt, callbacks)


def _prepare_output_dir(out: Path, identity: dict[str, Any], *, resume: bool, overwrite: bool) -> Path | None:
    """The checkpoint to resume from (checked to belong to this run), or None for a fresh start."""
    earlier = previous_run(out)
    if overwrite and earlier:
        log.warning("--overwrite: deleting the earlier run in %s (%s)", out, ", ".join(earlier[:6]))
        clear_previous_run(out)
        return None
    if not resume:
        if earlier:
            raise ValueError(
                f"output_dir {str(out)!r} already holds a run ({', '.join(earlier[:6])}); pass --resume to "
                "continue it, --overwrite to delete it and start again, or choose another output_dir"
            )
        return None
    ckpt = latest_checkpoint(out)
    if ckpt is None:
        if earlier:
            raise ValueError(
                f"--resume: output_dir {str(out)!r} holds an earlier run ({', '.join(earlier[:6])}) but no "
                "complete checkpoint to continue from; pass --overwrite to start again"
            )
        log.warning("--resume: no checkpoint in %s; starting fresh", out)
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
    callbacks: list[Any],
) -> dict[str, Any]:
    from trl import GRPOTrainer

    out = Path(cfg.output_dir)
    policy_dir, rm_dir = resolve_models(cfg)
    reward = build_reward(cfg, rm_dir)
    if ckpt is not None:
        load_reward_state(reward, ckpt)
        step = json.loads((ckpt / "trainer_state.json").read_text())["global_step"]
        truncate_metrics(out / "metrics.jsonl", step)
        log.info("resuming from %s (step %d)", ckpt, step)
    else:
        (out / "metrics.jsonl").unlink(missing_ok=True)  # every rank may try; none may fail
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", config_to_dict(cfg))

    trainer = GRPOTrainer(
        model=policy_dir,
        reward_funcs=[reward],
        args=args,
        train_dataset=build_dataset(rows, cfg.data.instruction),
    )
    callback = cooper_callback(reward, cfg, trainer.accelerator.is_main_process)
    trainer.add_callback(callback)
    for extra in callbacks:
        trainer.add_callback(extra)
    t = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    trainer.save_model(str(out / "policy"))
    if reward.mode == "cooper" and trainer.accelerator.is_main_process:
        reward.rm.save_pretrained(out / "reward_model")
    summary = {
        "mode": cfg.reward.mode,
        "steps": trainer.state.global_step,
        "seconds": time.perf_counter() - t,
        "totals": dict(reward.totals),
        "last": reward.last.metrics,
    }
    if trainer.accelerator.is_main_process:
        atomic_write_json(out / "summary.json", summary)
        if cfg.monitor.plot:
            from cooper.plots import plot_run

            plot_run(out)
    return summary


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="GRPO on TRL with a rule, static-RM or Cooper (co-trained RM) reward",
        description="Train a policy with TRL's GRPOTrainer. CONFIG is YAML (see configs/); override any key "
        "with --section.key value, e.g. --reward.mode static_rm --grpo.max_steps 20.",
    )
    p.add_argument("config", help="YAML config file")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in output_dir from its newest complete checkpoint (refused if the checkpoint "
        "was made with other run-defining settings; a finished run is left as it is)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="delete an earlier run's checkpoints and outputs in output_dir and start again",
    )
    p.set_defaults(func=_run_cli, accepts_overrides=True)

    q = sub.add_parser("plot", help="render a training run's metrics.jsonl to PNG plots")
    q.add_argument("run_dir", help="the output_dir of a cooper train run")
    q.set_defaults(func=_run_plot)


def _run_cli(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, parse_overrides(args.overrides))
    summary = train(cfg, resume=args.resume, overwrite=args.overwrite)
    print(json.dumps({k: summary[k] for k in ("mode", "steps", "seconds")}))
    return 0


def _run_plot(args: argparse.Namespace) -> int:
    from cooper.plots import plot_run

    for path in plot_run(args.run_dir):
        print(path)
    return 0
