"""What makes a run the same run: a flat dict of its run-defining settings, compared on ``--resume``.

``cooper train`` and ``cooper train-rm`` each record theirs beside their checkpoints; a resume with other
values would continue a different run, so it is refused with :func:`identity_differences` naming the keys.
"""

from __future__ import annotations

from typing import Any


def identity_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key (checkpoint: a, now: b)`` for each run-defining setting that differs."""
    keys = sorted(set(saved) | set(current))
    return [
        f"{k} (checkpoint: {saved.get(k, '<unset>')!r}, now: {current.get(k, '<unset>')!r})"
        for k in keys
        if saved.get(k, "<unset>") != current.get(k, "<unset>")
    ]
