"""Spies for the tests of bf16 on a CPU: the dtypes the Linear layers compute in, and the precision and
attention kernel a Trainer starts with."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from transformers import TrainerCallback


@contextmanager
def linear_outputs() -> Iterator[set[tuple[int, torch.dtype]]]:
    """Every ``(out_features, output dtype)`` a ``torch.nn.Linear`` of any model produces inside the block."""
    seen: set[tuple[int, torch.dtype]] = set()

    def record(module: torch.nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(module, torch.nn.Linear):
            seen.add((module.out_features, output.dtype))

    hook = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        yield seen
    finally:
        hook.remove()


def computed_dtypes(outputs: set[tuple[int, torch.dtype]]) -> set[torch.dtype]:
    return {dtype for _, dtype in outputs}


class TrainingSetup(TrainerCallback):
    """The Trainer's ``bf16`` flag and the model's attention kernel, as training begins."""

    def __init__(self) -> None:
        self.bf16: bool | None = None
        self.attention: str | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        self.bf16, self.attention = args.bf16, model.config._attn_implementation
