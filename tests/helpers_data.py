"""The small data the training tests share: ``configs/data/digits.jsonl`` and the instruction the
``digits_policy`` fixture (``conftest.py``) was warm-started with, which every run on that policy must reuse."""

from __future__ import annotations

from pathlib import Path

DIGITS = Path(__file__).resolve().parent.parent / "configs" / "data" / "digits.jsonl"
DIGITS_INSTRUCTION = "Answer with the digit."

# User verifiers (``path/to/my_verifiers.py:function``) the tests of ``--verifier`` / ``reward.verifier`` share;
# each reads a data column, so a test sees that the rows' other columns reach it.
USER_VERIFIERS = '''
import json


def check(responses, references, verdict=None, log=None, **fields):
    """The data's own verdict column ("yes" is correct); what it was given is appended to the file the
    `log` column names."""
    if log is not None:
        with open(log[0], "a", encoding="utf-8") as f:
            for r, g, v in zip(responses, references, verdict):
                f.write(json.dumps({"response": r, "reference": g, "verdict": v, "fields": sorted(fields)}) + "\\n")
    return [v == "yes" for v in verdict]


def typed(responses, references, answer_type=None, **fields):
    """Correct exactly where the row's answer_type is integer or string."""
    return [t in ("integer", "string") for t in answer_type]


def arith(responses, references, source=None, **fields):
    """Correct exactly where the row's source is arith."""
    return [s == "arith" for s in source]


def boom(responses, references, **fields):
    raise RuntimeError("my verifier broke")
'''


def write_user_verifiers(folder: Path) -> Path:
    """``folder/my_verifiers.py`` with :data:`USER_VERIFIERS`; use it as ``f"{path}:check"``."""
    path = folder / "my_verifiers.py"
    path.write_text(USER_VERIFIERS, encoding="utf-8")
    return path
