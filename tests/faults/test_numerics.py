"""Non-finite numbers during a real ``cooper train`` run (mode cooper, tiny models, 3 steps).

* NaN / inf in the reward model's loss: that RM update is skipped, counted (``rm/skipped_update`` per step,
  ``totals/rm/skipped_updates``), the RM's weights stay finite and training goes on.
* A NaN RM score: it never reaches TRL (the policy update); the completion gets the verifier's verdict
  instead, counted (``reward/nonfinite_rm_scores``, ``totals/reward/nonfinite_rm_scores``).

``tests/test_cooper_core.py`` checks the updater's skip in isolation; here the faults are injected into the
RM of a whole training run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def _finite(path: Path) -> bool:
    return all(t.isfinite().all() for t in load_file(str(path / "model.safetensors")).values())


def test_nan_and_inf_in_rm_loss_and_scores_are_skipped_counted_and_training_continues(
    digits_train_config, tmp_path, monkeypatch
):
    from cooper.rl import reward as rewards
    from cooper.rl import train as train_mod

    injected = {"nan_scores": 0, "bad_updates": 0}
    returned: list[list[float]] = []
    real_build = train_mod.build_reward

    def build_with_faults(cfg, rm_dir, **kw):
        reward = real_build(cfg, rm_dir, **kw)
        rm = reward.rm
        real_logits = rm.logits

        def faulty_logits(ids, **kw):
            out = real_logits(ids, **kw)
            if torch.is_inference_mode_enabled():  # scoring for the policy's rewards
                if reward.calls == 1 and injected["nan_scores"] == 0:  # the second step: one NaN score
                    injected["nan_scores"] += 1
                    out = out.clone()
                    out[0] = float("nan")
                return out
            # the RM update (with gradients): NaN on the first, +/-inf on the second
            half = out.shape[0] // 2
            if injected["bad_updates"] == 0:
                injected["bad_updates"] += 1
                return out * float("nan")
            if injected["bad_updates"] == 1:
                injected["bad_updates"] += 1
                sign = torch.cat([-torch.ones(half), torch.ones(out.shape[0] - half)])
                return out + sign * float("inf")  # s_pos = -inf, s_neg = +inf: the loss is +inf
            return out

        monkeypatch.setattr(rm, "logits", faulty_logits)
        return reward

    real_call = rewards.RewardFunction.__call__

    def spy(self, prompts, completions, **kw):
        out = real_call(self, prompts, completions, **kw)
        returned.append(list(out))
        return out

    monkeypatch.setattr(train_mod, "build_reward", build_with_faults)
    monkeypatch.setattr(rewards.RewardFunction, "__call__", spy)

    summary = train_mod.train(digits_train_config(tmp_path, limit=16))

    assert summary["steps"] == 3, "training did not complete"
    assert injected["nan_scores"] == 1 and injected["bad_updates"] >= 1, injected
    # no reward TRL saw was NaN/inf
    assert len(returned) == 3
    assert all(isinstance(r, float) and math.isfinite(r) for step in returned for r in step), returned

    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    skipped = [r.get("rm/skipped_update", 0.0) for r in rows]
    assert sum(skipped) == injected["bad_updates"], skipped
    assert rows[-1]["totals/rm/skipped_updates"] == injected["bad_updates"]
    assert [r["reward/nonfinite_rm_scores"] for r in rows] == [0.0, 1.0, 0.0]
    assert rows[-1]["totals/reward/nonfinite_rm_scores"] == 1.0
    assert all(math.isfinite(r["reward/rm_mean"]) for r in rows)
    assert summary["totals"]["rm/skipped_updates"] == injected["bad_updates"]

    # the skipped updates left no trace: every weight of the policy and of the RM is finite
    assert _finite(tmp_path / "policy") and _finite(tmp_path / "reward_model")
