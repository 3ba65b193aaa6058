"""One run per output directory, and what makes a run the same run.

``cooper train`` and ``cooper train-rm`` share the rules (:func:`fresh_or_resume`): a fresh run into a
directory holding another stops unless ``--overwrite``; ``--resume`` needs a checkpoint. Each records its
run-defining settings beside its checkpoints as a flat dict; a resume with other values would continue a
different run, so it is refused with :func:`identity_differences` naming the keys.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cooper.utils.errors import BadInput

log = logging.getLogger(__name__)


class RunMismatch(BadInput, ValueError):
    """An output directory holds another run than the one asked for, or no checkpoint to resume."""


def refuse_resume_and_overwrite(resume: bool, overwrite: bool, flag: str) -> None:
    """``--resume`` and ``--overwrite`` together are a mistake (one continues the run, one deletes it)."""
    if resume and overwrite:
        raise RunMismatch(
            f"--resume continues the run in {flag} and --overwrite deletes it: give one of them"
        )


def fresh_or_resume(
    out: Path,
    earlier: list[str],
    *,
    resume: bool,
    overwrite: bool,
    has_checkpoint: bool,
    clear: Callable[[], None],
    flag: str,
    kind: str = "run",
) -> bool:
    """Whether to resume the run in ``out``, which holds ``earlier`` (what an earlier run left; empty if
    nothing). ``overwrite`` calls ``clear`` and starts fresh; without ``resume`` an earlier run is refused;
    ``resume`` with no checkpoint starts fresh in an empty directory and is refused in a used one. True means:
    resume, after the caller has checked the checkpoint belongs to this run. ``flag`` and ``kind`` name the
    directory and the run in the messages."""
    refuse_resume_and_overwrite(resume, overwrite, flag)
    shown = ", ".join(earlier[:6])
    if overwrite and earlier:
        log.warning("--overwrite: deleting the earlier %s in %s (%s)", kind, out, shown)
        clear()
        return False
    if not resume:
        if earlier:
            raise RunMismatch(
                f"{flag} {str(out)!r} already holds a {kind} ({shown}); pass --resume to continue it, "
                f"--overwrite to delete it and start again, or choose another {flag}"
            )
        return False
    if not has_checkpoint:
        if earlier:
            raise RunMismatch(
                f"--resume: {flag} {str(out)!r} holds an earlier {kind} ({shown}) but no complete checkpoint "
                "to continue from; pass --overwrite to start again"
            )
        log.warning("--resume: no checkpoint in %s; starting fresh", out)
        return False
    return True


def identity_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key (checkpoint: a, now: b)`` for each run-defining setting that differs."""
    keys = sorted(set(saved) | set(current))
    return [
        f"{k} (checkpoint: {saved.get(k, '<unset>')!r}, now: {current.get(k, '<unset>')!r})"
        for k in keys
        if saved.get(k, "<unset>") != current.get(k, "<unset>")
    ]
