"""Running the ``cooper`` command in-process as a user would: its exit code and everything the user sees."""

from __future__ import annotations

import logging

import pytest

from cooper.cli import main


def run_cli(
    argv: list,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture,
    *,
    level: int = logging.INFO,
) -> tuple[int, str]:
    """``(exit code, log + stdout + stderr)`` of ``cooper ARGV`` (arguments may be paths); argparse's errors
    exit through SystemExit and are returned as their code."""
    caplog.clear()
    with caplog.at_level(level):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
    captured = capsys.readouterr()
    return rc, caplog.text + captured.out + captured.err
