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
    assert (
        dev.resolve_bf16(None) is (cuda and bf16) and dev.resolve_bf16(True) and not dev.resolve_bf16(False)
    )
    # the RM loads in bf16 on every GPU; policy sampling falls back to fp16 where bf16 is missing
    assert dev.inference_dtype("cuda:1") == "bfloat16" and dev.inference_dtype("cpu") == "float32"
    assert dev.inference_dtype("cuda", fp16_fallback=True) == ("bfloat16" if bf16 else "float16")
    assert dev.inference_dtype("cpu", fp16_fallback=True) == "float32"
    assert dev.is_cuda(torch.device("cuda", 0)) and not dev.is_cuda("cpu")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu avx2 avx512f avx512_bf16 avx512_vnni", True),  # AMD Zen 4, Intel Cooper Lake
        ("fpu avx512f amx_bf16 amx_tile", True),  # Intel Sapphire Rapids
        ("fpu avx2 avx512f avx512bw", False),  # AVX-512 without bf16: torch would emulate it
        (None, False),  # no /proc/cpuinfo (macOS, Windows)
    ],
)
def test_cpu_bf16_is_read_from_the_cpus_flags(flags, expected, monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    if flags is not None:
        info.write_text(f"processor\t: 0\nmodel name\t: X\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    monkeypatch.setattr(dev, "CPUINFO", str(info))
    assert dev.cpu_computes_bf16() is expected


@pytest.mark.parametrize("cuda", [False, True])
def test_bf16_on_request_and_the_attention_that_goes_with_it(cuda, monkeypatch):
    """``bf16=True`` asks for bf16 autocast on a CPU too; a model computing so on a CPU uses eager attention
    (torch's CPU flash-attention backward is slow in bf16); on a GPU, and in fp32, transformers' default."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert dev.trainer_precision(True) == {"use_cpu": not cuda, "bf16": True}
    assert dev.trainer_precision(False) == {"use_cpu": not cuda, "bf16": False}
    assert dev.attention_implementation(True) == (None if cuda else "eager")
    assert dev.attention_implementation(False) is None
