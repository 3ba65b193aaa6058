"""The few collectives cooper itself needs across processes; every one is the identity on one process.

TRL and accelerate run the policy's processes; cooper's reward runs inside each of them and needs to see the
whole step (a prompt's rollouts may sit on several ranks), to build the RM's pairs once, and to sum counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)``; ``(0, 1)`` without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_gather(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order (``[obj]`` on one process). One collective."""
    _, world = rank_and_world()
    if world == 1:
        return [obj]
    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, obj)
    return parts


def gather_lists(items: Sequence[T]) -> list[T]:
    """The lists of every rank concatenated in rank order (one collective: gather a step's records once)."""
    return [x for part in all_gather(list(items)) for x in part]


def on_rank0_then_broadcast(fn: Callable[[], T]) -> T:
    """Call ``fn`` on rank 0 only and give every rank its result (so work with side effects, such as endpoint
    calls, or with deadlines, such as verifier verdicts, is done once and every rank agrees on it)."""
    rank, world = rank_and_world()
    if world == 1:
        return fn()
    box = [fn() if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]


def sum_across_ranks(values: Sequence[int], device: torch.device | str = "cpu") -> list[int]:
    """Element-wise sums of integer counts over the ranks."""
    _, world = rank_and_world()
    if world == 1:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.long, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [int(x) for x in t.tolist()]


def sum_tensor_across_ranks(t: torch.Tensor) -> torch.Tensor:
    """A copy of ``t`` summed over the ranks (``t`` itself on one process)."""
    _, world = rank_and_world()
    if world == 1:
        return t
    out = t.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def max_across_ranks(value: int, device: torch.device | str = "cpu") -> int:
    """The largest ``value`` over the ranks (``value`` itself on one process)."""
    _, world = rank_and_world()
    if world == 1:
        return value
    t = torch.tensor([value], dtype=torch.long, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def barrier() -> None:
    """Wait for every rank (nothing on one process)."""
    if rank_and_world()[1] > 1:
        dist.barrier()
