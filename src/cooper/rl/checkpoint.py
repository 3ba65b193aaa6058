"""Checkpoints of a cooper run and the rule "one output directory holds one run".

TRL's Trainer writes ``checkpoint-N/`` (policy, optimizer, scheduler, RNG, ``trainer_state.json``); cooper adds
``checkpoint-N/cooper_rm/``: the reward's state (:meth:`cooper.rl.reward.RewardFunction.state_dict`: RNG and
counters as JSON; the RM's weights and AdamW state in ``rm/``, written by every rank with
``torch.distributed.checkpoint`` and loadable on any number of processes; never pickle), the run-defining settings
(``run.json``, what ``--resume`` compares) and, written last, the ``COMPLETE`` marker: a checkpoint without it
was torn by a crash and is never resumed from.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from cooper.rl.config import TrainConfig, config_to_dict, rm_to_load
from cooper.utils.dist import barrier, rank_and_world
from cooper.utils.io import atomic_write_json, atomic_write_text
from cooper.utils.run_identity import identity_differences
from cooper.utils.state import StateError, load_state, save_state

log = logging.getLogger(__name__)

RM_STATE_DIR = "cooper_rm"
COMPLETE_MARKER = "COMPLETE"
REWARD_STATE = "reward"  # cooper_rm/reward.json (+ reward.safetensors if the state holds tensors)
RM_SHARDS = "rm"  # cooper_rm/rm/: the RM's weights and AdamW state, torch.distributed.checkpoint format


def save_reward_state(reward: Any, ckpt_dir: Path, identity: dict[str, Any] | None = None) -> Path:
    """The reward's state and the run-defining settings ``identity`` into ``ckpt_dir/cooper_rm``, atomically:
    a temporary directory, renamed into place once complete, with the marker written last inside it.

    Every rank calls it: each writes its shards of the RM (``rm/``, :meth:`RewardFunction.save_rm`); rank 0
    writes ``reward.json`` (:meth:`RewardFunction.state_dict`), ``run.json`` and the marker."""
    rank, _ = rank_and_world()
    final = ckpt_dir / RM_STATE_DIR
    tmp = ckpt_dir / f".{RM_STATE_DIR}.tmp"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    if hasattr(reward, "save_rm"):
        reward.save_rm(tmp / RM_SHARDS)
    barrier()  # every rank's shards are written
    if rank == 0:
        save_state(reward.state_dict(), tmp, REWARD_STATE)
        if identity is not None:
            atomic_write_json(tmp / RUN_IDENTITY_FILE, identity)
        (tmp / COMPLETE_MARKER).write_text("ok\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    barrier()
    return final


def load_reward_state(reward: Any, ckpt_dir: Path) -> None:
    """Restore the reward saved in ``ckpt_dir`` by :func:`save_reward_state` (on any number of processes;
    every rank calls it); nothing in it is executed. A missing, unreadable or mismatched file is a ValueError
    naming it."""
    state_dir = ckpt_dir / RM_STATE_DIR
    try:
        reward.load_state_dict(load_state(state_dir, REWARD_STATE))
        if hasattr(reward, "load_rm"):
            reward.load_rm(state_dir / RM_SHARDS)
    except StateError as e:
        raise ValueError(f"cannot resume from {ckpt_dir}: {e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(
            f"cannot resume from {ckpt_dir}: its {RM_STATE_DIR}/ does not fit this run ({e})"
        ) from None


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


# -- one run per output directory -------------------------------------------------------------------
# Settings that define a run: resuming a checkpoint made with other values would continue a different run.
# (``max_steps``/``num_train_epochs``, checkpoint and logging cadence, the monitor and endpoints may change.)
RUN_DEFINING = (
    "policy",
    "seed",
    "data",
    "reward.mode",
    "reward.rm",
    "reward.rm_max_length",
    "reward.verifier",
    "cooper.positive",
    "cooper.negatives",
    "cooper.negatives_from",
    "cooper.rm_update",
)
# The grpo keys that change the data order, the batch or the loss; compared by their effective values
# (an unset key is TRL's default).
RUN_DEFINING_GRPO = (
    "gradient_accumulation_steps",
    "num_generations",
    "steps_per_generation",
    "generation_batch_size",
    "num_iterations",
    "shuffle_dataset",
    "data_seed",
    "beta",
    "loss_type",
    "epsilon",
    "epsilon_high",
    "delta",
    "scale_rewards",
    "importance_sampling_level",
    "max_completion_length",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repetition_penalty",
    "mask_truncated_completions",
    "learning_rate",
    "lr_scheduler_type",
    "weight_decay",
    "max_grad_norm",
    "optim",
)
BATCH_ALL_PROCESSES = "grpo.per_device_train_batch_size x processes"
RUN_IDENTITY_FILE = "run.json"
# What a run writes into its output_dir (``--overwrite`` deletes these and nothing else).
RUN_OUTPUTS = ("metrics.jsonl", "summary.json", "config.json", "policy", "reward_model", "plots", "tiny-base")


def run_identity(cfg: TrainConfig, args: Any) -> dict[str, Any]:
    """The run-defining settings as one flat JSON-able dict (``data.files``, ``grpo.beta``, ...)."""
    flat = flatten_dict(config_to_dict(cfg))
    flat["reward.rm"] = rm_to_load(cfg)  # mode rule loads no RM: naming another one changes nothing
    for key in ("policy", "reward.rm", "data.files", "data.data_dir"):  # "DIR/" and "DIR" are one path
        value = flat.get(key)
        if isinstance(value, str) and value != "tiny":
            flat[key] = os.path.normpath(value)
        elif isinstance(value, list | tuple):
            flat[key] = [os.path.normpath(v) if isinstance(v, str) else v for v in value]
    keep = {k: v for k, v in flat.items() if any(k == p or k.startswith(p + ".") for p in RUN_DEFINING)}
    grpo = args.to_dict()
    keep.update({f"grpo.{k}": grpo.get(k) for k in RUN_DEFINING_GRPO if k in grpo})
    # The batch over all processes defines the run, not its split: a run may resume on another number of
    # processes with per_device_train_batch_size changed to match.
    keep[BATCH_ALL_PROCESSES] = args.per_device_train_batch_size * args.world_size
    return json.loads(json.dumps(keep, default=str))  # tuples as lists, as they come back from the file


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
    if isinstance(saved, dict):
        saved.setdefault("reward.verifier", "math")  # made before the verifier was a choice: the default
        if "grpo.per_device_train_batch_size" in saved:  # made before runs could change their process count
            saved.setdefault(
                BATCH_ALL_PROCESSES, saved.pop("grpo.per_device_train_batch_size") * rank_and_world()[1]
            )
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


def flatten_dict(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(flatten_dict(v, f"{prefix}.{k}" if prefix else str(k)))
    return out
