"""The Cooper reward-model update: pair selection and the pairwise loss (pure functions), and
:class:`RMUpdater`, which owns the reward model's optimizer and keeps its weights identical across ranks.

Algorithm box, steps 4-6 (docs/architecture.md): per prompt group a rollout the rule verifier confirms is the
positive; a negative is made for it (:mod:`cooper.rl.negatives`); the RM takes a step on
``L = mean over valid pairs of -log sigmoid(s(q, ref, pos) - s(q, ref, neg))``.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cooper.rm import parallel
from cooper.rm.model import VerifyRM
from cooper.rm.parallel import PARALLEL_MODES
from cooper.utils.dist import rank_and_world, sum_across_ranks, sum_tensor_across_ranks

log = logging.getLogger(__name__)


# -- pure functions ---------------------------------------------------------------------------------
def pairwise_rm_loss(
    s_pos: torch.Tensor, s_neg: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over valid pairs of ``-log sigmoid(s_pos - s_neg)``; 0 (with a graph) when no pair is valid.

    ``s_pos``, ``s_neg``: (P,) raw RM scores; ``valid``: (P,) bool mask or None for all.
    """
    losses = -F.logsigmoid(s_pos - s_neg)  # (P,)
    if valid is None:
        return losses.mean() if losses.numel() else losses.sum()
    n = valid.sum()
    return (losses * valid).sum() / n.clamp(min=1)


def pointwise_anchor_loss(s_pos: torch.Tensor, s_neg: torch.Tensor) -> torch.Tensor:
    """Mean of ``BCE(s_pos, 1)`` and ``BCE(s_neg, 0)`` over pairs: ties the scores to P(correct).

    The pairwise loss only sees score differences, so during RL the RM's absolute scores can drift while
    its ranking improves; the policy does not mind (GRPO normalises rewards per group), but P(correct)
    and the hacking gap then stop meaning anything. ``s_pos``, ``s_neg``: (P,) raw scores.
    """
    return 0.5 * (F.softplus(-s_pos) + F.softplus(s_neg)).mean()  # softplus(-x) = -log sigmoid(x)


def group_indices(group_ids: Sequence[Any]) -> dict[Any, list[int]]:
    """Indices of each prompt group, groups in order of first appearance."""
    groups: dict[Any, list[int]] = {}
    for i, g in enumerate(group_ids):
        groups.setdefault(g, []).append(i)
    return groups


def select_positives(
    group_ids: Sequence[Any], correct: Sequence[bool], how: str = "first", rng: random.Random | None = None
) -> dict[Any, int]:
    """For each group with at least one verified-correct rollout, the index of its positive."""
    if how not in ("first", "random"):
        raise ValueError(f"positive selection must be 'first' or 'random', got {how!r}")
    out: dict[Any, int] = {}
    for g, idx in group_indices(group_ids).items():
        good = [i for i in idx if correct[i]]
        if good:
            out[g] = good[0] if how == "first" else (rng or random).choice(good)
    return out


@dataclass
class Pair:
    """One RM training pair: the same question and reference, a verified positive and a wrong negative."""

    question: str
    reference: str
    positive: str
    negative: str
    source: str  # which negative source made the negative


# -- the updater ------------------------------------------------------------------------------------
@dataclass
class RMUpdateConfig:
    """The reward model's own optimisation during RL (mode ``cooper``)."""

    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    mini_batch_size: int = 64  # pairs per optimizer step (per process)
    epochs: int = 1  # passes over each step's pairs
    # Weight of a pointwise BCE anchor (positive -> 1, negative -> 0) added to the pairwise loss. 0 is the
    # paper's loss; > 0 keeps the RM's probabilities calibrated (see pointwise_anchor_loss).
    pointwise_weight: float = 0.0
    # How the RM is spread over the processes (see cooper.rm.parallel): "shard" (FSDP2: parameters, gradients
    # and AdamW states split across ranks), "replicate" (DDP: a full copy per rank, bucketed gradient
    # all-reduce) or "auto" (shard when there is more than one process).
    parallel: str = "auto"

    def __post_init__(self) -> None:
        if self.parallel not in PARALLEL_MODES:
            raise ValueError(
                f"rm_update: parallel must be one of {', '.join(PARALLEL_MODES)}, got {self.parallel!r}"
            )
        values = (self.learning_rate, self.weight_decay, self.max_grad_norm, self.pointwise_weight)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(
                "rm_update: learning_rate, weight_decay, max_grad_norm and pointwise_weight must be finite"
            )
        if self.learning_rate <= 0 or self.mini_batch_size <= 0 or self.epochs <= 0:
            raise ValueError("rm_update: learning_rate, mini_batch_size and epochs must be > 0")
        if self.warmup_steps < 0 or self.max_grad_norm < 0 or self.pointwise_weight < 0:
            raise ValueError("rm_update: warmup_steps, max_grad_norm and pointwise_weight must be >= 0")


