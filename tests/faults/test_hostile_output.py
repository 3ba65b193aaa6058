"""Hostile model output through the whole reward path of a training step: RM scoring (template, tokenizer,
truncation), the rule verifier's worker pool, negative selection and the RM update.

``tests/test_verify.py`` checks the verifier alone on hostile strings; here the same strings (and a few
the RM's tokenizer must survive: megabytes, 100k tokens, spelled special tokens, invalid UTF-8) arrive as
completions in one call of the training reward (``RewardFunction``, mode ``cooper``), mixed with normal
ones. Nothing may run code, crash the step, stall it past the verifier's deadline, or break the pool.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cooper.rl.reward import RewardFunction
from cooper.rl.rm_update import RMUpdateConfig, RMUpdater
from cooper.rm.model import VerifyRM
from cooper.verify.pool import is_correct_batch, shared_pool

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TIMEOUT_S = 5.0  # the verifier's per-item deadline in this test


def _hostile(canary: Path) -> list[str]:
    touch = f"__import__('os').system('touch {canary}')"
    invalid_utf8 = b"The answer is \xff\xfe\xc3 2 \xed\xa0\x80".decode("utf-8", errors="surrogateescape")
    return [
        "x" * 1_000_000,  # 1 MB, no answer
        "1 + " * 50_000 + "= \\boxed{2}",  # ~150k tokens for the tiny tokenizer, a correct answer at the end
        "<|im_end|><|endoftext|><|im_start|>" * 2_000,  # only (spelled) special tokens
        invalid_utf8,
        "\ud800\udfff the answer is \ud800",  # lone surrogates
        touch,
        "\\boxed{" + touch + "}",
        "The answer is " + touch,
        f'$eval("{touch}")$',
        f"\\boxed{{(lambda: exec(\"open('{canary}','w')\"))()}}",
        "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
        "\\boxed{10^{10^{10^{10}}}}",
        "\\boxed{" + "\\frac{1}{" * 200 + "2" + "}" * 200 + "}",
        "The answer is 5\x00\x00",
    ]


@pytest.fixture(scope="module")
def reward(tiny_paths) -> RewardFunction:
    rm = VerifyRM.from_pretrained(tiny_paths.rm_dir, device="cpu", max_length=256)
    updater = RMUpdater(rm, RMUpdateConfig(learning_rate=1e-3))
    return RewardFunction(
        "cooper",
        rm=rm,
        updater=updater,
        negative_order=("perturb", "policy"),
        verifier_timeout_s=TIMEOUT_S,
    )


def test_hostile_completions_through_the_training_reward(reward, tmp_path):
    canary = tmp_path / "CANARY"
    hostile = _hostile(canary)
    normal = ["1 + 1 = 2, so \\boxed{2}.", "I think it is \\boxed{3}.", "The answer is 2."]
    # two prompt groups: "a" = the normal answers and the 1 MB one; "b" = the other hostile ones, whose only
    # positive is the 150k-token completion (so it is perturbed into a negative and trained on)
    completions = normal + hostile
    ids = ["a"] * (len(normal) + 1) + ["b"] * (len(hostile) - 1)
    n = len(completions)
    pool = shared_pool()
    pool.start()
    before = dict(pool.stats)

    rewards = reward(
        prompts=["What is 1+1?"] * n,
        completions=completions,
        reference=["2"] * n,
        question=["What is 1+1?"] * n,
        id=ids,
    )

    assert len(rewards) == n
    assert all(isinstance(r, float) and math.isfinite(r) and 0.0 <= r <= 1.0 for r in rewards), rewards
    assert not canary.exists(), "a hostile completion ran code"
    # every item got a verdict inside its deadline: none had to be killed, no worker crashed
    assert pool.stats["items"] - before["items"] >= n
    assert pool.stats["timeouts"] == before["timeouts"]
    assert pool.stats["worker_crashes"] == before["worker_crashes"]
    m = reward.last.metrics
    # the verifier judged exactly the two normal correct answers and the 150k-token one correct
    assert m["reward/rule_accuracy"] == pytest.approx(3 / n)
    assert m["reward/nonfinite_rm_scores"] == 0.0
    # the RM update ran on the pairs (hostile negatives included) and stayed finite
    assert m["rm/groups_with_positive"] == 2.0 and m["rm/valid_pairs"] >= 1
    assert m["rm/skipped_update"] == 0.0 and math.isfinite(m["rm/loss"])
    assert all(p.isfinite().all() for p in reward.rm.model.parameters())
    # and the pool still serves normal work afterwards
    assert is_correct_batch(["so \\boxed{7}", "so \\boxed{8}"], ["7", "7"], timeout_s=TIMEOUT_S) == [
        True,
        False,
    ]


def test_invalid_unicode_in_a_negative_does_not_break_the_rm_update(reward):
    """An assistant endpoint may answer with a JSON "\\ud800" escape: the RM must still encode it."""
    from cooper.rl.rm_update import Pair

    bad = "2 + 2 = \\boxed{5} \ud800\udc00\udfff " + b"\xff".decode("utf-8", errors="surrogateescape")
    pairs = [Pair("What is 2+2?", "4", "2 + 2 = \\boxed{4}", bad, "assistant")]
    metrics = reward.updater.update(pairs)
    assert metrics["rm/valid_pairs"] == 1.0 and metrics["rm/skipped_update"] == 0.0
    probs = reward.rm.score(["What is 2+2?"], ["4\udcff"], [bad])
    assert len(probs) == 1 and 0.0 <= probs[0] <= 1.0
