"""The pieces of a ``cooper train`` run, built from its :class:`~cooper.rl.config.TrainConfig`: the prompts and
their dataset, the model directories, TRL's ``GRPOConfig`` and the reward callable. Each checks its input
before anything is loaded or written."""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from trl import GRPOConfig

from cooper.data.benchmarks import load_benchmark
from cooper.data.prompts import prompt_messages
from cooper.data.rows import load_rows
from cooper.rl.checkpoint import flatten_dict
from cooper.rl.config import ConfigError, TrainConfig, rm_to_load
from cooper.rl.negatives import NEGATIVE_SOURCES, AssistantSource
from cooper.rl.reward import RewardFunction
from cooper.rl.rm_update import RMUpdater
from cooper.rm.model import VerifyRM, check_rm_dir
from cooper.rm.parallel import outside_zero3
from cooper.utils.device import attention_implementation, local_device, resolve_bf16, trainer_precision
from cooper.utils.dist import all_gather, rank_and_world
from cooper.utils.endpoints import ChatClient
from cooper.utils.models import check_model_dir
from cooper.utils.tiny import tiny_models
from cooper.verify.registry import check_verifier

log = logging.getLogger(__name__)


# -- data -------------------------------------------------------------------------------------------
def load_prompts(cfg: TrainConfig) -> list[dict[str, Any]]:
    """Rows ``{id, question, reference, ...}``; a row without a reference is an error before training."""

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


# Columns of the dataset cooper makes itself, and ``source``, which cooper fills with the file's name
_OWN_COLUMNS = ("prompt", "question", "reference", "id", "source")


def extra_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The rows' other columns that the dataset carries to the reward (TRL passes each to it, and the reward
    to the verifier as row fields: ``answer_type``, ``is_multiple_answer``, a user's own). A column must be
    in every row with values of one type (None allowed): an Arrow column has one type; others are left out,
    with a warning."""
    names = [k for k in rows[0] if k not in _OWN_COLUMNS and all(k in r for r in rows)]
    missing = sorted({k for r in rows for k in r if k not in _OWN_COLUMNS} - set(names))
    if missing:
        log.warning("data columns %s are not in every row: not passed to the verifier", missing)
    keep = []
    for name in names:
        types = {type(r[name]).__name__ for r in rows if r[name] is not None}
        if len(types) > 1:
            log.warning(
                "data column %r mixes types (%s): not passed to the verifier", name, ", ".join(sorted(types))
            )
        else:
            keep.append(name)
    return keep


def build_dataset(rows: list[dict[str, Any]], instruction: str) -> Dataset:
    """The training dataset: ``prompt`` (the chat messages), ``question``, ``reference``, ``id``, and the
    columns of :func:`extra_columns`."""

    def prompt(q: str) -> list[dict[str, str]]:
        return prompt_messages(q, instruction)

    return Dataset.from_dict(
        {
            "prompt": [prompt(r["question"]) for r in rows],
            "question": [r["question"] for r in rows],
            "reference": [r["reference"] for r in rows],
            "id": [str(r["id"]) for r in rows],
            **{name: [r[name] for r in rows] for name in extra_columns(rows)},
        }
    )


# -- models ---------------------------------------------------------------------------------------
def check_models(cfg: TrainConfig) -> None:
    """Check the verifier and the policy and RM directories the config names (not the offline "tiny" ones)
    before anything is loaded or written: an unknown or unimportable ``reward.verifier`` (a VerifierError), a
    missing or weightless directory, or an RM that is not a trained one-logit classifier, is an error that
    says what to do."""

    check_verifier(cfg.reward.verifier)
    if cfg.policy != "tiny":
        check_model_dir(cfg.policy, "policy")
    rm = rm_to_load(cfg)
    if rm and rm != "tiny":
        check_rm_dir(rm)


def resolve_models(cfg: TrainConfig) -> tuple[str, str | None]:
    """Local directories of the policy and the RM ("tiny" builds tiny random-init models, offline). The
    directories the config names were checked by :func:`check_models` before anything was written."""
    policy, rm = cfg.policy, rm_to_load(cfg)
    if cfg.reward.mode == "rule" and cfg.reward.rm:
        log.info(
            "reward.mode rule: the rule verifier pays the policy; reward.rm %s is not loaded", cfg.reward.rm
        )
    if "tiny" in (policy, rm):
        paths = tiny_models(Path(cfg.output_dir) / "tiny-base", seed=cfg.seed)
        policy = str(paths.policy_dir) if policy == "tiny" else policy
        rm = str(paths.rm_dir) if rm == "tiny" else rm
    return policy, rm


def grpo_config(cfg: TrainConfig) -> GRPOConfig:
    """TRL's GRPOConfig from the ``grpo`` section, with CPU-safe defaults the user can override."""

    defaults: dict[str, Any] = {
        "logging_steps": 1,
        "report_to": "none",
        "save_strategy": "steps",
        "save_steps": 50,
        **trainer_precision(),
        "gradient_checkpointing": False,
        "remove_unused_columns": False,
    }
    kwargs = {**defaults, **cfg.grpo, "output_dir": cfg.output_dir, "seed": cfg.seed}
    # Checkpoint rotation is cooper's (see rotate_checkpoints): the Trainer deletes old checkpoints inside its
    # save, before cooper's marker makes the new one complete, so a crash there would leave none to resume.
    kwargs["save_total_limit"] = None
    attention = attention_implementation(bool(kwargs.get("bf16")))  # "eager" for bf16 on a CPU
    if attention and "attn_implementation" not in (kwargs.get("model_init_kwargs") or {}):
        kwargs["model_init_kwargs"] = {
            **(kwargs.get("model_init_kwargs") or {}),
            "attn_implementation": attention,
        }
    try:
        args = GRPOConfig(**kwargs)
    except TypeError as e:
        raise ValueError(f"grpo section: {e} (keys pass to trl.GRPOConfig unchanged)") from None
    check_grpo_values(args, cfg.grpo)
    return args


