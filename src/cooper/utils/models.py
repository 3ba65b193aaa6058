"""Local model directories: the one check every loader makes before touching transformers."""

from __future__ import annotations

import os
from pathlib import Path

from safetensors import SafetensorError

from cooper.utils.errors import BadInput

# Weight files that torch.load unpickles; a directory with these and no *.safetensors is refused.
PICKLE_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


class ModelLoadError(BadInput, RuntimeError):
    """The model directory is missing, incomplete or cannot be loaded; raised before any generation."""


class ModelDirError(ModelLoadError, FileNotFoundError):
    """No usable model directory at a path (missing, not a directory, or no ``config.json``).

    Both a :class:`ModelLoadError` (what the generation engines raise) and a :class:`FileNotFoundError` (what
    a missing path raises elsewhere); either way a :class:`~cooper.utils.errors.BadInput`.
    """


def check_model_dir(path: str | os.PathLike[str], kind: str = "model") -> Path:
    """``path`` as a local model directory with a ``config.json``, or :class:`ModelDirError` saying what is
    wrong (cooper never fetches models from a hub; weights load only from safetensors, so a directory with
    pickled weights such as ``pytorch_model.bin`` and no ``*.safetensors`` is refused). ``kind`` names the
    model in the message."""
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
    pickled = sorted(f.name for f in p.iterdir() if f.suffix in PICKLE_WEIGHT_SUFFIXES and f.is_file())
    has_safetensors = any(p.glob("*.safetensors"))
    if pickled and not has_safetensors:
        raise ModelDirError(
            f"{kind} directory {str(p)!r} holds only pickled weights ({', '.join(pickled[:3])}); cooper loads "
            "weights only from safetensors (a pickle can run code when loaded). Convert it once, in an "
            "environment you trust: load it with transformers and save_pretrained() it again"
        )
    if not has_safetensors:
        raise ModelDirError(
            f"{kind} directory {str(p)!r} has a config.json but no weights (no *.safetensors file): an "
            "incomplete copy or a save that was interrupted; save the model again with save_pretrained()"
        )
    return p


def load_errors() -> tuple[type[BaseException], ...]:
    """What transformers' ``from_pretrained`` raises on a directory it cannot load (a corrupt or truncated
    weight file included: safetensors has its own exception class), for loaders to turn into one message."""
    return (OSError, ValueError, KeyError, TypeError, ImportError, RuntimeError, SafetensorError)
