"""Where cooper computes and in which precision: the one place that asks torch about CUDA and bf16.

* :func:`on_gpu` / :func:`default_device`: a CUDA device is visible (``"cuda"``, else ``"cpu"``);
  :func:`local_device`: this process's own GPU under a multi-process launch (``cuda:$LOCAL_RANK``).
* :func:`bf16_supported`: a CUDA device that computes in bf16 (what the trainers' ``bf16`` flag and the
  co-trained RM's autocast need); :func:`trainer_precision` is the ``use_cpu`` / ``bf16`` pair every
  ``TrainingArguments`` gets.
* :func:`inference_dtype`: the weights' dtype for inference on a device (bf16 on a GPU, fp32 on a CPU).
"""

from __future__ import annotations

import os
from typing import Any

import torch


def on_gpu() -> bool:
    """A CUDA device is visible to this process."""
    return torch.cuda.is_available()


def default_device() -> str:
    """``"cuda"`` when a CUDA device is visible, else ``"cpu"``."""
    return "cuda" if on_gpu() else "cpu"


def local_device() -> str:
    """This process's own GPU, ``cuda:$LOCAL_RANK`` (0 without a launcher), or ``"cpu"`` without CUDA.

    For models loaded before accelerate sets the current device (it does so only inside the trainer)."""
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if on_gpu() else "cpu"


def is_cuda(device: str | torch.device) -> bool:
    """``device`` (a string such as ``"cuda:1"`` or a ``torch.device``) is a CUDA device."""
    return str(device).startswith("cuda")


def bf16_supported() -> bool:
    """A CUDA device is visible and supports bf16 (False on a CPU)."""
    return bool(on_gpu() and torch.cuda.is_bf16_supported())


def trainer_precision() -> dict[str, Any]:
    """``use_cpu`` and ``bf16`` for transformers' / TRL's training arguments: the GPU in bf16 where it can,
    else the CPU in fp32."""
    return {"use_cpu": not on_gpu(), "bf16": bf16_supported()}


def inference_dtype(device: str | torch.device, *, fp16_fallback: bool = False) -> str:
    """The name of the dtype to load a model in for inference on ``device``: ``"float32"`` off a GPU,
    ``"bfloat16"`` on one. With ``fp16_fallback``, a GPU without bf16 gets ``"float16"`` (policy sampling);
    without it bf16 is used on every GPU (the reward model). ``getattr(torch, name)`` gives the dtype."""
    if not is_cuda(device):
        return "float32"
    if fp16_fallback:
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "bfloat16"
