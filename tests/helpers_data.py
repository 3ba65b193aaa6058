"""The small data the training tests share: ``configs/data/digits.jsonl`` and the instruction the
``digits_policy`` fixture (``conftest.py``) was warm-started with, which every run on that policy must reuse."""

from __future__ import annotations

from pathlib import Path

DIGITS = Path(__file__).resolve().parent.parent / "configs" / "data" / "digits.jsonl"
DIGITS_INSTRUCTION = "Answer with the digit."
