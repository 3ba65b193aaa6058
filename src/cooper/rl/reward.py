"""The three reward modes as one TRL reward callable, with the reward-hacking monitor.

``RewardFunction(mode=...)`` is passed to ``trl.GRPOTrainer(reward_funcs=[...])``. TRL calls it on each
process with that process's completions and the dataset columns (``question``, ``reference``, ``id`` and
any others, which reach the verifier as its row fields).
Each call is one step of the algorithm box:

1. score   the completions with the RM as it is now (the previous step's weights) — ``static_rm``, ``cooper``
2. verify  every completion with the rule verifier, ``verifier`` (all modes: the monitor needs it)
3. return  the rewards TRL's GRPO update uses (verifier 0/1 in ``rule``, P(correct) otherwise)
4-6.       in ``cooper`` mode, gather the groups from every rank, pick positives, make negatives and take
           one RM step (:mod:`cooper.rl.rm_update`); the policy update of this step already has its rewards.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cooper.rl.negatives import NEGATIVE_SOURCES, NegativeRequest, NegativeSource, make_negatives
from cooper.rl.rm_update import Pair, RMUpdater, group_indices, select_positives
from cooper.utils.dist import gather_lists, on_rank0_then_broadcast
from cooper.verify.pool import is_correct_batch
from cooper.verify.registry import DEFAULT_VERIFIER, check_verifier, column_fields

log = logging.getLogger(__name__)

MODES = ("rule", "static_rm", "cooper")
# What TRL passes a reward function besides the dataset's columns: never row fields for the verifier
_TRL_KWARGS = frozenset({"trainer_state", "log_extra", "log_metric", "completion_ids", "environments"})


def completion_text(completion: Any) -> str:
    """Text of a TRL completion: a string, or a conversational list of messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


@dataclass
class Rollouts:
    """One step's rollouts from every rank, in rank order, so that groups split across ranks are whole."""

    questions: list[str]
    references: list[str]
    texts: list[str]
    correct: list[bool]
    probs: list[float] | None  # the RM's P(correct), non-finite ones replaced; None without an RM
    rewards: list[float]
    groups: list[Any]
    nonfinite: int  # RM scores that were not finite, over every rank
    fields: list[dict[str, Any]] = field(default_factory=list)  # each rollout's row fields for the verifier


def gather_rollouts(
    questions: list[str],
    references: list[str],
    texts: list[str],
    correct: list[bool],
    probs: list[float] | None,
    rewards: list[float],
    groups: list[Any],
    nonfinite: list[bool],
    fields: list[dict[str, Any]] | None = None,
) -> Rollouts:
    """This rank's rollouts joined with every other rank's, in one collective."""
    mine = list(
        zip(
            questions,
            references,
            texts,
            correct,
            list(probs) if probs is not None else [None] * len(texts),
            rewards,
            groups,
            nonfinite,
            fields if fields is not None else [{} for _ in texts],
            strict=True,
        )
    )
    rows = gather_lists(mine)
    cols = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(9)]
    return Rollouts(
        questions=cols[0],
        references=cols[1],
        texts=cols[2],
        correct=cols[3],
        probs=cols[4] if probs is not None else None,
        rewards=cols[5],
        groups=cols[6],
        nonfinite=sum(cols[7]),
        fields=cols[8],
    )


def _without_nonfinite(
    probs: list[float] | None, correct: list[bool]
) -> tuple[list[float] | None, list[bool]]:
    """``probs`` with every non-finite score replaced by the verifier's 0/1 verdict, and which were replaced.

    A NaN reward would reach GRPO's group normalisation and turn the whole policy update into NaN; the
    verifier's verdict is the best estimate left for that completion.
    """
    if probs is None:
        return None, [False] * len(correct)
    bad = [not (isinstance(p, float | int) and math.isfinite(p)) for p in probs]
    return [float(c) if b else float(p) for p, c, b in zip(probs, correct, bad, strict=True)], bad


@dataclass
class StepRecord:
    """What one reward call measured; the training loop writes it to metrics.jsonl."""

    metrics: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # time per phase inside the reward call
    started: float = 0.0  # perf_counter() when the reward call began (generation ended) ...
    ended: float = 0.0  # ... and when it returned (the policy update begins)


