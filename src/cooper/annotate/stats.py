"""The counts of hybrid annotation (:mod:`cooper.annotate`) and their tables on the command line."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from rich.console import Console
from rich.table import Table

Row = dict[str, Any]

OUTCOME_COUNT = {"agree": "agreements", "disagree": "disagreements", "abstain": "abstentions"}


def summarise(
    rows: list[Row], outcomes: dict[str, Row], failures: Counter[str], n_pending: int
) -> dict[str, Any]:
    """The counts of :func:`cooper.annotate.annotate`'s ``stats.json`` over ``rows`` (see its docstring)
    from the outcomes by id, the judge failures of this run by source, and the rows judged this run."""
    per_source: dict[str, Counter[str]] = defaultdict(Counter)
    total: Counter[str] = Counter()
    for row in rows:
        source = row.get("source", "unknown")
        counts = [per_source[source], total]
        for c in counts:
            c["rows"] += 1
        entry = outcomes.get(row["id"])
        if entry is None:
            continue
        keys = ["judged", OUTCOME_COUNT[entry["outcome"]]] + (
            ["verifier_correct"] if entry["verifier"] else []
        )
        if entry["outcome"] == "agree":
            keys.append("kept_positive" if entry["verifier"] else "kept_negative")
        for c in counts:
            c.update(keys)
    for source, n in failures.items():
        per_source[source]["judge_failures"] += n
    decided = total["agreements"] + total["disagreements"]
    names = ("judged", *OUTCOME_COUNT.values(), "kept_positive", "kept_negative", "verifier_correct")
    return {
        "rows_in": len(rows),
        **{k: total[k] for k in names},
        "agreement_rate": round(total["agreements"] / decided, 4) if decided else None,
        "judge_failures": sum(failures.values()),
        "judged_this_run": n_pending - sum(failures.values()),
        "skipped_already_judged": len(rows) - n_pending,
        "per_source": {
            s: {k: c[k] for k in ("rows", *names, "judge_failures")} for s, c in sorted(per_source.items())
        },
    }


ABSTENTION_WARN_FRACTION = 0.5  # warn when the judge abstained on more than this share of the judged rows


def abstention_warning(stats: dict[str, Any], out_dir: str) -> str | None:
    """A warning when the judge abstained on all or most judged rows (``None`` when it mostly decided):
    how many, how few rows were kept, and what to do about it."""
    judged, abstained = stats["judged"], stats["abstentions"]
    if not abstained or abstained <= ABSTENTION_WARN_FRACTION * judged:
        return None
    hint = (
        f"check the judge model and prompt (its replies are the 'judge_reply' fields of {out_dir}/judged.jsonl; "
        "the last line must be exactly 'Final verdict: Yes' or 'Final verdict: No', and a larger "
        "--judge-max-tokens helps if replies are cut off), then rerun with --retry-abstentions to ask again"
    )
    if abstained == judged:
        return f"the judge abstained on all {judged} rows it judged (no verdict line), so no row was kept; {hint}"
    kept = stats["kept_positive"] + stats["kept_negative"]
    return (
        f"the judge abstained on {abstained} of {judged} judged rows (no verdict line), so only {kept} rows "
        f"were kept; {hint}"
    )


_SUMMARY = {
    "rows in": "rows_in",
    "judged (all runs)": "judged",
    "judged this run": "judged_this_run",
    "skipped (already judged)": "skipped_already_judged",
    "kept positives (label 1)": "kept_positive",
    "kept negatives (label 0)": "kept_negative",
    "disagreements": "disagreements",
    "abstentions (unparseable verdicts)": "abstentions",
    "judge failures (endpoint errors)": "judge_failures",
    "invalid rows skipped": "invalid_rows_skipped",
}
_PER_SOURCE = {"rows": "rows", "judged": "judged", "pos": "kept_positive", "neg": "kept_negative"} | {
    "disagree": "disagreements",
    "abstain": "abstentions",
    "failed": "judge_failures",
}


def print_stats(stats: dict[str, Any]) -> None:
    """The stats as rich tables on stdout (the command's final output)."""
    summary = Table(title="cooper annotate", show_header=False)
    for label, key in _SUMMARY.items():
        if key in stats:
            summary.add_row(label, str(stats[key]))
    rate = stats["agreement_rate"]
    summary.add_row("agreement rate", "-" if rate is None else f"{rate:.1%}")
    sources = Table("source", *_PER_SOURCE, title="per source (pos/neg = kept rows)")
    for source, counts in stats["per_source"].items():
        sources.add_row(source, *(str(counts[key]) for key in _PER_SOURCE.values()))
    endpoint = Table("outcome", "count", title="judge endpoint")
    for key, value in (stats.get("endpoint") or {}).items():
        endpoint.add_row(key, str(value))
    console = Console()
    for table in (summary, sources, endpoint) if stats.get("endpoint") else (summary, sources):
        console.print(table)