class RMUpdater:
    """Owns the RM optimizer and scheduler; :meth:`update` takes one Cooper step on a list of pairs.

    The RM is spread over the processes by PyTorch's own engines (:mod:`cooper.rm.parallel`, the config's
    ``parallel``): FSDP2 shards it, DDP replicates it, one process holds it plain. Every rank passes the same
    global pair list (gathered by the caller) and computes the loss on its share of each mini-batch, scaled so
    that the engine's averaged gradient is the gradient of the mean over the whole mini-batch: the update
    equals a single-process update on all pairs. Every rank runs the same number of forwards and backwards
    (FSDP2's and DDP's are collective): a rank without a pair in a mini-batch runs one with zero weight.
    """

    def __init__(self, rm: VerifyRM, config: RMUpdateConfig | None = None) -> None:
        self.rm = rm
        self.config = config or RMUpdateConfig()
        _, world = rank_and_world()
        self.parallel = parallel.resolve_parallel(self.config.parallel, world)
        self.module = rm.model  # what the training forward goes through
        if self.parallel == "shard":
            bf16 = rm.autocast_dtype == torch.bfloat16
            parallel.shard(rm.model, rm.device, bf16=bf16)
            rm.autocast_dtype = None  # FSDP2's mixed-precision policy casts instead
            rm.collective = True
        elif self.parallel == "replicate":
            self.module = parallel.replicate(rm.model, rm.device)
        params = [p for p in rm.model.parameters() if p.requires_grad]  # after sharding: the local shards
        self.optimizer = torch.optim.AdamW(
            params, lr=self.config.learning_rate, weight_decay=self.config.weight_decay
        )
        warmup = self.config.warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
        )
        self.updates = 0
        self.skipped_updates = 0

    def update(self, pairs: list[Pair]) -> dict[str, float]:
        """One RM step on ``pairs`` (the same list on every rank). Returns the step's metrics."""
        metrics = {"rm/valid_pairs": float(len(pairs)), "rm/skipped_update": 0.0}
        if not pairs:
            return metrics
        _, world = rank_and_world()
        cfg = self.config
        model = self.rm.model
        was_training = model.training
        model.train()
        losses, counts = [], [0, 0]  # pairs ordered correctly, pairs seen (first epoch, this rank)
        try:
            for epoch in range(cfg.epochs):
                for start in range(0, len(pairs), cfg.mini_batch_size * world):
                    chunk = pairs[start : start + cfg.mini_batch_size * world]
                    loss = self._backward(chunk, counts if epoch == 0 else None)
                    global_loss = sum_tensor_across_ranks(loss) / world
                    norm = self._grad_norm()
                    if not (math.isfinite(float(global_loss)) and math.isfinite(float(norm))):
                        self.optimizer.zero_grad(set_to_none=True)
                        self.skipped_updates += 1
                        metrics["rm/skipped_update"] += 1.0
                        log.warning(
                            "RM update skipped: non-finite loss or gradient (%d skipped so far)",
                            self.skipped_updates,
                        )
                        continue
                    if cfg.max_grad_norm:
                        torch.nn.utils.clip_grads_with_norm_(
                            [p for p in model.parameters() if p.grad is not None], cfg.max_grad_norm, norm
                        )
                    self.optimizer.step()
                    self.scheduler.step()
                    self.updates += 1
                    losses.append(float(global_loss))
        finally:
            self.optimizer.zero_grad(set_to_none=True)
            model.train(was_training)
        totals = sum_across_ranks(counts, self.rm.device)
        metrics["rm/loss"] = sum(losses) / len(losses) if losses else float("nan")
        metrics["rm/pair_accuracy"] = totals[0] / totals[1] if totals[1] else float("nan")
        metrics["rm/lr"] = float(self.scheduler.get_last_lr()[0])
        return metrics

    def _backward(self, chunk: list[Pair], counts: list[int] | None) -> torch.Tensor:
        """Forward and backward of this rank's share of a global mini-batch; returns this rank's part of the
        mini-batch's mean loss, times the world size (the engines average gradients over the ranks). A rank
        without a pair runs the chunk's first pair with zero weight: its forward and backward still happen."""
        rank, world = rank_and_world()
        cfg = self.config
        self.optimizer.zero_grad(set_to_none=True)
        mine = chunk[rank::world]
        weight = world / len(chunk)
        if not mine:
            mine, weight = chunk[:1], 0.0
        q = [p.question for p in mine] * 2
        r = [p.reference for p in mine] * 2
        c = [p.positive for p in mine] + [p.negative for p in mine]
        scores = self.rm.logits(self.rm.encode(q, r, c), module=self.module)  # (2P,)
        s_pos, s_neg = scores[: len(mine)], scores[len(mine) :]
        loss_sum = pairwise_rm_loss(s_pos, s_neg) * len(mine)
        if cfg.pointwise_weight:
            loss_sum = loss_sum + cfg.pointwise_weight * pointwise_anchor_loss(s_pos, s_neg) * len(mine)
        loss = loss_sum * weight
        loss.backward()
        if counts is not None and weight:
            counts[0] += int((s_pos > s_neg).sum().item())
            counts[1] += len(mine)
        return loss.detach()

    def _grad_norm(self) -> torch.Tensor:
        """The global L2 norm of the RM's gradients (over every shard); non-finite if any gradient is."""
        grads = [p.grad for p in self.rm.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm

    def memory_bytes(self) -> dict[str, int]:
        """Bytes this process holds of the RM's parameters, gradients and optimizer state."""
        return parallel.local_bytes(self.rm.model, self.optimizer)

    # -- checkpoints --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The scheduler and counters (plain values; the weights and AdamW state go through
        :meth:`save_sharded`)."""
        return {
            "scheduler": self.scheduler.state_dict(),
            "updates": self.updates,
            "skipped_updates": self.skipped_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state["scheduler"])
        self.updates = int(state["updates"])
        self.skipped_updates = int(state["skipped_updates"])

    def save_sharded(self, path: Path) -> None:
        """The RM's weights and AdamW state into ``path`` (DCP, each rank its shards); every rank calls it."""
        parallel.save_sharded(self.rm.model, self.optimizer, path)

    def load_sharded(self, path: Path) -> None:
        """Restore :meth:`save_sharded`'s ``path``, saved on any number of processes; every rank calls it."""
        parallel.load_sharded(self.rm.model, self.optimizer, path)
