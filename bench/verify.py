"""Rule-verifier throughput, agreement, and precision/recall by answer type: serial raw math-verify vs
``cooper.verify.is_correct_batch``.

Timed items: the 5,276 real GSM8K model solutions (with their human ``is_correct`` labels) in
``../shared/data/gsm8k/example_model_solutions.jsonl`` plus MATH500's 500 gold solutions against their
answers (label: correct). Raw math-verify is timed the way frameworks call it: ``parse`` + ``parse`` +
``verify`` per item, on the main thread. Both sides are warmed up first; the pool's start-up is reported
separately.

Labelled cases (``bench/verify_cases.py``, not timed): OlympiadBench's multi-answer rows (several boxes, one
box with ``;`` / "and", one answer missing, one answer wrong, reversed order for answer sets), a sample of its
single-answer rows (gold / perturbed), multiple choice and short strings. Cooper gets each row's
``answer_type`` and ``is_multiple_answer`` as row fields; raw math-verify gets only the strings.

Precision (of "correct" verdicts) and recall are reported per source and per answer type for both; stderr
has a short table. Last line: one JSON object.

    python bench/verify.py [--limit N] [--workers W] [--only-cases] [--show-false-correct K]

``--only-cases`` skips the timed set (and its keys), e.g. to measure an older checkout of the verifier with
``PYTHONPATH=/path/to/old/src``; a verifier without row fields is called without them.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import statistics
import sys
import time
from collections import defaultdict
from typing import Any

from cooper.verify.pool import is_correct_batch, shared_pool
from verify_cases import Case, all_cases, math500_kind


def load_items(limit: int | None) -> list[Case]:
    """The timed set: GSM8K model solutions and MATH500 gold solutions, as labelled cases."""
    from cooper.data.benchmarks import load_benchmark, load_gsm8k_model_solutions

    items = [
        Case("gsm8k", "numeric", "model solution", r["completion"], r["reference"], bool(r["label"]))
        for r in load_gsm8k_model_solutions()
    ]
    items += [
        Case("math500", math500_kind(r["reference"]), "gold solution", r["solution"], r["reference"], True)
        for r in load_benchmark("math500")
    ]
    return items[:limit] if limit else items


def raw_math_verify(items: list[Case]) -> tuple[list[bool], list[float]]:
    from math_verify import parse, verify

    verdicts, latencies = [], []
    for case in items:
        t = time.perf_counter()
        gold = parse(f"${case.reference}$")
        pred = parse(case.response)
        verdicts.append(bool(verify(gold, pred)))
        latencies.append(time.perf_counter() - t)
    return verdicts, latencies


def cooper_verdicts(items: list[Case], workers: int | None) -> tuple[list[bool], bool]:
    """Cooper's verdicts, with row fields when this version of the verifier takes them."""
    responses = [c.response for c in items]
    references = [c.reference for c in items]
    params = inspect.signature(is_correct_batch).parameters.values()
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return is_correct_batch(responses, references, workers=workers), False
    fields = {name: [c.fields.get(name) for c in items] for name in ("answer_type", "is_multiple_answer")}
    return is_correct_batch(responses, references, workers=workers, **fields), True


def percentile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]
    )


def scores(verdicts: list[bool], labels: list[bool]) -> dict[str, Any]:
    tp = sum(v and lab for v, lab in zip(verdicts, labels, strict=True))
    fp = sum(v and not lab for v, lab in zip(verdicts, labels, strict=True))
    pos = sum(labels)
    return {
        "p": round(tp / (tp + fp), 4) if tp + fp else None,
        "r": round(tp / pos, 4) if pos else None,
        "tp": tp,
        "fp": fp,
    }


def breakdown(items: list[Case], raw: list[bool], ours: list[bool], key: str) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(items):
        groups[getattr(c, key)].append(i)
    out = {}
    for name, idx in groups.items():
        labels = [items[i].label for i in idx]
        out[name] = {
            "n": len(idx),
            "pos": sum(labels),
            "raw": scores([raw[i] for i in idx], labels),
            "cooper": scores([ours[i] for i in idx], labels),
        }
    return out


def print_table(title: str, table: dict[str, dict[str, Any]]) -> None:
    def fmt(x: float | None) -> str:
        return "  -   " if x is None else f"{x:.4f}"

    print(f"{title:<16} {'n':>5} {'pos':>5} | raw P  raw R  FP   | cooper P cooper R FP", file=sys.stderr)
    for name, row in table.items():
        raw, ours = row["raw"], row["cooper"]
        print(
            f"{name:<16} {row['n']:>5} {row['pos']:>5} | {fmt(raw['p'])} {fmt(raw['r'])} {raw['fp']:>4} "
            f"| {fmt(ours['p'])}   {fmt(ours['r'])}   {ours['fp']:>4}",
            file=sys.stderr,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="only the first N timed items")
    ap.add_argument("--workers", type=int, default=None, help="verifier processes (default: CPU cores)")
    ap.add_argument("--only-cases", action="store_true", help="skip the timed GSM8K/MATH500 set")
    ap.add_argument(
        "--show-false-correct", type=int, default=0, metavar="K", help="print K cases cooper wrongly passes"
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    from cooper.data.benchmarks import resolve_data_dir

    cases, counts = all_cases(resolve_data_dir())
    report: dict[str, Any] = {}
    items: list[Case] = []
    raw: list[bool] = []
    ours: list[bool] = []
    pool = shared_pool(args.workers)
    if not args.only_cases:
        items = load_items(args.limit)
        labels = [c.label for c in items]
        raw_math_verify(items[:5])  # sympy warm-up, as the pool's workers do before they say ready
        t = time.perf_counter()
        raw, raw_lat = raw_math_verify(items)
        raw_s = time.perf_counter() - t

        t = time.perf_counter()
        pool.start()
        start_s = time.perf_counter() - t
        t = time.perf_counter()
        ours = is_correct_batch(
            [c.response for c in items], [c.reference for c in items], workers=args.workers
        )
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

    t = time.perf_counter()
    case_raw, _ = raw_math_verify(cases)
    case_ours, with_fields = cooper_verdicts(cases, args.workers)
    cases_s = time.perf_counter() - t
    everything = items + cases
    raw_all, ours_all = raw + case_raw, ours + case_ours
    by_source = breakdown(everything, raw_all, ours_all, "source")
    by_type = breakdown(everything, raw_all, ours_all, "kind")
    multi = [i for i, c in enumerate(cases) if c.source == "olympiad multi"]
    report.update(
        {
            "cases": len(cases),
            "cases_s": round(cases_s, 3),
            "row_fields": with_fields,
            "olympiad_multi_rows": counts["multi_rows"],
            "olympiad_multi_set_rows": counts["multi_set_rows"],
            "multi_correct_passed": sum(case_ours[i] and cases[i].label for i in multi),
            "multi_correct_total": sum(cases[i].label for i in multi),
            "multi_wrong_passed": sum(case_ours[i] and not cases[i].label for i in multi),
            "multi_wrong_total": sum(not cases[i].label for i in multi),
            "by_source": by_source,
            "by_type": by_type,
        }
    )
    print_table("source", by_source)
    print_table("answer type", by_type)
    passed_wrong = [c for c, v in zip(cases, case_ours, strict=True) if v and not c.label]
    for c in passed_wrong[: args.show_false_correct]:
        print(
            f"cooper passes a wrong {c.source}/{c.variant}: {c.response[-120:]!r} vs {c.reference!r}",
            file=sys.stderr,
        )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
