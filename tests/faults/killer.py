"""Start a ``cooper`` command in a child process and SIGKILL it the moment a condition on its outputs holds.

Polling the output directory (about every millisecond) rather than sleeping lets a test aim its kill: right
after a checkpoint directory appears (the Trainer is writing it), while the cooper state is being written,
or between two checkpoints. The child runs at a lower priority (``nice``), so that on a busy machine the
poller still sees the short windows it aims at.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
}


class Child:
    """``python -m cooper.cli ARGS`` with stdout and stderr in ``log_path``, in its own process group."""

    def __init__(self, args: list[str], log_path: Path, *, cwd: Path | None = None) -> None:
        self.log_path = log_path
        with log_path.open("w") as log:
            self.proc = subprocess.Popen(
                ["nice", "-n", "5", sys.executable, "-m", "cooper.cli", *args],  # nice execs: same pid
                stdout=log,
                stderr=subprocess.STDOUT,
                env=os.environ | ENV,
                cwd=cwd,
                start_new_session=True,  # its own group, so that cleanup reaches its helper processes too
            )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill_when(self, condition: Callable[[], bool], *, timeout_s: float = 120.0) -> bool:
        """SIGKILL the child as soon as ``condition()`` holds; False if it exited (or timed out) first."""
        deadline = time.monotonic() + timeout_s
        try:
            while self.proc.poll() is None and time.monotonic() < deadline:
                if condition():
                    os.kill(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
                    return True
                time.sleep(0.0005)
            return False
        finally:
            self.cleanup()

    def wait(self, timeout_s: float = 180.0) -> int:
        try:
            return self.proc.wait(timeout=timeout_s)
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        """Kill whatever is left of the child's process group (verifier workers, or the child itself)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def complete_lines(path: Path) -> list[str]:
    """The newline-terminated lines of a file (a torn last line is left out); [] if it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return data[: data.rfind(b"\n") + 1].decode("utf-8", errors="replace").splitlines()
