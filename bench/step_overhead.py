"""Cost of co-optimising the RM: median step time of mode ``cooper`` (negatives ``perturb``) vs ``static_rm``.

One process, the same tiny policy (SFT warm-started so that verified positives, and so RM updates, exist),
the same tiny VerifyRM, prompts and generation settings; the first steps are warm-up and not counted.
Prints the per-phase split from metrics.jsonl. Last line: one JSON object.

    python bench/step_overhead.py [--steps 14] [--warmup 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DIGITS = REPO / "configs" / "data" / "digits.jsonl"
INSTRUCTION = "Answer with the digit."
PHASES = ("generation", "scoring", "verification", "negatives", "rm_update", "policy_update", "step")


def run(mode: str, policy: str, rm: str, out: Path, steps: int) -> list[dict]:
    from cooper.rl.config import load_config
    from cooper.rl.train import train

    cfg = load_config(
        None,
        [],
        output_dir=str(out),
        policy=policy,
        data={"files": [str(DIGITS)], "instruction": INSTRUCTION},
        reward={"mode": mode, "rm": rm, "rm_max_length": 128},
        cooper={"negatives": ["perturb"], "rm_update": {"learning_rate": 1e-4}},
        monitor={"plot": False},
        grpo={
            "max_steps": steps,
            "learning_rate": 1e-4,
            "per_device_train_batch_size": 64,
            "num_generations": 8,
            "max_completion_length": 16,
            "save_steps": 10_000,
            "beta": 0.0,
        },
    )
    train(cfg)
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def phase_medians(rows: list[dict], warmup: int) -> dict[str, float]:
    rows = rows[warmup:]
    return {p: statistics.median(r.get(f"seconds/{p}", 0.0) for r in rows) for p in PHASES}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=14)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from cooper.rl.sft import as_examples, sft_warm_start
    from cooper.utils.tiny import tiny_models

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = tiny_models(root)
        rows = [json.loads(line) for line in DIGITS.read_text().splitlines()]
        examples = as_examples(
            [dict(r, completion=f"The answer is {r['reference']}.") for r in rows], INSTRUCTION
        )
        policy = str(
            sft_warm_start(paths.policy_dir, examples, root / "sft", max_steps=100, learning_rate=3e-3)
        )
        static = run("static_rm", policy, str(paths.rm_dir), root / "static", args.steps)
        cooper = run("cooper", policy, str(paths.rm_dir), root / "cooper", args.steps)

    s_ph, c_ph = phase_medians(static, args.warmup), phase_medians(cooper, args.warmup)
    pairs = sum(r.get("rm/valid_pairs", 0) for r in cooper[args.warmup :]) / max(1, len(cooper) - args.warmup)
    for p in PHASES:
        print(f"{p:>14}: static_rm {s_ph[p] * 1e3:8.1f} ms   cooper {c_ph[p] * 1e3:8.1f} ms", file=sys.stderr)
    report = {
        "static_rm_step_s": round(s_ph["step"], 4),
        "cooper_step_s": round(c_ph["step"], 4),
        "ratio": round(c_ph["step"] / s_ph["step"], 3),
        "mean_pairs_per_step": round(pairs, 2),
        "steps_measured": args.steps - args.warmup,
        "phases": {
            "static_rm": {k: round(v, 4) for k, v in s_ph.items()},
            "cooper": {k: round(v, 4) for k, v in c_ph.items()},
        },
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
