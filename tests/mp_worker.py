"""Worker for tests/test_multiprocess.py, run by ``torchrun`` (one process per rank).

``mp_worker.py train RECORD_DIR CONFIG [--key value ...]``
    ``cooper train CONFIG ...`` (through ``cooper.cli.main``) with spies wrapped around the reward
    callable, the Cooper update and ``RMUpdater.update``; writes ``RECORD_DIR/rank{R}.json``: per reward
    call this rank's prompt ids and the gathered lists, per RM update the pairs and a SHA-256 of the RM
    weights before and after, and a SHA-256 of the policy weights before and after training.

``mp_worker.py train-faulty die|mismatch CONFIG [--key value ...]``
    ``cooper train`` with a fault injected on rank 1 (see :func:`run_faulty_train`).

``mp_worker.py rm-update OUT_DIR RM_DIR MINI_BATCH_SIZE`` (under torchrun)
    Initialises a gloo process group, builds the same VerifyRM on every rank and saves
    :func:`rm_update_snapshots` (weights after each of two updates on fixed pairs) to ``OUT_DIR/rank{R}.pt``.
    The test calls :func:`rm_update_snapshots` in its own process for the single-process reference.

Only test code patches anything here: the library has no test hooks.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any


def state_hash(module: Any) -> str:
    """SHA-256 of a module's state_dict, keys sorted, exact bytes (equal hashes = bitwise-equal weights)."""
    import torch

    h = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


# -- cooper train with spies ------------------------------------------------------------------------
def run_train(record_dir: Path, argv: list[str]) -> int:
    import trl

    from cooper.cli import main
    from cooper.rl import reward as rewards
    from cooper.rl.rm_update import RMUpdater

    calls: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    final: dict[str, Any] = {}

    real_call = rewards.RewardFunction.__call__
    real_cooper_update = rewards.RewardFunction._cooper_update
    real_update = RMUpdater.update
    real_train = trl.GRPOTrainer.train

    def spy_call(self, prompts, completions, **kw):
        calls.append(
            {
                "rank": _rank(),
                "local_ids": list(kw.get("id") or []),
                "local_texts": [rewards.completion_text(c) for c in completions],
            }
        )
        return real_call(self, prompts, completions, **kw)

    def spy_cooper_update(self, rec, step):
        calls[-1]["gathered"] = {
            "questions": list(step.questions),
            "texts": list(step.texts),
            "correct": [bool(c) for c in step.correct],
            "probs": list(step.probs) if step.probs is not None else None,
            "groups": list(step.groups),
        }
        return real_cooper_update(self, rec, step)

    def spy_update(self, pairs):
        before = state_hash(self.rm.model)
        metrics = real_update(self, pairs)
        updates.append(
            {
                "pairs": [[p.question, p.reference, p.positive, p.negative, p.source] for p in pairs],
                "rm_before": before,
                "rm_after": state_hash(self.rm.model),
                "metrics": metrics,
            }
        )
        return metrics

    def spy_train(self, *args, **kwargs):
        final["policy_before"] = state_hash(self.accelerator.unwrap_model(self.model))
        out = real_train(self, *args, **kwargs)
        final["policy"] = state_hash(self.accelerator.unwrap_model(self.model))
        final["world_size"] = self.accelerator.num_processes
        final["global_step"] = self.state.global_step
        return out

    rewards.RewardFunction.__call__ = spy_call
    rewards.RewardFunction._cooper_update = spy_cooper_update
    RMUpdater.update = spy_update
    trl.GRPOTrainer.train = spy_train

    rc = main(["train", *argv])
    rank = _rank()
    record_dir.mkdir(parents=True, exist_ok=True)
    record = {"rank": rank, "rc": rc, "calls": calls, "updates": updates, "final": final}
    (record_dir / f"rank{rank}.json").write_text(json.dumps(record))
    return rc


