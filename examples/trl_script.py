"""Cooper in a plain TRL script: your own ``GRPOTrainer``, with cooper's reward, RM updater and callback.

    python examples/trl_script.py --out runs/trl_script --steps 3            # train 3 steps
    python examples/trl_script.py --out runs/trl_script --steps 6 --resume   # continue from checkpoint-3

It runs offline on a CPU with tiny models built on the fly (the random-init policy gets 300 SFT steps first, so
that some rollouts are right and the RM has verified positives to learn from); point ``--policy`` and ``--rm``
at your own model directories (a VerifyRM from ``cooper train-rm``) for a real run. ``OUT/metrics.jsonl`` gets
one row per step (rule accuracy, RM reward, hacking gap, RM pair accuracy...), and each checkpoint holds the
RM's state.
"""

import argparse
from pathlib import Path

from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer

from cooper import (
    CooperCallback,
    RewardFunction,
    RMUpdateConfig,
    RMUpdater,
    VerifyRM,
    prompt_messages,
    tiny_models,
)

INSTRUCTION = "Answer with the digit."


def warm_start(policy: str, rows: list[dict], out: Path) -> str:
    """300 steps of plain TRL SFT on 'The answer is D.' (skipped when ``out`` already holds the result)."""
    if not (out / "config.json").is_file():
        answer = [[{"role": "assistant", "content": f"The answer is {r['reference']}."}] for r in rows]
        prompts = [prompt_messages(r["question"], INSTRUCTION) for r in rows]
        data = Dataset.from_dict({"prompt": prompts, "completion": answer})
        config = SFTConfig(
            str(out), max_steps=300, learning_rate=3e-3, save_strategy="no", report_to="none", use_cpu=True
        )
        trainer = SFTTrainer(model=policy, args=config, train_dataset=data)
        trainer.train()
        trainer.save_model(str(out))
    return str(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/trl_script")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    parser.add_argument("--policy", help="a causal-LM directory (default: a tiny random-init one)")
    parser.add_argument(
        "--rm", help="a VerifyRM directory from cooper train-rm (default: a tiny random-init one)"
    )
    args = parser.parse_args()
    out = Path(args.out)

    # The reward needs each prompt's reference answer; `id` groups the rollouts of one prompt.
    rows = [{"id": f"q{d}", "question": f"Repeat the digit {d}.", "reference": str(d)} for d in range(10)]

    models = tiny_models(out / "models")  # built offline in seconds; use your own models for a real run
    policy = args.policy or warm_start(str(models.policy_dir), rows, out / "sft-policy")
    rm_dir = args.rm or models.rm_dir
    dataset = Dataset.from_list([{**r, "prompt": prompt_messages(r["question"], INSTRUCTION)} for r in rows])

    rm = VerifyRM.from_pretrained(rm_dir, max_length=128)
    reward = RewardFunction("cooper", rm=rm, updater=RMUpdater(rm, RMUpdateConfig(learning_rate=1e-3)))

    config = GRPOConfig(
        output_dir=str(out),
        max_steps=args.steps,
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=8,
        learning_rate=1e-3,
        beta=0.0,
        save_steps=3,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        remove_unused_columns=False,  # keep `reference` and `id` for the reward
    )
    trainer = GRPOTrainer(model=policy, reward_funcs=[reward], args=config, train_dataset=dataset)
    trainer.add_callback(CooperCallback(reward))  # metrics.jsonl, the monitor, the RM in every checkpoint
    trainer.train(resume_from_checkpoint=True if args.resume else None)
    rm.save_pretrained(out / "reward_model")


if __name__ == "__main__":
    main()
