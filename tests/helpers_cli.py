"""Running the ``cooper`` command in-process as a user would (its exit code and everything the user sees), and
loading a repository script (``bench/*.py``) as a module."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

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


def load_script(path: Path, name: str) -> ModuleType:
    """The Python file ``path`` imported as module ``name`` (registered in ``sys.modules`` first: dataclasses
    look their module up while the file executes)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
