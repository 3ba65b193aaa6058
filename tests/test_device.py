"""cooper.utils.device: the one place that picks the device and precision, pinned for GPUs this CI lacks."""

from __future__ import annotations

import pytest
import torch

from cooper.utils import device as dev


@pytest.mark.parametrize("cuda", [False, True])
@pytest.mark.parametrize("bf16", [False, True])
def test_device_and_precision_choices(cuda, bf16, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert dev.default_device() == ("cuda" if cuda else "cpu")
    assert dev.local_device() == ("cuda:3" if cuda else "cpu")
    assert dev.bf16_supported() is (cuda and bf16)
    assert dev.trainer_precision() == {"use_cpu": not cuda, "bf16": cuda and bf16}
    # the RM loads in bf16 on every GPU; policy sampling falls back to fp16 where bf16 is missing
    assert dev.inference_dtype("cuda:1") == "bfloat16" and dev.inference_dtype("cpu") == "float32"
    assert dev.inference_dtype("cuda", fp16_fallback=True) == ("bfloat16" if bf16 else "float16")
    assert dev.inference_dtype("cpu", fp16_fallback=True) == "float32"
    assert dev.is_cuda(torch.device("cuda", 0)) and not dev.is_cuda("cpu")
