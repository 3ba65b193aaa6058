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
from typing import TYPE_CHECKING, Any

from cooper.utils.dist import rank_and_world, sum_across_ranks, sum_gradients, sum_tensor_across_ranks

if TYPE_CHECKING:
    import torch

    from cooper.rm.model import VerifyRM

log = logging.getLogger(__name__)


# -- pure functions ---------------------------------------------------------------------------------
def pairwise_rm_loss(
    s_pos: torch.Tensor, s_neg: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over valid pairs of ``-log sigmoid(s_pos - s_neg)``; 0 (with a graph) when no pair is valid.

    ``s_pos``, ``s_neg``: (P,) raw RM scores; ``valid``: (P,) bool mask or None for all.
    """
    import torch.nn.functional as F

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
    import torch.nn.functional as F

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

    def __post_init__(self) -> None:
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

    Every rank passes the same global pair list (gathered by the caller). Each rank computes the loss on its
    shard, scaled by the global pair count, and the gradients are summed across ranks, so the update equals a
    single-process update on all pairs and the weights stay identical on every rank.
    """

    def __init__(self, rm: VerifyRM, config: RMUpdateConfig | None = None) -> None:
        import torch

        self.rm = rm
        self.config = config or RMUpdateConfig()
        params = [p for p in rm.model.parameters() if p.requires_grad]
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
        import torch

        metrics = {"rm/valid_pairs": float(len(pairs)), "rm/skipped_update": 0.0}
        if not pairs:
            return metrics
        rank, world = rank_and_world()
        cfg = self.config
        model = self.rm.model
        was_training = model.training
        model.train()
        losses, correct_order, seen = [], 0, 0
        try:
            for epoch in range(cfg.epochs):
                for start in range(0, len(pairs), cfg.mini_batch_size * world):
                    chunk = pairs[start : start + cfg.mini_batch_size * world]
                    mine = chunk[rank::world]
                    self.optimizer.zero_grad(set_to_none=True)
                    loss_sum = torch.zeros((), device=self.rm.device)
                    if mine:
                        q = [p.question for p in mine] * 2
                        r = [p.reference for p in mine] * 2
                        c = [p.positive for p in mine] + [p.negative for p in mine]
                        scores = self.rm.logits(self.rm.encode(q, r, c))  # (2P,)
                        s_pos, s_neg = scores[: len(mine)], scores[len(mine) :]
                        loss_sum = pairwise_rm_loss(s_pos, s_neg) * len(mine)
                        if cfg.pointwise_weight:
                            loss_sum = loss_sum + cfg.pointwise_weight * pointwise_anchor_loss(
                                s_pos, s_neg
                            ) * len(mine)
                        if epoch == 0:
                            correct_order += int((s_pos > s_neg).sum().item())
                            seen += len(mine)
                    loss = loss_sum / len(
                        chunk
                    )  # the global mean over this mini-batch, once grads are summed
                    if loss.requires_grad:
                        loss.backward()
                    sum_gradients(list(model.parameters()))  # every rank, pairs or not
                    global_loss = sum_tensor_across_ranks(loss.detach())
                    if not self._finite(global_loss):
                        self.optimizer.zero_grad(set_to_none=True)
                        self.skipped_updates += 1
                        metrics["rm/skipped_update"] += 1.0
                        log.warning(
                            "RM update skipped: non-finite loss or gradient (%d skipped so far)",
                            self.skipped_updates,
                        )
                        continue
                    if cfg.max_grad_norm:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.updates += 1
                    losses.append(float(global_loss))
        finally:
            self.optimizer.zero_grad(set_to_none=True)
            model.train(was_training)
        totals = sum_across_ranks([correct_order, seen], self.rm.device)
        metrics["rm/loss"] = sum(losses) / len(losses) if losses else float("nan")
        metrics["rm/pair_accuracy"] = totals[0] / totals[1] if totals[1] else float("nan")
        metrics["rm/lr"] = float(self.scheduler.get_last_lr()[0])
        return metrics

    def _finite(self, loss: torch.Tensor) -> bool:
        import torch

        if not torch.isfinite(loss.detach()).all():
            return False
        return all(torch.isfinite(p.grad).all() for p in self.rm.model.parameters() if p.grad is not None)

    # -- checkpoints --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "updates": self.updates,
            "skipped_updates": self.skipped_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.updates = int(state["updates"])
        self.skipped_updates = int(state["skipped_updates"])
