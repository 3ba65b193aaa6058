"""Labelled RM rows ``{question, reference, completion, label}``, shared by pre-training and evaluation."""

from __future__ import annotations

from typing import Any

from cooper.data.rows import load_rows

RM_FIELDS = ("question", "reference", "completion", "label")
_TRUE = {"1", "true", "yes", "correct"}
_FALSE = {"0", "false", "no", "incorrect"}


def parse_label(value: Any) -> int:
    """0/1 from a bool, 0/1 number or 'true'/'false'/'0'/'1' string; anything else raises ValueError."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return int(value.strip().lower() in _TRUE)
    raise ValueError(f"label must be 0/1 or true/false, got {value!r}")


def load_rm_rows(
    paths: list[str], *, columns: dict[str, str] | None = None, skip_invalid: bool = False
) -> tuple[list[dict[str, Any]], list[str]]:
    """Labelled RM rows and the messages of rows skipped (only with ``skip_invalid``). Ids must be unique
    across the files (a row without one gets ``{file stem}-{index}``): a repeated id is usually the same file
    given twice, which would weigh its rows double or leak them into the held-out split."""
    skipped: list[str] = []
    rows = load_rows(
        paths,
        columns=columns,
        required=RM_FIELDS,
        converters={"label": parse_label},
        skip_invalid=skip_invalid,
        skipped=skipped,
        unique_ids=True,
    )
    return rows, skipped


def check_threshold(threshold: float) -> float:
    """A P(correct) threshold strictly between 0 and 1, or ValueError."""
    if not 0.0 < threshold < 1.0:  # also refuses nan
        raise ValueError(f"--threshold must be a probability in (0, 1), got {threshold}")
    return threshold
