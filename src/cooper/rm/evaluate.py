"""``cooper eval-rm``: a reward model, the rule verifier and their combinations on labelled completions.

Rows in VerifyBench format ``{question, answer (the reference), completion, gold_correct, answer_type?}``
or the training format ``{question, reference, completion, label}``. Reported for the RM (P(correct) >=
threshold), the rule verifier alone, "rule OR RM" and "rule AND RM": accuracy, precision, recall (and the
RM's ROC-AUC), overall and per ``answer_type``. The rule verifier is ``math`` unless another is named
(``choice``, ``string``, a user's ``module:function``); it gets each row's ``answer_type`` (and, a user's
verifier, every other column) as row fields.
"""

from __future__ import annotations

import argparse
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from cooper.data.rows import parse_columns, read_records
from cooper.rm.data import check_threshold, load_rm_rows
from cooper.rm.metrics import binary_metrics, roc_auc
from cooper.rm.model import VerifyRM, check_rm_dir
from cooper.utils.io import atomic_write_json, atomic_write_text, check_output_dir
from cooper.verify.pool import is_correct_batch
from cooper.verify.registry import check_verifier, row_fields

log = logging.getLogger(__name__)

VERIFYBENCH_COLUMNS = {"answer": "reference", "gold_correct": "label"}
JUDGES = ("rm", "rule", "rule_or_rm", "rule_and_rm")


def detect_columns(paths: list[str], columns: dict[str, str] | None) -> dict[str, str]:
    """User renames, plus VerifyBench's ``answer``/``gold_correct`` when the file uses those names."""
    mapping = dict(columns or {})
    _, first = read_records(paths[0])[0]
    for theirs, ours in VERIFYBENCH_COLUMNS.items():
        if theirs in first and ours not in first and ours not in mapping.values():
            mapping[theirs] = ours
    return mapping


def judge_table(
    rm_probs: list[float],
    rule: list[bool],
    labels: list[int],
    answer_types: list[str],
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Metrics of each judge, overall and per answer type (pure: no models)."""
    rm = [p >= threshold for p in rm_probs]
    verdicts = {
        "rm": rm,
        "rule": rule,
        "rule_or_rm": [a or b for a, b in zip(rule, rm, strict=True)],
        "rule_and_rm": [a and b for a, b in zip(rule, rm, strict=True)],
    }
    groups: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(answer_types):
        groups[t].append(i)

    def block(idx: list[int]) -> dict[str, Any]:
        out: dict[str, Any] = {
            j: binary_metrics([v[i] for i in idx], [labels[i] for i in idx]) for j, v in verdicts.items()
        }
        out["rm"]["roc_auc"] = roc_auc([rm_probs[i] for i in idx], [labels[i] for i in idx])
        return out

    table = {"overall": block(list(range(len(labels))))}
    if len(groups) > 1 or next(iter(groups), "all") != "all":
        table["by_answer_type"] = {t: block(idx) for t, idx in sorted(groups.items())}
    return table


def markdown(table: dict[str, Any]) -> str:
    lines = ["| subset | judge | n | accuracy | precision | recall |", "|---|---|---|---|---|---|"]
    sections = [("overall", table["overall"])] + sorted(table.get("by_answer_type", {}).items())
    for name, block in sections:
        for judge in JUDGES:
            m = block[judge]
            lines.append(
                f"| {name} | {judge} | {m['n']} | {m['accuracy']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def evaluate_rm(
    model: str,
    data: list[str],
    *,
    columns: dict[str, str] | None = None,
    threshold: float = 0.5,
    batch_size: int = 16,
    skip_invalid: bool = False,
    trust_remote_code: bool = False,
    out: str | None = None,
    verifier: str = "math",
) -> dict[str, Any]:
    """Score ``data`` with the RM at ``model`` and the rule verifier ``verifier``; write ``out`` (.json +
    .md) if given. The result records the verifier."""
    check_threshold(threshold)  # every mistake is reported before any scoring
    verifier = check_verifier(verifier)
    if out:
        check_output_dir(Path(out).parent, "--out")
    check_rm_dir(model)
    rows, skipped = load_rm_rows(data, columns=detect_columns(data, columns), skip_invalid=skip_invalid)
    rm = VerifyRM.from_pretrained(model, trust_remote_code=trust_remote_code)
    q, ref, comp = ([r[k] for r in rows] for k in ("question", "reference", "completion"))
    probs = rm.score(q, ref, comp, batch_size=batch_size)
    fields = row_fields(verifier, rows, exclude=("id", "question", "reference", "completion", "label"))
    rule = is_correct_batch(comp, ref, verifier=verifier, **fields)
    types = [str(r.get("answer_type") or "all") for r in rows]
    result = {
        "model": str(model),
        "data": [str(p) for p in data],
        "threshold": threshold,
        "verifier": verifier,
        "rows": len(rows),
        "skipped_rows": len(skipped),
        **judge_table(probs, rule, [int(r["label"]) for r in rows], types, threshold),
    }
    if out:
        stem = Path(out)
        atomic_write_json(stem.with_suffix(".json"), result)
        atomic_write_text(stem.with_suffix(".md"), markdown(result))
    return result


def run_cli(args: argparse.Namespace) -> int:
    """``cooper eval-rm``: print the judges' table."""
    result = evaluate_rm(
        args.model,
        args.data,
        columns=parse_columns(args.column),
        threshold=args.threshold,
        batch_size=args.batch_size,
        skip_invalid=args.skip_invalid,
        trust_remote_code=args.trust_remote_code,
        out=args.out,
        verifier=args.verifier,
    )
    print(markdown(result), end="")
    return 0
