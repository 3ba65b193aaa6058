"""Local model directories: the one check every loader makes before touching transformers."""

from __future__ import annotations

import os
from pathlib import Path


class ModelLoadError(RuntimeError):
    """The model directory is missing, incomplete or cannot be loaded; raised before any generation."""


class ModelDirError(ModelLoadError, FileNotFoundError):
    """No usable model directory at a path (missing, not a directory, or no ``config.json``).

    Both a :class:`ModelLoadError` (what the generation engines and ``cooper eval`` catch) and a
    :class:`FileNotFoundError` (what the reward-model loaders and the ``cooper`` command catch).
    """


def check_model_dir(path: str | os.PathLike[str], kind: str = "model") -> Path:
    """``path`` as a local model directory with a ``config.json``, or :class:`ModelDirError` saying what is
    wrong (cooper never fetches models from a hub). ``kind`` names the model in the message."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelDirError(
            f"{kind} directory not found: {str(p)!r} does not exist (cooper loads models from local paths only)"
        )
    if not p.is_dir():
        raise ModelDirError(f"{kind} path {str(p)!r} is not a directory")
    if not (p / "config.json").is_file():
        raise ModelDirError(
            f"{kind} directory {str(p)!r} has no config.json: not a saved transformers model "
            "(expected the output of save_pretrained)"
        )
    return p
