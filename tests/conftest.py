"""Fixtures shared by the test modules: the tiny model set and single-threaded torch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cooper.utils.tiny import TinyPaths, tiny_models
from helpers_data import DIGITS, DIGITS_INSTRUCTION


@pytest.fixture(scope="session")
def tiny_paths(tmp_path_factory: pytest.TempPathFactory) -> TinyPaths:
    """The default tiny tokenizer, policy and reward model, built once per session (read them, don't
    modify them: copy a directory first)."""
    return tiny_models(tmp_path_factory.getbasetemp() / "tiny-models")


@pytest.fixture(scope="session")
def digits_policy(tiny_paths: TinyPaths, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny policy warm-started (SFT, 30 steps) to answer 'The answer is D.' on configs/data/digits.jsonl,
    so that rollouts include verified positives; built once per session (read it, don't modify it)."""
    from cooper.rl.sft import as_examples, sft_warm_start

    rows = [json.loads(line) for line in DIGITS.read_text().splitlines()]
    examples = as_examples(
        [dict(r, completion=f"The answer is {r['reference']}.") for r in rows], DIGITS_INSTRUCTION
    )
    root = tmp_path_factory.mktemp("digits-policy")
    return Path(
        sft_warm_start(tiny_paths.policy_dir, examples, root / "sft", max_steps=30, learning_rate=3e-3)
    )


@pytest.fixture(scope="session")
def digits_train_config(tiny_paths: TinyPaths, digits_policy: Path):
    """A factory for the tiny ``cooper train`` config used by the training tests: ``digits_policy`` and the tiny
    RM, 3 GRPO steps of 2 prompts x 4 rollouts; ``make(out, mode, limit=..., **grpo)`` overrides the mode,
    the prompt count and any ``grpo`` key."""
    from cooper.rl.config import load_config

    def make(out: Path, mode: str = "cooper", *, limit: int = 32, **grpo):
        return load_config(
            None,
            [],
            output_dir=str(out),
            policy=str(digits_policy),
            data={"files": [str(DIGITS)], "instruction": DIGITS_INSTRUCTION, "limit": limit},
            reward={"mode": mode, "rm": str(tiny_paths.rm_dir), "rm_max_length": 128},
            cooper={"rm_update": {"learning_rate": 1e-3}},
            monitor={"plot": False},
            grpo={
                "max_steps": 3,
                "learning_rate": 1e-3,
                "per_device_train_batch_size": 8,
                "num_generations": 4,
                "max_completion_length": 12,
                "save_steps": 100,
                "beta": 0.0,
                **grpo,
            },
        )

    return make


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the requesting module: tiny models gain nothing from threads, and on a busy
    2-core machine two OpenMP threads stall each other (10-100x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