def check_grpo_values(args: GRPOConfig, given: dict[str, Any]) -> None:
    """Values ``GRPOConfig`` accepts but training fails on later, in torch or TRL, after files are written
    (a NaN or negative learning rate, a temperature of 0, an unknown loss type): a ConfigError naming the key."""
    for key, value in given.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"grpo.{key} = {value!r}: must be a finite number")
    if args.learning_rate < 0:
        raise ConfigError(f"grpo.learning_rate = {args.learning_rate!r}: must be >= 0")
    if not args.temperature > 0:
        raise ConfigError(f"grpo.temperature = {args.temperature!r}: must be > 0")
    if args.max_steps == 0 or args.max_steps < -1:
        raise ConfigError(f"grpo.max_steps = {args.max_steps!r}: must be > 0 (or -1: train num_train_epochs)")
    loss_types = _supported_values("loss_type")
    if loss_types and args.loss_type not in loss_types:
        raise ConfigError(f"grpo.loss_type = {args.loss_type!r}: TRL supports {', '.join(loss_types)}")


def _supported_values(name: str) -> list[str]:
    """The values TRL's help for ``GRPOConfig.<name>`` lists as supported ([] when it lists none)."""
    field = next((f for f in dataclasses.fields(GRPOConfig) if f.name == name), None)
    found = re.search(r"Supported values are ([^.]*)\.", (field.metadata.get("help") or "") if field else "")
    return re.findall(r"'([^']+)'", found.group(1)) if found else []


def build_reward(cfg: TrainConfig, rm_dir: str | None, bf16: bool | None = None) -> Any:
    """The reward function of ``cfg.reward.mode``. ``bf16``: the trainer's precision (None: bf16 on a GPU that
    has it); an RM with fp32 weights (a co-trained one, or any on a CPU) then computes under bf16 autocast."""
    bf16 = resolve_bf16(bf16)
    sources: dict[str, Any] | None = None
    if cfg.reward.mode == "cooper" and "assistant" in cfg.cooper.negatives:
        assert cfg.cooper.assistant is not None  # CooperConfig checks that assistant is set
        client = ChatClient(cfg.cooper.assistant)
        client.preflight()  # an unreachable endpoint is reported before any model is loaded
        sources = {**NEGATIVE_SOURCES, "assistant": AssistantSource(client)}
    rm = None
    if rm_dir:
        train_rm = cfg.reward.mode == "cooper"
        with outside_zero3():  # a ZeRO-3 policy config must not partition the RM
            rm = VerifyRM.from_pretrained(
                rm_dir,
                device=local_device(),  # each process's own GPU (accelerate sets it only inside the trainer)
                max_length=cfg.reward.rm_max_length,
                trust_remote_code=cfg.trust_remote_code,
                dtype=torch.float32 if train_rm else None,  # fp32 master weights for the RM's own optimizer
                attn_implementation=attention_implementation(bf16),
            )
        if bf16 and rm.model.dtype == torch.float32:
            rm.autocast_dtype = torch.bfloat16
    updater = RMUpdater(rm, cfg.cooper.rm_update) if cfg.reward.mode == "cooper" and rm is not None else None
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
        verifier=cfg.reward.verifier,
    )


def check_same_config_on_every_rank(cfg_dict: dict[str, Any], resume: bool) -> None:
    """Under a multi-process launch every rank must run the same config and resume flag.

    Each rank's settings are compared with rank 0's; on a mismatch every rank raises the same error (so all
    stop together instead of hanging on a collective), naming the ranks and the differing keys. A no-op on
    one process.
    """
    _, world = rank_and_world()
    if world == 1:
        return
    everyone = all_gather(flatten_dict({"config": cfg_dict, "resume": resume}))
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
