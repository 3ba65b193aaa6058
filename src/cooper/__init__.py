"""Cooper: GRPO with a reward model that is co-optimised with the policy (arXiv 2508.05613), on TRL.

The pieces a TRL user needs to add Cooper to their own ``trl.GRPOTrainer`` script::

    from cooper import CooperCallback, RewardFunction, RMUpdater, VerifyRM

    rm = VerifyRM.from_pretrained("runs/rm")
    reward = RewardFunction("cooper", rm=rm, updater=RMUpdater(rm))
    trainer = GRPOTrainer(model=..., reward_funcs=[reward], args=GRPOConfig(...), train_dataset=...)
    trainer.add_callback(CooperCallback(reward))

``examples/trl_script.py`` is a complete, runnable version. Names are imported on first use, so ``import
cooper`` (and ``cooper --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cooper._version import __version__

# public name -> the module that defines it
_API = {
    "RewardFunction": "cooper.rl.reward",
    "RMUpdater": "cooper.rl.rm_update",
    "RMUpdateConfig": "cooper.rl.rm_update",
    "CooperCallback": "cooper.rl.callback",
    "MonitorConfig": "cooper.rl.config",
    "TrainConfig": "cooper.rl.config",
    "load_config": "cooper.rl.config",
    "train": "cooper.rl.train",
    "VerifyRM": "cooper.rm.model",
    "is_correct": "cooper.verify",
    "is_correct_batch": "cooper.verify",
    "prompt_messages": "cooper.data.prompts",
    "user_message": "cooper.data.prompts",
    "DEFAULT_INSTRUCTION": "cooper.data.prompts",
    "tiny_models": "cooper.utils.tiny",
}
__all__ = [
    "DEFAULT_INSTRUCTION",
    "CooperCallback",
    "MonitorConfig",
    "RMUpdateConfig",
    "RMUpdater",
    "RewardFunction",
    "TrainConfig",
    "VerifyRM",
    "__version__",
    "is_correct",
    "is_correct_batch",
    "load_config",
    "prompt_messages",
    "tiny_models",
    "train",
    "user_message",
]

if TYPE_CHECKING:
    from cooper.data.prompts import DEFAULT_INSTRUCTION, prompt_messages, user_message
    from cooper.rl.callback import CooperCallback
    from cooper.rl.config import MonitorConfig, TrainConfig, load_config
    from cooper.rl.reward import RewardFunction
    from cooper.rl.rm_update import RMUpdateConfig, RMUpdater
    from cooper.rl.train import train
    from cooper.rm.model import VerifyRM
    from cooper.utils.tiny import tiny_models
    from cooper.verify import is_correct, is_correct_batch


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cooper' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
