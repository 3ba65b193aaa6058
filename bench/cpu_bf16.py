"""Training-step time of the demo's tiny models on this CPU: fp32 against bf16 autocast, SDPA against eager
attention. What ``cooper.utils.device.attention_implementation`` and the demo's ``bf16`` setting rest on.

Random-init models of the demo's shapes (no files needed): the RM, a 256-wide 2-layer Qwen2 classifier (8
heads, MLP 512) on batches of 16 rows of 65 tokens (RM pre-training), and the policy, a 128-wide 2-layer
Qwen2 LM (4 heads, MLP 512) on 128 rows of 84 tokens (a GRPO loss step). Each step is forward, backward and
AdamW; the median of ``--steps`` steps after 3 warm-up steps. Last line: one JSON object.

    python bench/cpu_bf16.py [--threads 1] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import date
from typing import Any

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2ForSequenceClassification
from transformers.utils import logging as hf_logging

from cooper.utils.device import cpu_computes_bf16

SHAPES = {
    "rm": {"hidden": 256, "heads": 8, "kv_heads": 8, "rows": 16, "tokens": 65},
    "policy": {"hidden": 128, "heads": 4, "kv_heads": 2, "rows": 128, "tokens": 84},
}


def build(which: str, attention: str) -> Any:
    shape = SHAPES[which]
    config = Qwen2Config(
        vocab_size=512,
        hidden_size=shape["hidden"],
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"],
        max_position_embeddings=256,
        pad_token_id=0,
        num_labels=1,
        tie_word_embeddings=True,
    )
    config._attn_implementation = attention
    torch.manual_seed(0)
    return (Qwen2ForSequenceClassification if which == "rm" else Qwen2ForCausalLM)(config)


def step_ms(which: str, attention: str, bf16: bool, steps: int) -> float:
    model = build(which, attention).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    shape = SHAPES[which]
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 512, (shape["rows"], shape["tokens"]), generator=gen)
    times = []
    for i in range(steps + 3):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(input_ids=ids).logits
        loss = out.float().square().mean() if which == "rm" else out.float().logsumexp(-1).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 3:
            times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    result: dict[str, Any] = {
        "bench": "cpu_bf16",
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {args.threads} thread(s), {platform.system()}",
        "torch": torch.__version__,
        "cpu_computes_bf16": cpu_computes_bf16(),
    }
    for which in SHAPES:
        ms = {
            f"{precision}_{attention}": step_ms(which, attention, precision == "bf16", args.steps)
            for attention in ("sdpa", "eager")
            for precision in ("fp32", "bf16")
        }
        result[f"{which}_step_ms"] = ms
        result[f"{which}_speedup_bf16_eager"] = round(ms["fp32_sdpa"] / ms["bf16_eager"], 2)
        result[f"{which}_speedup_bf16_sdpa"] = round(ms["fp32_sdpa"] / ms["bf16_sdpa"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
