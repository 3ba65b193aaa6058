"""PNG plots of a training run's ``metrics.jsonl``: verified accuracy, RM reward and hacking gap per step."""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

PANELS = (
    ("reward/rule_accuracy", "verified accuracy of rollouts"),
    ("reward/rm_mean", "RM reward (mean P(correct))"),
    ("reward/hacking_gap", "hacking gap = RM reward - verified accuracy"),
    ("rm/pair_accuracy", "RM pair accuracy (s+ > s-, before update)"),
)


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.jsonl in {run_dir}: is it the output_dir of a cooper train run?")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write ``run_dir/plots/<metric>.png`` for each metric the run logged; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir)
    out_dir = Path(run_dir) / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key, title in PANELS:
        points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), int | float)]
        if not points:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", linewidth=1)
        ax.set_xlabel("step")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / (key.replace("/", "_") + ".png")
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    log.info("wrote %d plots to %s", len(written), out_dir)
    return written