# -- RMUpdater.update on fixed pairs ----------------------------------------------------------------
# -- faults: a rank that dies, ranks with different configs ------------------------------------------
def run_faulty_train(fault: str, argv: list[str]) -> int:
    """``cooper train`` with a fault on rank 1: ``die`` exits it abruptly (no cleanup, like an OOM kill) in
    its second RM update, while rank 0 goes on into the collectives; ``mismatch`` starts it with another seed."""
    from cooper.cli import main
    from cooper.rl.rm_update import RMUpdater

    rank = int(os.environ.get("RANK", "0"))
    if fault == "mismatch" and rank == 1:
        argv = [*argv, "--seed", "7"]
    if fault == "die" and rank == 1:
        real_update = RMUpdater.update
        calls = []

        def dying_update(self, pairs):
            calls.append(1)
            if len(calls) == 2:
                os._exit(3)
            return real_update(self, pairs)

        RMUpdater.update = dying_update
    return main(["train", *argv])


def fixed_pairs() -> list[Any]:
    """Seven distinct pairs (deterministic): the same list on every rank."""
    from cooper.rl.rm_update import Pair

    out = []
    for i in range(7):
        a, b = 3 + 5 * i, 7 + 2 * i
        q = f"What is {a} + {b}?"
        out.append(
            Pair(
                q,
                str(a + b),
                f"{a} + {b} = {a + b}. The answer is {a + b}.",
                f"The answer is {a + b + 1}.",
                "t",
            )
        )
    return out


RM_UPDATE_LR = 1e-4  # Adam turns float noise in near-zero gradients into lr-sized steps: keep lr small


def rm_update_snapshots(rm_dir: str, mini_batch_size: int) -> dict[str, Any]:
    """Two ``RMUpdater.update`` calls on :func:`fixed_pairs` (7 pairs, then 5 in another order); the RM
    weights and the metrics after each. Single-process unless a process group is initialised."""
    import torch

    from cooper.rl.rm_update import RMUpdateConfig, RMUpdater
    from cooper.rm.model import VerifyRM

    torch.manual_seed(0)
    rm = VerifyRM.from_pretrained(rm_dir, dtype=torch.float32, max_length=128)
    cfg = RMUpdateConfig(
        learning_rate=RM_UPDATE_LR, mini_batch_size=mini_batch_size, warmup_steps=2, epochs=2
    )
    updater = RMUpdater(rm, cfg)
    pairs = fixed_pairs()
    snapshots, metrics = [], []
    # With 2 ranks and mini_batch_size 2 a global mini-batch of 4 pairs splits 2/2; the last one splits 2/1
    # (7 pairs) or 1/0 (5 pairs: one rank has no pair and contributes zero gradients).
    for batch in (pairs, [pairs[i] for i in (6, 2, 4, 0, 5)]):
        metrics.append(updater.update(batch))
        snapshots.append({k: v.detach().cpu().clone() for k, v in rm.model.state_dict().items()})
    return {"snapshots": snapshots, "metrics": metrics, "updates": updater.updates}


def run_rm_update(out_dir: Path, rm_dir: str, mini_batch_size: int) -> int:
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")  # torchrun's environment: RANK, WORLD_SIZE, MASTER_ADDR/PORT
    try:
        result = rm_update_snapshots(rm_dir, mini_batch_size)
        out_dir.mkdir(parents=True, exist_ok=True)
        torch.save(result, out_dir / f"rank{dist.get_rank()}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    import faulthandler

    import torch

    # A hung collective must not hang CI: dump every thread's stack and exit after the deadline.
    faulthandler.dump_traceback_later(float(os.environ.get("MP_WORKER_DEADLINE_S", "240")), exit=True)
    torch.set_num_threads(1)  # two ranks on two cores: more threads only stall each other
    mode, target, *rest = sys.argv[1:]
    if mode == "train":
        sys.exit(run_train(Path(target), rest))
    if mode == "train-faulty":
        sys.exit(run_faulty_train(target, rest))
    if mode == "rm-update":
        sys.exit(run_rm_update(Path(target), rest[0], int(rest[1])))
    sys.exit(f"unknown mode {mode!r}")