class RewardFunction:
    """A TRL reward callable for mode ``rule``, ``static_rm`` or ``cooper`` (see the module docstring).

    ``verifier``: the rule verifier, ``math`` (default), ``choice``, ``string`` or a user's batch function
    ``module:function`` / ``path/to/file.py:function`` (see :mod:`cooper.verify.registry`); it is checked
    here (a :class:`~cooper.verify.VerifierError` if unusable) and judges every completion and, in mode
    ``cooper``, every negative. It gets the dataset's other columns as row fields."""

    def __init__(
        self,
        mode: str,
        *,
        rm: Any = None,
        updater: RMUpdater | None = None,
        negative_order: tuple[str, ...] = ("perturb", "policy"),
        negative_sources: dict[str, NegativeSource] | None = None,
        negatives_from: str = "first",
        positive: str = "first",
        rm_batch_size: int = 16,
        verifier_timeout_s: float = 5.0,
        seed: int = 0,
        verifier: str = DEFAULT_VERIFIER,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"reward mode must be one of {MODES}, got {mode!r}")
        if mode != "rule" and rm is None:
            raise ValueError(f"reward mode {mode!r} needs a reward model (reward.rm)")
        if mode == "cooper" and updater is None:
            raise ValueError("reward mode 'cooper' needs an RMUpdater")
        if mode == "rule" and (rm is not None or updater is not None):
            # as cooper train: the verifier pays the policy, so an RM would only be scored and reported as if
            # it were the reward (its hacking gap describes nothing the policy sees)
            log.warning(
                "reward mode 'rule': the verifier pays the policy; the reward model given is not used"
            )
            rm, updater = None, None
        self.mode = mode
        self.rm = rm
        self.updater = updater
        self.negative_order = tuple(negative_order)
        if negatives_from not in ("first", "each"):
            raise ValueError(f"negatives_from must be first or each, got {negatives_from!r}")
        self.negatives_from = negatives_from
        self.negative_sources = dict(negative_sources or NEGATIVE_SOURCES)
        for name in self.negative_order:
            if name not in self.negative_sources:
                raise ValueError(
                    f"unknown negative source {name!r}; available: {sorted(self.negative_sources)}"
                )
        self.positive = positive
        self.rm_batch_size = rm_batch_size
        self.verifier_timeout_s = verifier_timeout_s
        self.verifier = check_verifier(verifier)
        self.rng = random.Random(seed)
        self.__name__ = mode  # TRL names the reward column after the callable
        self.calls = 0
        self.last: StepRecord = StepRecord()
        self.totals: Counter[str] = Counter()  # counted across the run: fallbacks, rejections, skips
        self._warned_nonfinite = False

    # -- state, for checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What a resume needs besides the RM's weights and AdamW state (those are sharded: see
        :meth:`save_rm`): the RNG, the counters and, in mode ``cooper``, the RM's scheduler. Plain values."""
        state: dict[str, Any] = {"rng": self.rng.getstate(), "totals": dict(self.totals), "calls": self.calls}
        if self.updater is not None:
            state["updater"] = self.updater.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.totals = Counter(state["totals"])
        self.calls = int(state["calls"])
        if self.updater is not None:
            if "updater" not in state:
                raise ValueError(
                    "the saved reward state has no RM optimizer (it was not saved in mode cooper)"
                )
            self.updater.load_state_dict(state["updater"])

    def save_rm(self, path: Path) -> None:
        """In mode ``cooper``, the RM's weights and AdamW state into ``path`` (each rank its shards, through
        ``torch.distributed.checkpoint``); every rank calls it. Nothing to save in the other modes."""
        if self.updater is not None:
            self.updater.save_sharded(path)

    def load_rm(self, path: Path) -> None:
        """Restore :meth:`save_rm`'s ``path``, saved on any number of processes; every rank calls it."""
        if self.updater is None:
            return
        if not path.is_dir():
            raise ValueError(
                f"{path} is missing: the checkpoint holds no sharded reward model (an older cooper saved it)"
            )
        self.updater.load_sharded(path)

    def __call__(
        self,
        prompts: list[Any],
        completions: list[Any],
        *,
        reference: list[str] | None = None,
        question: list[str] | None = None,
        id: list[Any] | None = None,  # noqa: A002 - the dataset column TRL passes through
        log_metric: Any = None,
        **columns: Any,
    ) -> list[float]:
        if reference is None:
            raise ValueError(
                "the reward needs each prompt's reference answer: give the training dataset a 'reference' column "
                f"(TRL passes the dataset's columns to reward functions; it passed {sorted(columns) or 'none'}; "
                "with remove_unused_columns=True TRL drops them)"
            )
        rec = StepRecord()
        rec.started = time.perf_counter()
        texts = [completion_text(c) for c in completions]
        questions = question or [completion_text(p) for p in prompts]
        groups = id if id is not None else [completion_text(p) for p in prompts]
        data = {k: v for k, v in columns.items() if k not in _TRL_KWARGS}
        fields = column_fields(self.verifier, data, len(texts))  # the rows' other columns
        rows = [{k: v[i] for k, v in fields.items()} for i in range(len(texts))]

        probs = self._score(rec, questions, reference, texts)  # 1. the RM as the previous step left it
        correct = self._verify(rec, texts, reference, fields)  # 2. the rule verifier, every rollout
        probs, nonfinite = _without_nonfinite(probs, correct)  # a NaN score never reaches GRPO
        rewards = [float(c) for c in correct] if self.mode == "rule" else list(probs or [])  # 3. rewards
        step = gather_rollouts(questions, reference, texts, correct, probs, rewards, groups, nonfinite, rows)
        self._monitor(rec, step)
        if self.mode == "cooper":
            self._cooper_update(
                rec, step
            )  # 4-6. positives, negatives, one RM step (same pairs on every rank)
        rec.metrics.update({f"totals/{k}": float(v) for k, v in self.totals.items()})
        if log_metric is not None:
            for k, v in rec.metrics.items():
                if isinstance(v, float) and math.isfinite(v):
                    log_metric(k, v)
        rec.ended = time.perf_counter()
        self.last = rec
        self.calls += 1
        return rewards

    def _score(
        self, rec: StepRecord, questions: list[str], references: list[str], texts: list[str]
    ) -> list[float] | None:
        t = time.perf_counter()
        probs = (
            self.rm.score(questions, references, texts, batch_size=self.rm_batch_size) if self.rm else None
        )
        rec.seconds["scoring"] = time.perf_counter() - t
        return probs

    def _verify(
        self,
        rec: StepRecord,
        texts: list[str],
        references: list[str],
        fields: dict[str, Any] | None = None,
    ) -> list[bool]:
        t = time.perf_counter()
        correct = is_correct_batch(
            texts,
            references,
            verifier=self.verifier,
            timeout_s=self.verifier_timeout_s,
            **(fields or {}),
        )
        rec.seconds["verification"] = time.perf_counter() - t
        return correct

    def _monitor(self, rec: StepRecord, step: Rollouts) -> None:
        """The step's reward metrics over every rank's rollouts; non-finite RM scores counted and said once."""
        m = rec.metrics
        n = len(step.correct)
        m["reward/rule_accuracy"] = sum(step.correct) / n
        if step.probs is not None:
            m["reward/rm_mean"] = sum(step.probs) / n
            m["reward/hacking_gap"] = m["reward/rm_mean"] - m["reward/rule_accuracy"]
            m["reward/nonfinite_rm_scores"] = float(step.nonfinite)
        m["reward/policy_reward_mean"] = sum(step.rewards) / n
        if step.nonfinite:
            self.totals["reward/nonfinite_rm_scores"] += step.nonfinite
            if not self._warned_nonfinite:
                self._warned_nonfinite = True
                log.warning(
                    "the reward model gave %d non-finite scores at reward call %d; those completions get the "
                    "rule verifier's 0/1 reward instead (counted in reward/nonfinite_rm_scores; said once)",
                    step.nonfinite,
                    self.calls + 1,
                )

    def _cooper_update(self, rec: StepRecord, step: Rollouts) -> None:
        questions, references, texts, correct = step.questions, step.references, step.texts, step.correct
        probs, groups = step.probs, step.groups
        t = time.perf_counter()

        def build_pairs() -> tuple[list[Pair], dict[str, int], int, int]:
            positives = select_positives(groups, correct, self.positive, self.rng)
            members = group_indices(groups)
            requests = []
            for g, i in positives.items():
                others = [
                    (texts[j], correct[j], probs[j] if probs is not None else None)
                    for j in members[g]
                    if j != i
                ]
                fields = step.fields[i] if step.fields else {}
                requests.append(NegativeRequest(questions[i], references[i], texts[i], others, fields))
            orders = [self.negative_order]
            if self.negatives_from == "each":
                orders = [(name,) for name in self.negative_order]
            pairs: list[Pair] = []
            counts: Counter[str] = Counter()
            for order in orders:
                made, c = make_negatives(
                    requests, order, self.negative_sources, self.rng, verifier=self.verifier
                )
                counts.update(c)
                pairs += [
                    Pair(req.question, req.reference, req.positive, neg[0], neg[1])
                    for req, neg in zip(requests, made, strict=True)
                    if neg is not None
                ]
            return pairs, dict(counts), len(positives), len(members)

        # Built once (rank 0) and shared, so every rank trains the RM on exactly the same pairs.
        pairs, counts, n_positive, n_groups = on_rank0_then_broadcast(build_pairs)
        rec.seconds["negatives"] = time.perf_counter() - t
        self.totals.update(counts)
        rec.metrics.update({k: float(v) for k, v in counts.items()})
        rec.metrics["rm/groups_with_positive"] = float(n_positive)
        rec.metrics["rm/groups"] = float(n_groups)

        t = time.perf_counter()
        assert self.updater is not None  # mode cooper always has one (checked in __init__)
        update = self.updater.update(pairs)
        rec.seconds["rm_update"] = time.perf_counter() - t
        self.totals["rm/skipped_updates"] += int(update.get("rm/skipped_update", 0))
        rec.metrics.update(update)
