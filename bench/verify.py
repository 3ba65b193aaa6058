"""Rule-verifier throughput and agreement: serial raw math-verify vs ``cooper.verify.is_correct_batch``.

Items: the 5,276 real GSM8K model solutions (with their human ``is_correct`` labels) in
``../shared/data/gsm8k/example_model_solutions.jsonl`` plus MATH500's 500 gold solutions against their
answers (label: correct). Raw math-verify is timed the way frameworks call it: ``parse`` + ``parse`` +
``verify`` per item, on the main thread. Both sides are warmed up first; the pool's start-up is reported
separately. Last line: one JSON object.

    python bench/verify.py [--limit N] [--workers W]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time

from cooper.data.benchmarks import load_benchmark, load_gsm8k_model_solutions
from cooper.verify.pool import is_correct_batch, shared_pool


def load_items(limit: int | None) -> list[tuple[str, str, bool]]:
    """(response, reference, label) triples."""
    items = [(r["completion"], r["reference"], r["label"]) for r in load_gsm8k_model_solutions()]
    items += [(r["solution"], r["reference"], True) for r in load_benchmark("math500")]
    return items[:limit] if limit else items


def raw_math_verify(items: list[tuple[str, str, bool]]) -> tuple[list[bool], list[float]]:
    from math_verify import parse, verify

    verdicts, latencies = [], []
    for response, reference, _ in items:
        t = time.perf_counter()
        gold = parse(f"${reference}$")
        pred = parse(response)
        verdicts.append(bool(verify(gold, pred)))
        latencies.append(time.perf_counter() - t)
    return verdicts, latencies


def percentile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="only the first N items")
    ap.add_argument("--workers", type=int, default=None, help="verifier processes (default: CPU cores)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("math_verify").setLevel(logging.ERROR)

    items = load_items(args.limit)
    responses = [r for r, _, _ in items]
    references = [g for _, g, _ in items]
    labels = [lab for _, _, lab in items]

    raw_math_verify(items[:5])  # sympy warm-up, as the pool's workers do before they say ready
    t = time.perf_counter()
    raw, raw_lat = raw_math_verify(items)
    raw_s = time.perf_counter() - t

    t = time.perf_counter()
    pool = shared_pool(args.workers)
    pool.start()
    start_s = time.perf_counter() - t
    t = time.perf_counter()
    ours = is_correct_batch(responses, references, workers=args.workers)
    cooper_s = time.perf_counter() - t

    def agreement(v: list[bool]) -> float:
        return sum(a == b for a, b in zip(v, labels, strict=True)) / len(labels)

    def false_correct(v: list[bool]) -> int:
        return sum(a and not b for a, b in zip(v, labels, strict=True))

    report = {
        "items": len(items),
        "workers": pool.size,
        "raw_s": round(raw_s, 3),
        "cooper_s": round(cooper_s, 3),
        "speedup": round(raw_s / cooper_s, 3),
        "pool_start_s": round(start_s, 3),
        "agreement_raw": round(agreement(raw), 4),
        "agreement_cooper": round(agreement(ours), 4),
        "false_correct_raw": false_correct(raw),
        "false_correct_cooper": false_correct(ours),
        "raw_p50_ms": round(percentile(raw_lat, 50) * 1e3, 3),
        "raw_p99_ms": round(percentile(raw_lat, 99) * 1e3, 3),
        "cooper_p50_ms": round(percentile(pool.last_item_ms, 50), 3),
        "cooper_p99_ms": round(percentile(pool.last_item_ms, 99), 3),
        "pool_timeouts": pool.stats["timeouts"],
    }
    print(
        f"raw math-verify: {raw_s:.2f} s, agreement {report['agreement_raw']:.4f}; "
        f"cooper: {cooper_s:.2f} s ({pool.size} workers), agreement {report['agreement_cooper']:.4f}; "
        f"speedup {report['speedup']:.2f}x",
        file=sys.stderr,
    )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
