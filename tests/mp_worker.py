"""Worker for tests/test_multiprocess.py, run by ``torchrun`` (one process per rank).

``mp_worker.py train RECORD_DIR CONFIG [--key value ...]``
    ``cooper train CONFIG ...`` (through ``cooper.cli.main``) with spies wrapped around the reward
    callable, the Cooper update and ``RMUpdater.update``; writes ``RECORD_DIR/rank{R}.json``: per reward
    call this rank's prompt ids and the gathered lists, per RM update the pairs and a SHA-256 of the RM
    weights before and after, and a SHA-256 of the policy weights before and after training.

``mp_worker.py train-faulty die|mismatch CONFIG [--key value ...]``
    ``cooper train`` with a fault injected on rank 1 (see :func:`run_faulty_train`).

``mp_worker.py rm-update OUT_DIR RM_DIR MODE[,MODE]`` (under torchrun, any number of processes)
    Initialises a gloo process group, builds the same VerifyRM on every rank and saves
    :func:`rm_update_snapshots` (weights after each of two updates on fixed pairs, with
    ``cooper.rm_update.parallel`` = MODE) to ``OUT_DIR/{MODE}-rank{R}.pt``.

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
    """SHA-256 of a module's state_dict, keys sorted, exact bytes (equal hashes = bitwise-equal weights). A
    sharded (FSDP2) module's tensors are gathered whole first: every rank must call it then."""
    import torch

    h = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        if hasattr(tensor, "full_tensor"):
            tensor = tensor.full_tensor()
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
                "layout": self.parallel,
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
GLOBAL_BATCH = 4  # pairs per optimizer step over all processes: mini_batch_size = GLOBAL_BATCH / world


def rm_update_snapshots(rm_dir: str, parallel: str) -> dict[str, Any]:
    """Two ``RMUpdater.update`` calls on :func:`fixed_pairs` (7 pairs, then 5 in another order), 2 epochs
    each, with ``GLOBAL_BATCH`` pairs per optimizer step over however many processes there are; the full RM
    weights (on rank 0; gathered when sharded) and the metrics after each, and this rank's bytes of RM state."""
    import torch

    from cooper.rl.rm_update import RMUpdateConfig, RMUpdater
    from cooper.rm.model import VerifyRM
    from cooper.rm.parallel import full_state_dict
    from cooper.utils.dist import rank_and_world

    _, world = rank_and_world()
    torch.manual_seed(0)
    rm = VerifyRM.from_pretrained(rm_dir, dtype=torch.float32, max_length=128)
    cfg = RMUpdateConfig(
        learning_rate=RM_UPDATE_LR,
        mini_batch_size=GLOBAL_BATCH // world,
        warmup_steps=2,
        epochs=2,
        parallel=parallel,
    )
    updater = RMUpdater(rm, cfg)
    pairs = fixed_pairs()
    snapshots, metrics = [], []
    # Global mini-batches of 4 then 3 (7 pairs), 4 then 1 (5 pairs): with 2 or 4 processes some ranks hold
    # fewer pairs than others, or none (they run a zero-weight forward and backward).
    for batch in (pairs, [pairs[i] for i in (6, 2, 4, 0, 5)]):
        metrics.append(updater.update(batch))
        snapshots.append({k: v.detach().cpu().clone() for k, v in full_state_dict(rm.model).items()})
    # Scoring with uneven counts: rank r scores the first 5r completions in batches of 2 (rank 0 none; 0, 3, 5
    # and 8 batches on 4 ranks): a sharded RM's ranks must still run the same number of forwards.
    rank, _ = rank_and_world()
    n = 5 * rank if world > 1 else 15
    scores = rm.score(
        [p.question for p in pairs * 3][:n],
        [p.reference for p in pairs * 3][:n],
        [c for p in pairs for c in (p.positive, p.negative, p.positive + " Check.")][:n],
        batch_size=2,
    )
    return {
        "scores": scores,
        "snapshots": snapshots,
        "metrics": metrics,
        "updates": updater.updates,
        "layout": updater.parallel,
        "bytes": updater.memory_bytes(),
    }


def run_rm_update(out_dir: Path, rm_dir: str, modes: list[str]) -> int:
    """Under torchrun: :func:`rm_update_snapshots` for each of ``modes``, into ``OUT_DIR/{mode}-rank{R}.pt``."""
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")  # torchrun's environment: RANK, WORLD_SIZE, MASTER_ADDR/PORT
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for mode in modes:
            result = rm_update_snapshots(rm_dir, mode)
            torch.save(result, out_dir / f"{mode}-rank{dist.get_rank()}.pt")
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
        sys.exit(run_rm_update(Path(target), rest[0], rest[1].split(",")))
    sys.exit(f"unknown mode {mode!r}")
