"""VerifyRM scoring throughput: length-bucketed batches vs the same batch size in file order.

Scores the 5,276 real GSM8K model solutions (question + the ``A:`` answer as reference) with the tiny
random-init VerifyRM built offline by ``cooper.utils.tiny``. Both runs encode once, use the same batch size and
produce the same scores (checked); only the batching differs. Last line: one JSON object.

    python bench/rm_score.py [--batch-size 32] [--max-length 1024] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import tempfile
import time

from cooper.data.benchmarks import load_gsm8k_model_solutions
from cooper.rm.model import VerifyRM
from cooper.utils.tiny import tiny_models


def load_items(limit: int | None) -> tuple[list[str], list[str], list[str]]:
    rows = load_gsm8k_model_solutions(limit=limit or None)
    return tuple([r[key] for r in rows] for key in ("question", "reference", "completion"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    import torch

    torch.manual_seed(0)
    q, ref, comp = load_items(args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        rm = VerifyRM.from_pretrained(tiny_models(tmp).rm_dir, max_length=args.max_length, device="cpu")
        ids = rm.encode(q, ref, comp)
        rm.score_logits(ids[:64], batch_size=args.batch_size)  # warm-up

        t = time.perf_counter()
        naive = rm.score_logits(ids, batch_size=args.batch_size, bucket=False)
        naive_s = time.perf_counter() - t
        t = time.perf_counter()
        bucketed = rm.score_logits(ids, batch_size=args.batch_size, bucket=True)
        bucketed_s = time.perf_counter() - t

    max_diff = max(abs(a - b) for a, b in zip(naive, bucketed, strict=True))
    lengths = [len(x) for x in ids]
    report = {
        "items": len(ids),
        "batch_size": args.batch_size,
        "mean_tokens": round(sum(lengths) / len(lengths), 1),
        "max_tokens": max(lengths),
        "naive_s": round(naive_s, 3),
        "bucketed_s": round(bucketed_s, 3),
        "speedup": round(naive_s / bucketed_s, 3),
        "max_score_diff": max_diff,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch_threads": torch.get_num_threads(),
    }
    print(
        f"file order {naive_s:.2f} s, length-bucketed {bucketed_s:.2f} s: {report['speedup']:.2f}x "
        f"(scores agree within {max_diff:.1e})",
        file=sys.stderr,
    )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
