"""Supervised warm start of a policy with TRL's ``SFTTrainer`` (the paper starts RL from instruct models;
a tiny random policy needs this before RL has any reward to learn from)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import TrainerCallback
from trl import SFTConfig, SFTTrainer

from cooper.data.prompts import user_message
from cooper.utils.device import attention_implementation, resolve_bf16, trainer_precision

log = logging.getLogger(__name__)


def sft_warm_start(
    policy_dir: str | Path,
    examples: list[dict[str, str]],
    out_dir: str | Path,
    *,
    max_steps: int = 100,
    learning_rate: float = 1e-3,
    batch_size: int = 16,
    seed: int = 0,
    max_length: int = 256,
    callbacks: Sequence[TrainerCallback] = (),
    bf16: bool | None = None,
) -> Path:
    """Fine-tune on ``examples`` and save to ``out_dir``; ``callbacks``: extra ``TrainerCallback`` objects;
    ``bf16``: as :func:`cooper.utils.device.trainer_precision` (None: bf16 on a GPU that has it, else fp32).

    ``{"prompt", "completion"}`` rows are user/assistant turns through the model's chat template, with the
    loss on the completion only; ``{"text"}`` rows are plain language modelling (loss on every token, EOS
    appended), used e.g. to pre-train a tiny backbone before it becomes a reward model.
    """
    if not examples:
        raise ValueError("sft_warm_start needs at least one example")
    plain_text = "text" in examples[0]
    wanted = {"text"} if plain_text else {"prompt", "completion"}
    for i, e in enumerate(examples):
        if set(e) != wanted:
            raise ValueError(f"example {i}: expected the keys {sorted(wanted)}, got {sorted(e)}")
    if plain_text:
        data = Dataset.from_dict({"text": [e["text"] for e in examples]})
    else:
        data = Dataset.from_dict(
            {
                "prompt": [[{"role": "user", "content": e["prompt"]}] for e in examples],
                "completion": [[{"role": "assistant", "content": e["completion"]}] for e in examples],
            }
        )
    attention = attention_implementation(resolve_bf16(bf16))
    args = SFTConfig(
        output_dir=str(Path(out_dir) / "sft-checkpoints"),
        max_steps=max_steps,
        learning_rate=learning_rate,
        per_device_train_batch_size=batch_size,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        logging_steps=max(1, max_steps // 10),
        save_strategy="no",
        report_to="none",
        seed=seed,
        **trainer_precision(bf16),
        model_init_kwargs={"attn_implementation": attention} if attention else None,
        max_length=max_length,
        completion_only_loss=not plain_text,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=str(policy_dir), args=args, train_dataset=data, callbacks=list(callbacks) or None
    )
    trainer.train()
    out = Path(out_dir)
    trainer.save_model(str(out))
    log.info("SFT warm start: %d steps on %d examples -> %s", max_steps, len(examples), out)
    return out


def as_examples(
    rows: list[dict[str, Any]], instruction: str, completion_key: str = "completion"
) -> list[dict]:
    """Prompt/completion pairs in the same user-message format ``cooper train`` uses."""
    return [
        {"prompt": user_message(r["question"], instruction), "completion": r[completion_key]} for r in rows
    ]
