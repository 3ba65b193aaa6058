"""Exact resume: a ``cooper train`` run in mode ``cooper``, SIGKILLed at 3 random points and resumed each
time, ends bitwise equal to the same run uninterrupted: the policy's weights, the RM's weights and every
``metrics.jsonl`` row (timing fields aside).

The kill points are drawn from a seed that the test prints (``EXACT_RESUME_SEED`` replays one). Each kill
lands after a random step, while the run writes that step's checkpoint or works on the next one; the run
then resumes from the newest complete checkpoint, repeating the steps after it.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from faults.killer import Child, complete_lines
from helpers_data import write_train_config

pytestmark = pytest.mark.slow

MAX_STEPS = 8


def _config(path: Path, out: Path, policy: Path, rm: Path) -> Path:
    """Mode cooper on the warm-started policy (so that pairs form), a checkpoint every step."""
    return write_train_config(
        path,
        out,
        policy=policy,
        rm=rm,
        negatives=["policy", "perturb"],
        max_steps=MAX_STEPS,
        save_steps=1,
        disable_tqdm=True,
    )


def _is_timing(key: str) -> bool:
    return (
        key == "time"
        or key.startswith("seconds/")
        or "runtime" in key
        or key.endswith(("_time", "per_second"))
    )


def _rows(out: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not _is_timing(k)} for row in rows]


def _differences(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    if a.keys() != b.keys():
        return [f"keys differ: {sorted(set(a) ^ set(b))}"]
    return [
        f"{k}: max abs diff {(a[k].float() - b[k].float()).abs().max().item():.3e}"
        for k in a
        if not torch.equal(a[k], b[k])
    ]


def test_a_run_killed_three_times_ends_bitwise_equal_to_an_uninterrupted_one(
    tiny_paths, digits_policy: Path, tmp_path: Path
) -> None:
    seed = int(os.environ.get("EXACT_RESUME_SEED", random.SystemRandom().randrange(10**6)))
    # steps done when the kill fires: from 2 on, so that a checkpoint is complete even if the kill tears one
    kill_after = sorted(random.Random(seed).sample(range(2, MAX_STEPS), 3))
    print(f"EXACT_RESUME_SEED={seed}: kills after steps {kill_after}")

    whole = tmp_path / "whole"
    config = _config(tmp_path / "whole.yaml", whole, digits_policy, tiny_paths.rm_dir)
    child = Child(["train", str(config)], tmp_path / "whole.log")
    assert child.wait() == 0, child.log[-3000:]

    out = tmp_path / "killed"
    config = _config(tmp_path / "killed.yaml", out, digits_policy, tiny_paths.rm_dir)
    for i, step in enumerate(kill_after):
        args = ["train", str(config), *(["--resume"] if i else [])]
        child = Child(args, tmp_path / f"run{i}.log")
        fired = child.kill_when(lambda step=step: len(complete_lines(out / "metrics.jsonl")) >= step)
        assert fired, f"run {i} ended before the kill after step {step} (seed {seed}):\n{child.log[-3000:]}"
        assert not i or "resuming from" in child.log, child.log[-3000:]
    child = Child(["train", str(config), "--resume"], tmp_path / "last.log")
    assert child.wait() == 0, child.log[-3000:]
    assert "resuming from" in child.log, child.log[-3000:]

    for name in ("policy", "reward_model"):
        diff = _differences(
            load_file(whole / name / "model.safetensors"), load_file(out / name / "model.safetensors")
        )
        assert not diff, f"{name} after kills after steps {kill_after} (seed {seed}): " + "; ".join(diff[:5])
    initial = load_file(tiny_paths.rm_dir / "model.safetensors")
    assert _differences(initial, load_file(out / "reward_model" / "model.safetensors")), (
        "the RM never trained"
    )
    want, got = _rows(whole), _rows(out)
    assert [r["step"] for r in got] == list(range(1, MAX_STEPS + 1))
    assert sum(r.get("rm/valid_pairs", 0) for r in got) > 0, "no RM update: the comparison is vacuous"
    for a, b in zip(want, got, strict=True):
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        assert not keys, f"step {a['step']} (seed {seed}): " + ", ".join(
            f"{k}: {a.get(k)} vs {b.get(k)}" for k in keys
        )
