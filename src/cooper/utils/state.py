"""State without pickle: a nested state dict (an optimizer's, a scheduler's, counters, an RNG's) saved as one
JSON file for its structure and numbers plus one safetensors file for its tensors.

A pickle can run code when it is loaded, so a checkpoint someone shares could; JSON and safetensors cannot.
:func:`save_state` / :func:`load_state` round-trip dicts, lists, tuples (read back as lists), str, int, float,
bool, None and tensors. Dict keys that are ints (an optimizer's parameter indices) come back as ints.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from cooper.utils.errors import BadInput

_TENSOR = "__tensor__"
_INT_KEYS = "__int_keys__"
_FLOAT = "__float__"


class StateError(BadInput, ValueError):
    """A state file is missing, unreadable or does not match what was expected; the message names it."""


def flatten_state(state: Any, prefix: str = "state") -> tuple[Any, dict[str, torch.Tensor]]:
    """``state`` as a JSON-able skeleton in which each tensor is ``{"__tensor__": key}``, and the tensors by key."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(obj: Any, path: str) -> Any:
        if isinstance(obj, torch.Tensor):
            tensors[path] = obj.detach().cpu().contiguous()
            return {_TENSOR: path}
        if isinstance(obj, dict):
            if all(isinstance(k, int) for k in obj) and obj:
                return {_INT_KEYS: [[k, walk(v, f"{path}.{k}")] for k, v in obj.items()]}
            if not all(isinstance(k, str) for k in obj):
                raise TypeError(
                    f"{path}: dict keys must be all str or all int, got {sorted(map(repr, obj))[:3]}"
                )
            return {k: walk(v, f"{path}.{k}") for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [walk(v, f"{path}.{i}") for i, v in enumerate(obj)]
        if isinstance(obj, float) and not math.isfinite(obj):
            return {_FLOAT: repr(obj)}  # JSON has no inf/nan
        if obj is None or isinstance(obj, str | int | float | bool):
            return obj
        raise TypeError(f"{path}: cannot save a {type(obj).__name__} without pickle")

    return walk(state, prefix), tensors


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of :func:`flatten_state`; a tensor key missing from ``tensors`` is a :class:`StateError`."""

    def walk(obj: Any) -> Any:
        if isinstance(obj, dict):
            if set(obj) == {_TENSOR}:
                if obj[_TENSOR] not in tensors:
                    raise StateError(f"tensor {obj[_TENSOR]!r} is missing")
                return tensors[obj[_TENSOR]]
            if set(obj) == {_INT_KEYS}:
                return {int(k): walk(v) for k, v in obj[_INT_KEYS]}
            if set(obj) == {_FLOAT}:
                return float(obj[_FLOAT])
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    return walk(skeleton)


def save_state(state: Any, directory: str | os.PathLike[str], name: str) -> None:
    """Write ``directory/name.json`` (and ``directory/name.safetensors`` when ``state`` holds tensors)."""
    directory = Path(directory)
    skeleton, tensors = flatten_state(state)
    if tensors:
        save_file(tensors, str(directory / f"{name}.safetensors"), metadata={"format": "pt"})
    (directory / f"{name}.json").write_text(json.dumps(skeleton, allow_nan=False) + "\n", encoding="utf-8")


def load_state(directory: str | os.PathLike[str], name: str) -> Any:
    """Read what :func:`save_state` wrote; nothing in the files is executed."""
    directory = Path(directory)
    path = directory / f"{name}.json"
    try:
        skeleton = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise StateError(f"cannot read {path}: {e}") from None
    weights = directory / f"{name}.safetensors"
    try:
        tensors = load_file(str(weights)) if weights.is_file() else {}
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error type for a corrupt file
        raise StateError(f"cannot read {weights}: {type(e).__name__}: {e}") from None
    return unflatten_state(skeleton, tensors)
