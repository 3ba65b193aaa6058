"""Generation throughput of ``cooper eval``: length-sorted batches vs file order, same batch size.

The tiny offline policy samples ``--samples`` completions for each of the first ``--prompts`` GSM8K test
questions (mixed lengths, rendered with the chat template and the default instruction), in batches of
``--batch-size`` sequences, ``--max-new-tokens`` each. Both orders use the same engine, seed and
settings; a warm-up batch runs first. On a shared machine other processes' load comes and goes, so the
two orders' batches are interleaved (both see the same load) and each batch's time is the fastest of
``--repeats`` rounds (load only ever adds time); CPU seconds per token are reported too. One torch thread
by default: with two OpenMP threads on a 2-core machine that other processes also use, one stalled thread
holds up the other and single generate calls were measured 10-100x slower, at random.
Generated tokens are counted up to and including the end-of-sequence token, never padding.

The tiny model's random weights rarely emit EOS, so nearly every sequence runs to max_new_tokens and both
orders generate about the same number of tokens: the speed-up comes from less left padding in the
prompts (every row of a batch is padded to the longest prompt of the batch), which the prefill and every
decoding step's attention pay for. Last line of stdout: one JSON object.

    python bench/eval_throughput.py [--prompts 64] [--samples 4] [--batch-size N] [--max-new-tokens 64]

``--batch-size`` defaults to the engine's own default, as in ``cooper eval`` (32 on CPU).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import tempfile
import time

import torch

from cooper.data.benchmarks import load_benchmark
from cooper.eval.engines import PromptTemplate, SamplingSettings, TransformersEngine, encode_prompts
from cooper.utils.batching import longest_first
from cooper.utils.tiny import tiny_models


def padding_fraction(lengths: list[int], batches: list[list[int]]) -> float:
    """Share of prompt positions that are padding when ``batches`` (index lists) are left-padded."""
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - sum(lengths) / padded


def interleaved_round(
    engines: dict[str, TransformersEngine],
    prompts: list[list[int]],
    keys: list[str],
    settings: SamplingSettings,
) -> dict[str, dict]:
    """One full pass per mode, the modes' batches interleaved (a, b, b, a, ...) so that both see the same
    background load; per batch: positions, generated tokens, wall and CPU seconds."""
    streams = {mode: eng.generate(prompts, keys, settings) for mode, eng in engines.items()}
    out: dict[str, dict] = {mode: {"batches": [], "tokens": [], "seconds": [], "cpu": []} for mode in engines}
    order = list(engines)
    while streams:
        for mode in order:
            if mode not in streams:
                continue
            start, cpu_start = time.perf_counter(), time.process_time()
            item = next(streams[mode], None)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            if item is None:
                del streams[mode]
                continue
            positions, completions = item
            rec = out[mode]
            rec["batches"].append(positions)
            rec["tokens"].append(sum(c.n_tokens for c in completions))  # EOS included, padding never
            rec["seconds"].append(seconds)
            rec["cpu"].append(cpu)
        order.reverse()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument(
        "--batch-size", type=int, help="sequences per batch (default: the engine's, as cooper eval)"
    )
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's choice)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="cooper-bench-eval-") as tmp:
        engine = TransformersEngine(tiny_models(tmp).policy_dir, device="cpu", batch_size=args.batch_size)
    args.batch_size = engine.batch_size
    rows = load_benchmark("gsm8k", limit=args.prompts)
    encoded = encode_prompts(engine.tokenizer, [r["question"] for r in rows], PromptTemplate(), None)
    # One work item per sample, in file order: problem 0 samples 0..k-1, problem 1 ...
    prompts = [p.ids for p in encoded for _ in range(args.samples)]
    keys = [f"gsm8k/{r['id']}/{k}" for r in rows for k in range(args.samples)]
    lengths = [len(p) for p in prompts]
    settings = SamplingSettings(
        n=1, temperature=0.7, top_p=0.95, max_new_tokens=args.max_new_tokens, seed=args.seed
    )
    print(
        f"{len(rows)} prompts x {args.samples} samples, prompt tokens {min(lengths)}-{max(lengths)}, "
        f"batch size {args.batch_size}, max_new_tokens {args.max_new_tokens}",
        file=sys.stderr,
    )

    naive_engine = copy.copy(engine)  # same model, tokenizer and batch size; only the order differs
    naive_engine.sort_by_length = False
    engines = {"naive": naive_engine, "sorted": engine}
    longest = longest_first(lengths)[: args.batch_size]  # warm-up batch
    list(engine.generate([prompts[i] for i in longest], [keys[i] for i in longest], settings))

    rounds = []
    for round_ in range(args.repeats):
        result = interleaved_round(engines, prompts, keys, settings)
        rounds.append(result)
        shown = ", ".join(f"{m} {sum(r['tokens']) / sum(r['seconds']):.0f} tok/s" for m, r in result.items())
        shown += (
            " (whole pass, " + ", ".join(f"{m} {sum(r['seconds']):.1f} s" for m, r in result.items()) + ")"
        )
        print(f"round {round_}: {shown}", file=sys.stderr)
    # Per batch, the fastest of the rounds (background load only ever adds time), summed per mode.
    rate, cpu_per_token = {}, {}
    for mode in engines:
        tokens = sum(rounds[0][mode]["tokens"])
        n_batches = len(rounds[0][mode]["batches"])
        best = [min(r[mode]["seconds"][b] for r in rounds) for b in range(n_batches)]
        best_cpu = [min(r[mode]["cpu"][b] for r in rounds) for b in range(n_batches)]
        rate[mode], cpu_per_token[mode] = tokens / sum(best), sum(best_cpu) / tokens
    naive, sorted_ = rate["naive"], rate["sorted"]
    print(
        json.dumps(
            {
                "prompts": len(rows),
                "samples_per_prompt": args.samples,
                "batch_size": args.batch_size,
                "max_new_tokens": args.max_new_tokens,
                "naive_tok_s": round(naive, 1),
                "sorted_tok_s": round(sorted_, 1),
                "speedup": round(sorted_ / naive, 4),  # 4 places: a target of 1.3 must not pass by rounding
                "naive_tokens": sum(rounds[0]["naive"]["tokens"]),
                "sorted_tokens": sum(rounds[0]["sorted"]["tokens"]),
                "cpu_time_speedup": round(cpu_per_token["naive"] / cpu_per_token["sorted"], 3),
                "naive_prompt_padding": round(padding_fraction(lengths, rounds[0]["naive"]["batches"]), 3),
                "sorted_prompt_padding": round(padding_fraction(lengths, rounds[0]["sorted"]["batches"]), 3),
                "repeats": args.repeats,
                "round_speedups": [
                    round(
                        (sum(r["sorted"]["tokens"]) / sum(r["sorted"]["seconds"]))
                        / (sum(r["naive"]["tokens"]) / sum(r["naive"]["seconds"])),
                        3,
                    )
                    for r in rounds
                ],
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
