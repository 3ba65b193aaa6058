"""Where cooper computes and in which precision: the one place that asks torch about CUDA and bf16.

* :func:`on_gpu` / :func:`default_device`: a CUDA device is visible (``"cuda"``, else ``"cpu"``);
  :func:`local_device`: this process's own GPU under a multi-process launch (``cuda:$LOCAL_RANK``).
* :func:`bf16_supported`: a CUDA device that computes in bf16 (what the trainers' ``bf16`` flag and the
  co-trained RM's autocast need); :func:`trainer_precision` is the ``use_cpu`` / ``bf16`` pair every
  ``TrainingArguments`` gets.
* :func:`cpu_computes_bf16`: this CPU has bf16 instructions, so autocast to bf16 pays on it too (opt-in);
  :func:`attention_implementation`: the attention kernel a model computing in that precision should use.
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


CPUINFO = "/proc/cpuinfo"


def cpu_computes_bf16() -> bool:
    """This CPU has bf16 arithmetic (the ``avx512_bf16`` or ``amx_bf16`` flag in ``/proc/cpuinfo``; False where
    that file is missing). There autocast to bf16 over fp32 weights trains the demo's tiny models 1.5-1.9
    times as fast as fp32 (``bench/cpu_bf16.py``, with :func:`attention_implementation`); elsewhere torch
    emulates bf16, slower than fp32."""
    try:
        with open(CPUINFO, encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_bf16(bf16: bool | None) -> bool:
    """A precision choice made definite: ``None`` is bf16 on a GPU that has it, else fp32; ``True`` is bf16
    autocast over fp32 weights, on a CPU too."""
    return bf16_supported() if bf16 is None else bf16


def trainer_precision(bf16: bool | None = None) -> dict[str, Any]:
    """``use_cpu`` and ``bf16`` (:func:`resolve_bf16`) for transformers' / TRL's training arguments."""
    return {"use_cpu": not on_gpu(), "bf16": resolve_bf16(bf16)}


def attention_implementation(bf16: bool) -> str | None:
    """The ``attn_implementation`` to load a model with: ``"eager"`` when it computes in bf16 on a CPU, else
    None (transformers' default, SDPA). torch's CPU flash-attention backward is about 5 times slower in bf16
    than in fp32 (torch 2.13 profile), which cancels most of the bf16 matmuls' gain: ``bench/cpu_bf16.py`` on
    this project's CPU, one thread, a training step of the demo's RM took 122 ms in fp32, 105 ms in bf16 with
    SDPA and 78 ms in bf16 with eager attention (docs/benchmarks.md)."""
    return "eager" if bf16 and not on_gpu() else None


def inference_dtype(device: str | torch.device, *, fp16_fallback: bool = False) -> str:
    """The name of the dtype to load a model in for inference on ``device``: ``"float32"`` off a GPU,
    ``"bfloat16"`` on one. With ``fp16_fallback``, a GPU without bf16 gets ``"float16"`` (policy sampling);
    without it bf16 is used on every GPU (the reward model). ``getattr(torch, name)`` gives the dtype."""
    if not is_cuda(device):
        return "float32"
    if fp16_fallback:
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "bfloat16"
