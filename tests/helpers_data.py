"""The small data the training tests share: ``configs/data/digits.jsonl`` and the instruction the
``digits_policy`` fixture (``conftest.py``) was warm-started with, which every run on that policy must reuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DIGITS = Path(__file__).resolve().parent.parent / "configs" / "data" / "digits.jsonl"
DIGITS_INSTRUCTION = "Answer with the digit."


def write_train_config(
    path: Path,
    out: Path,
    *,
    policy: Path,
    rm: Path,
    mode: str = "cooper",
    negatives: list[str] | None = None,
    **grpo: Any,
) -> Path:
    """A small ``cooper train`` config on DIGITS (16 prompts; 8 completions of at most 8 tokens per step; policy
    and RM lr 1e-3; no KL) written to ``path`` as JSON, which is YAML; ``grpo`` adds or overrides GRPO keys."""
    cooper: dict[str, Any] = {"rm_update": {"learning_rate": 1e-3}}
    if negatives is not None:
        cooper["negatives"] = negatives
    cfg = {
        "output_dir": str(out),
        "policy": str(policy),
        "seed": 0,
        "data": {"files": [str(DIGITS)], "instruction": DIGITS_INSTRUCTION, "limit": 16},
        "reward": {"mode": mode, "rm": None if mode == "rule" else str(rm), "rm_max_length": 96},
        "cooper": cooper,
        "monitor": {"plot": False},
        "grpo": {
            "learning_rate": 1e-3,
            "per_device_train_batch_size": 8,
            "num_generations": 4,
            "max_completion_length": 8,
            "beta": 0.0,
            **grpo,
        },
    }
    path.write_text(json.dumps(cfg))
    return path


# User verifiers (``path/to/my_verifiers.py:function``) the tests of ``--verifier`` / ``reward.verifier`` share;
# each reads a data column, so a test sees that the rows' other columns reach it.
USER_VERIFIERS = '''
import json


def check(responses, references, verdict=None, log=None, **fields):
    """The data's own verdict column ("yes" is correct); what it was given is appended to the file the
    `log` column names."""
    if log is not None:
        with open(log[0], "a", encoding="utf-8") as f:
            for r, g, v in zip(responses, references, verdict):
                f.write(json.dumps({"response": r, "reference": g, "verdict": v, "fields": sorted(fields)}) + "\\n")
    return [v == "yes" for v in verdict]


def typed(responses, references, answer_type=None, **fields):
    """Correct exactly where the row's answer_type is integer or string."""
    return [t in ("integer", "string") for t in answer_type]


def arith(responses, references, source=None, **fields):
    """Correct exactly where the row's source is arith."""
    return [s == "arith" for s in source]


def boom(responses, references, **fields):
    raise RuntimeError("my verifier broke")
'''


def write_user_verifiers(folder: Path) -> Path:
    """``folder/my_verifiers.py`` with :data:`USER_VERIFIERS`; use it as ``f"{path}:check"``."""
    path = folder / "my_verifiers.py"
    path.write_text(USER_VERIFIERS, encoding="utf-8")
    return path
