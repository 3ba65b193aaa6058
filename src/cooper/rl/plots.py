"""PNG plots of metrics against the step: :func:`plot_lines` draws one (``cooper plot`` and the demo's report
use it); :func:`plot_run` draws a training run's ``metrics.jsonl`` (verified accuracy, RM reward, hacking gap,
RM pair accuracy), one PNG per metric."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PANELS = (
    ("reward/rule_accuracy", "verified accuracy of rollouts"),
    ("reward/rm_mean", "RM reward (mean P(correct))"),
    ("reward/hacking_gap", "hacking gap = RM reward - verified accuracy"),
    ("rm/pair_accuracy", "RM pair accuracy (s+ > s-, before update)"),
)


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The rows of ``run_dir/metrics.jsonl``; a torn last line (a run killed mid-write) is skipped with a
    warning. A bad line elsewhere, or a file without rows, is a :class:`~cooper.data.rows.DataError` naming the
    file (and line)."""
    from cooper.data.rows import DataError

    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.jsonl in {run_dir}: is it the output_dir of a cooper train run?")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 text ({e.reason} at byte {e.start})") from None
    numbered = [(n, line) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    rows = []
    for n, line in numbered:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if n == numbered[-1][0]:
                log.warning("%s line %d: skipping a torn last line (the run was stopped mid-write)", path, n)
                break
            raise DataError(f"{path} line {n}: invalid JSON: {e.msg} (column {e.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path} line {n}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no metrics rows (the file is empty): has the run logged a step yet?")
    return rows


def metric_points(rows: Sequence[Mapping[str, Any]], key: str) -> list[tuple[float, float]]:
    """``(step, value)`` of ``key`` for the metrics rows where both are numbers (not bools)."""
    number = int | float
    return [
        (r["step"], r[key])
        for r in rows
        if isinstance(r.get(key), number)
        and isinstance(r.get("step"), number)
        and not isinstance(r[key], bool)
    ]


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write ``run_dir/plots/<metric>.png`` for each metric the run logged; returns the paths (none, with a
    warning, when the run logged none of :data:`PANELS`)."""
    from cooper.utils.io import check_output_dir

    rows = read_metrics(run_dir)
    out_dir = check_output_dir(Path(run_dir) / "plots", "plots folder")
    panels = [(key, title, points) for key, title in PANELS if (points := metric_points(rows, key))]
    if not panels:
        log.warning(
            "%s: %d rows but none of the plotted metrics (%s) with a step: no plots written",
            Path(run_dir) / "metrics.jsonl",
            len(rows),
            ", ".join(key for key, _ in PANELS),
        )
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [
        plot_lines(
            out_dir / (key.replace("/", "_") + ".png"), title, [(points, {"marker": ".", "linewidth": 1})]
        )
        for key, title, points in panels
    ]
    log.info("wrote %d plots to %s", len(written), out_dir)
    return written


def plot_lines(
    path: str | Path,
    title: str,
    lines: Sequence[tuple[Sequence[tuple[float, float]], Mapping[str, Any]]],
    *,
    xlabel: str = "step",
    size: tuple[float, float] = (6, 3.5),
) -> Path:
    """One PNG at ``path``: each of ``lines`` is ``(points, style)``, the ``(step, value)`` pairs and
    matplotlib's line keywords (``color``, ``linewidth``, ``label``, ...); a line without points is left
    out, and a legend is drawn when a line has a label. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=110)
    for points, style in lines:
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], **style)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def run_plot(args: argparse.Namespace) -> int:
    """``cooper plot RUN_DIR``: its own module, so plotting imports matplotlib but not TRL."""
    for path in plot_run(args.run_dir):
        print(path)
    return 0
