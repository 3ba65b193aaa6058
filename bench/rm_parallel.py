"""The reward model across processes: memory per process and update time, replicated (DDP) vs sharded
(FSDP2) vs the hand-written gradient all-reduce cooper used before, and proof that all give the same update.

For 1, 2 and 4 processes (``torchrun --standalone``, gloo, CPU) and each layout, the same RM takes ``--updates``
steps of :class:`cooper.rl.rm_update.RMUpdater` on the same ``--pairs`` pairs, ``--global-batch`` pairs per
optimizer step over all processes. Each process records the bytes it holds of RM parameters + gradients +
AdamW state (measured when the optimizer steps, the moment all three exist; a sharded tensor counts its local
shard) and the median seconds of one update after the first. Rank 0 saves the full weights; the weights of
every run are compared with the 1-process run.

``loop`` is the old scheme, kept here only as the baseline: a plain module on every rank, one
``dist.all_reduce`` per gradient after the backward (``docs/scaling.md`` described it).

    python bench/rm_parallel.py                  # the tiny RM (hidden 128, 2 layers), ~1-2 min on 2 cores
    python bench/rm_parallel.py --hidden 256 --layers 4

Last stdout line: one JSON object with ``shard_bytes_ratio_4``, ``replicate_bytes_ratio_4`` (bytes per process at
4 processes / at 1), ``max_abs_diff`` (largest weight difference from the 1-process run over layouts and
process counts) and ``update_s`` (``{"loop", "replicate", "shard"}`` at 2 processes), with the details.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODES = ("replicate", "shard")
PROCESSES = (1, 2, 4)


def pairs(n: int) -> list[Any]:
    from cooper.rl.rm_update import Pair

    out = []
    for i in range(n):
        a, b = 3 + 7 * i, 11 + 3 * i
        q = f"Tom has {a} apples and buys {b} more. How many apples does he have now?"
        good = f"Tom starts with {a} apples. He buys {b} more, so {a} + {b} = {a + b}. The answer is {a + b}."
        bad = f"Tom starts with {a} apples. He buys {b} more, so {a} + {b} = {a + b + 2}. The answer is {a + b + 2}."
        out.append(Pair(q, str(a + b), good, bad, "bench"))
    return out


# -- one process of a run ---------------------------------------------------------------------------------
def worker(out: Path, rm_dir: str, mode: str, args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    from cooper.rl.rm_update import RMUpdateConfig, RMUpdater
    from cooper.rm.model import VerifyRM
    from cooper.rm.parallel import full_state_dict, local_bytes

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    rm = VerifyRM.from_pretrained(rm_dir, dtype=torch.float32, max_length=256, device="cpu")
    config = RMUpdateConfig(
        learning_rate=1e-4,
        mini_batch_size=args.global_batch // world,
        parallel="replicate" if mode == "loop" else mode,
    )
    updater = _LoopUpdater(rm, config) if mode == "loop" else RMUpdater(rm, config)
    held: dict[str, int] = {}
    step = updater.optimizer.step

    def measured_step(*a: Any, **k: Any) -> Any:
        held.update(local_bytes(rm.model, updater.optimizer))  # parameters and gradients, before the step
        result = step(*a, **k)
        held["optimizer"] = local_bytes(rm.model, updater.optimizer)["optimizer"]
        return result

    updater.optimizer.step = measured_step  # type: ignore[method-assign]
    data = pairs(args.pairs)
    seconds = []
    for _ in range(args.updates):
        dist.barrier()
        t = time.perf_counter()
        updater.update(data)
        seconds.append(time.perf_counter() - t)
    weights = full_state_dict(rm.model)
    if rank == 0:
        torch.save({k: v.detach().cpu() for k, v in weights.items()}, out / f"{mode}-{world}.pt")
    record = {
        "bytes": held,
        "seconds": seconds[1:] or seconds,
        "layout": getattr(updater, "parallel", "loop"),
    }
    (out / f"{mode}-{world}-rank{rank}.json").write_text(json.dumps(record))
    dist.barrier()


class _LoopUpdater:
    """The pre-FSDP2 scheme (the baseline only): a plain module, one all_reduce per gradient."""

    def __init__(self, rm: Any, config: Any) -> None:
        import torch

        from cooper.rl.rm_update import RMUpdater

        self.rm, self.config, self.parallel = rm, config, "loop"
        self.optimizer = torch.optim.AdamW(rm.model.parameters(), lr=config.learning_rate)
        self._loss = RMUpdater._backward  # the same per-rank loss and zero-weight pass as RMUpdater
        self.module = rm.model

    def update(self, data: list[Any]) -> None:
        import torch
        import torch.distributed as dist

        world = dist.get_world_size()
        step = self.config.mini_batch_size * world
        for start in range(0, len(data), step):
            self._loss(self, data[start : start + step], None)
            for p in self.rm.model.parameters():
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad)
                p.grad /= world  # RMUpdater's loss is scaled for averaged gradients
            torch.nn.utils.clip_grad_norm_(self.rm.model.parameters(), self.config.max_grad_norm)
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


# -- the driver ---------------------------------------------------------------------------------------------
def launch(nproc: int, out: Path, rm_dir: str, mode: str, args: argparse.Namespace) -> None:
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    sizes = [
        "--pairs",
        str(args.pairs),
        "--updates",
        str(args.updates),
        "--global-batch",
        str(args.global_batch),
    ]
    cmd = [*torchrun, __file__, "--worker", str(out), rm_dir, mode, *sizes]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        sys.exit(f"{mode} on {nproc} processes failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")


def build_rm(root: Path, hidden: int, layers: int) -> str:
    from cooper.rm.model import VerifyRM
    from cooper.utils.tiny import build_sequence_classifier, build_tokenizer

    path = root / f"rm-h{hidden}-l{layers}"
    base = build_sequence_classifier(
        root / "base", tokenizer=build_tokenizer(), hidden_size=hidden, num_layers=layers
    )
    VerifyRM.from_pretrained(base, new_head=True, device="cpu").save_pretrained(path)
    return str(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", nargs=3, metavar=("OUT", "RM_DIR", "MODE"), help=argparse.SUPPRESS)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--global-batch", type=int, default=8, help="pairs per optimizer step over all processes")
    ap.add_argument("--updates", type=int, default=4, help="RM updates (the first is not timed)")
    args = ap.parse_args()
    if args.worker:
        out, rm_dir, mode = args.worker
        worker(Path(out), rm_dir, mode, args)
        return 0
    if args.global_batch % 4:
        sys.exit("--global-batch must be divisible by 4 (the largest process count)")

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rm_dir = build_rm(root, args.hidden, args.layers)
        runs = [(n, m) for n in PROCESSES for m in MODES] + [(2, "loop")]
        for nproc, mode in runs:
            launch(nproc, root, rm_dir, mode, args)
        records = {
            (n, m): [json.loads((root / f"{m}-{n}-rank{r}.json").read_text()) for r in range(n)]
            for n, m in runs
        }
        reference = torch.load(root / "replicate-1.pt", weights_only=True)
        diffs = {}
        for n, m in runs:
            weights = torch.load(root / f"{m}-{n}.pt", weights_only=True)
            diffs[f"{m}@{n}"] = max((weights[k] - reference[k]).abs().max().item() for k in reference)

    def held(n: int, m: str) -> int:  # the most any rank holds
        return max(sum(r["bytes"].values()) for r in records[n, m])

    bytes_per_process = {m: {str(n): held(n, m) for n in PROCESSES} for m in MODES}
    update_s = {
        m: statistics.median(s for r in records[2, m] for s in r["seconds"]) for m in ("loop", *MODES)
    }
    result = {
        "bench": "rm_parallel",
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU, gloo",
        "rm_parameters": sum(v.numel() for v in reference.values()),
        "bytes_per_process": bytes_per_process,  # parameters + gradients + AdamW state, at the optimizer step
        "bytes_detail_4": {m: [r["bytes"] for r in records[4, m]] for m in MODES},
        "shard_bytes_ratio_4": bytes_per_process["shard"]["4"] / bytes_per_process["shard"]["1"],
        "replicate_bytes_ratio_4": bytes_per_process["replicate"]["4"] / bytes_per_process["replicate"]["1"],
        "layouts": {f"{m}@{n}": records[n, m][0]["layout"] for n, m in runs},
        "diffs": diffs,
        "max_abs_diff": max(diffs.values()),
        "update_s": update_s,
        "settings": {"pairs": args.pairs, "global_batch": args.global_batch, "updates": args.updates},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
