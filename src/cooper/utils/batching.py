"""Batches of indices: longest first (little padding, and an out-of-memory error on the first batch), or in
input order. The one length sort for RM scoring (:mod:`cooper.rm.model`) and policy sampling
(:mod:`cooper.eval.engines`); ties keep input order (a stable sort), which sampling seeds depend on."""

from __future__ import annotations

from collections.abc import Sequence


def longest_first(lengths: Sequence[int]) -> list[int]:
    """Indices into ``lengths``, longest first; equal lengths keep their input order."""
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])


def _check(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """:func:`longest_first` cut into batches of ``batch_size`` (the last may be shorter)."""
    _check(batch_size)
    order = longest_first(lengths)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def input_order_batches(n: int, batch_size: int) -> list[list[int]]:
    """``range(n)`` in batches of ``batch_size``, in order (the last may be shorter)."""
    _check(batch_size)
    return [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
