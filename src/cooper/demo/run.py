"""``cooper demo``: run every phase, then write ``report.json``, ``report.md`` and the PNG plots."""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from transformers import AutoModelForCausalLM, AutoTokenizer

from cooper.demo import pipeline as P
from cooper.demo.progress import DemoProgress, reference_weights, step_callback
from cooper.rl.plots import metric_points, plot_lines
from cooper.utils.io import atomic_write_json, atomic_write_text, check_output_dir, read_jsonl, write_jsonl

log = logging.getLogger(__name__)


def _mean(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.fmean(vals) if vals else None


def summarise_arm(runs: list[dict[str, Any]], initial: float) -> dict[str, Any]:
    """report.json's per-arm block, averaged over seeds (accuracies by the exact checker)."""
    finals, peaks, rm_final, gaps, checks = [], [], [], [], []
    for run in runs:
        accs = [initial] + [e["exact"] for e in run["eval"]]
        checks.append(run["eval"][-1].get("check") if run["eval"] else None)
        finals.append(accs[-1])
        peaks.append(max(accs))
        rm = [m["reward/rm_mean"] for m in run["metrics"] if isinstance(m.get("reward/rm_mean"), float)]
        rm_final.append(statistics.fmean(rm[-5:]) if rm else None)
        gap = [
            m["reward/hacking_gap"] for m in run["metrics"] if isinstance(m.get("reward/hacking_gap"), float)
        ]
        gaps.append(max(gap) if gap else None)
    return {
        "initial_accuracy": initial,
        "final_accuracy": _mean(finals),
        "peak_accuracy": _mean(peaks),
        "final_rm_reward": _mean(rm_final),
        "max_hacking_gap": _mean(gaps),
        "steps": max(r["summary"]["steps"] for r in runs),
        "final_check_share": _mean(checks),
    }


def gap_after_warmup(runs: list[dict[str, Any]], frac: float = 0.1) -> float | None:
    """The largest hacking gap after the first ``frac`` of steps, averaged over seeds."""
    out = []
    for run in runs:
        gaps = [
            (m["step"], m["reward/hacking_gap"])
            for m in run["metrics"]
            if isinstance(m.get("reward/hacking_gap"), float)
        ]
        if gaps:
            cut = max(s for s, _ in gaps) * frac
            out.append(max(g for s, g in gaps if s > cut))
    return _mean(out)


def plot_demo(runs: dict[str, list[dict]], initial: float, out: Path) -> list[Path]:
    """One PNG per panel in ``out``, every arm's seeds as lines in the arm's colour (the first labelled)."""
    colors = {"rule": "tab:blue", "static_rm": "tab:red", "cooper": "tab:green"}
    panels = [
        ("heldout_accuracy.png", "held-out accuracy (exact checker)", None),
        ("rm_reward.png", "RM reward of rollouts (mean P(correct))", "reward/rm_mean"),
        ("hacking_gap.png", "hacking gap = RM reward - verified accuracy", "reward/hacking_gap"),
        ("rm_pair_accuracy.png", "RM pair accuracy before each update (cooper)", "rm/pair_accuracy"),
    ]
    written = []
    for name, title, key in panels:
        lines = [
            (
                [(0, initial)] + [(e["step"], e["exact"]) for e in run["eval"]]
                if key is None
                else metric_points(run["metrics"], key),
                {"color": colors[arm], "alpha": 0.85, "linewidth": 1.2, "label": arm if i == 0 else None},
            )
            for arm, arm_runs in runs.items()
            for i, run in enumerate(arm_runs)
        ]
        written.append(plot_lines(out / name, title, lines, xlabel="RL step", size=(6, 3.6)))
    return written


def _table(report: dict[str, Any], rows: list[tuple[str, str, list[str]]]) -> list[str]:
    """The results table, arms as columns: final and peak held-out accuracy, then ``rows``
    (``(name, baseline cell, one cell per arm)``)."""
    arms = report["arms"]
    rows = [
        (
            "final held-out accuracy",
            f"{report['sft_accuracy']:.3f}",
            [f"{arms[a]['final_accuracy']:.3f}" for a in P.ARMS],
        ),
        ("peak held-out accuracy", "", [f"{arms[a]['peak_accuracy']:.3f}" for a in P.ARMS]),
        (
            "held-out answers with a check step, final",
            _pct(report.get("sft_check_share")),
            [_pct(arms[a].get("final_check_share")) for a in P.ARMS],
        ),
        *rows,
    ]
    return [
        "| | baseline (SFT) | " + " | ".join(P.ARMS) + " |",
        "|---|---|---|---|---|",
        *("| " + " | ".join([name, base, *cells]) + " |" for name, base, cells in rows),
    ]


def write_markdown(report: dict[str, Any], out: Path) -> None:
    arms = report["arms"]
    lines = [
        "# cooper demo: reward hacking and its cure",
        "",
        f"Ran in {report['seconds']:.0f} s on this machine with seeds {report['seeds']} "
        f"({'quick smoke run' if report['quick'] else 'full run'}). Accuracies: "
        f"{report['settings']['eval_samples']} samples per problem at temperature 0.7 on "
        f"{report['heldout_problems']} held-out problems, by the task's exact checker, averaged over seeds.",
        "",
        _phases_line(report),
        "",
        *_table(
            report,
            [
                ("final RM reward", "", [_fmt(arms[a]["final_rm_reward"]) for a in P.ARMS]),
                ("max hacking gap", "", [_fmt(arms[a]["max_hacking_gap"]) for a in P.ARMS]),
            ],
        ),
        "",
        f"RM pre-training: {report['annotation']['agreements']} agreed labels ({report['annotation']['kept_positive']} "
        f"correct) from hybrid annotation of {report['annotation']['rows_in']} rows (SFT samples plus written "
        f"solutions); "
        f"held-out accuracy {report['rm_pretrain_heldout_accuracy']:.3f} "
        f"(majority class {report['rm_pretrain_majority']:.3f}).",
        "",
        f"Shortcut probe (mean RM score of written solutions to {report['rm_probe']['problems']} held-out problems): "
        + "; ".join(
            f"{name}: correct {_fmt(p['correct'])}, wrong {_fmt(p['wrong'])}, wrong with a check step "
            f"{_fmt(p['wrong_with_check'])}"
            for name, p in (
                ("pre-trained RM", report["rm_probe"]["pretrained"]),
                ("cooper's final RM (mean over seeds)", report["rm_probe"]["cooper_final"]),
            )
        )
        + ".",
        "",
        "![held-out accuracy](heldout_accuracy.png) ![RM reward](rm_reward.png)",
        "![hacking gap](hacking_gap.png) ![RM pair accuracy](rm_pair_accuracy.png)",
        "",
        "## What happened",
        "",
        report["narrative"],
        "",
    ]
    atomic_write_text(out / "report.md", "\n".join(lines))


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def _window_mean(runs: list[dict[str, Any]], key: str, first: bool, n: int = 10) -> float | None:
    """Mean of ``key`` over the first (or last) ``n`` steps that have it, averaged over seeds."""
    vals = []
    for run in runs:
        xs = [m[key] for m in run["metrics"] if isinstance(m.get(key), int | float)]
        if xs:
            vals.append(statistics.fmean(xs[:n] if first else xs[-n:]))
    return _mean(vals)


def dynamics(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float | None]]:
    """First-10 and last-10 step means of the monitor's signals per arm (for the report and README)."""
    keys = {
        "rm_reward": "reward/rm_mean",
        "verified": "reward/rule_accuracy",
        "pair_accuracy": "rm/pair_accuracy",
    }
    return {
        arm: {
            f"{name}_{w}": _window_mean(arm_runs, key, w == "first")
            for name, key in keys.items()
            for w in ("first", "last")
        }
        for arm, arm_runs in runs.items()
    }


# The demo's three effects (issue 19's criteria): static_rm falls this far below its peak or its hacking gap
# reaches this much; cooper's gap after the first 10% of steps stays under this; cooper ends at least this far
# above SFT and no further than this below rule (accuracies as fractions).
HACKED_FALL, HACKED_GAP, CURED_GAP, ABOVE_SFT, BELOW_RULE = 0.10, 0.3, 0.15, 0.05, 0.01


def effects(report: dict[str, Any]) -> dict[str, Any]:
    """Whether a run shows the demo's effects, each with the figures it was judged on (points are
    percentage points of held-out accuracy)."""
    a = report["arms"]
    s, r, c = a["static_rm"], a["rule"], a["cooper"]
    fall = s["peak_accuracy"] - s["final_accuracy"]
    gap = s["max_hacking_gap"] or 0.0
    cooper_gap = report["cooper_gap_after_warmup"]
    above_sft = c["final_accuracy"] - report["sft_accuracy"]
    vs_rule = c["final_accuracy"] - r["final_accuracy"]
    out = {
        "static_rm_hacked": fall >= HACKED_FALL or gap >= HACKED_GAP,
        "static_rm_fall_points": round(100 * fall, 1),
        "static_rm_max_gap": round(gap, 3),
        "cooper_cured": cooper_gap is not None and cooper_gap <= CURED_GAP,
        "cooper_gap_after_warmup": None if cooper_gap is None else round(cooper_gap, 3),
        "cooper_above_sft": above_sft >= ABOVE_SFT - 1e-9,
        "cooper_vs_sft_points": round(100 * above_sft, 1),
        "cooper_near_rule": vs_rule >= -BELOW_RULE - 1e-9,
        "cooper_vs_rule_points": round(100 * vs_rule, 1),
    }
    out["all"] = all(
        out[k] for k in ("static_rm_hacked", "cooper_cured", "cooper_above_sft", "cooper_near_rule")
    )
    return out


def narrative(report: dict[str, Any]) -> str:
    """A paragraph written from this run's numbers (no claim without its figure)."""
    a = report["arms"]
    s, r, c = a["static_rm"], a["rule"], a["cooper"]
    d = report["dynamics"]
    probe = report["rm_probe"]
    base = report["sft_accuracy"]
    judged = effects(report)
    hacked, cured = judged["static_rm_hacked"], judged["cooper_cured"]
    shortcut = probe["pretrained"]["wrong_with_check"] - probe["pretrained"]["wrong"] >= 0.2
    parts = [
        f"Starting from the SFT policy at {base:.3f}, the rule-reward arm ended at {r['final_accuracy']:.3f}, "
        f"static_rm at {s['final_accuracy']:.3f} (peak {s['peak_accuracy']:.3f}) and cooper at "
        f"{c['final_accuracy']:.3f}.",
        f"With the frozen RM, the rollouts' RM reward went from {_fmt(d['static_rm']['rm_reward_first'])} "
        f"(first 10 steps) to {_fmt(d['static_rm']['rm_reward_last'])} (last 10) while their verified accuracy "
        f"went from {_fmt(d['static_rm']['verified_first'])} to {_fmt(d['static_rm']['verified_last'])}; the "
        f"hacking gap reached {_fmt(s['max_hacking_gap'])}: "
        + (
            "the policy found completions the frozen RM scores highly but the verifier rejects — reward hacking."
            if hacked
            else "this run did not show clear reward hacking by the demo's criteria."
        ),
        "The mechanism: in the RM's pre-training data most solutions with a verification step "
        f'("Check: r + c = s.") are correct ({report["annotation"]["checked_correct"]} of '
        f"{report['annotation']['checked_correct'] + report['annotation']['checked_wrong']}: written solutions "
        "check their correct answers), so the RM "
        + ("learned" if shortcut else "could learn")
        + ' the shortcut "a checked solution is right" besides comparing the answer with the reference: it '
        f"scores correct written solutions {_fmt(probe['pretrained']['correct'])}, "
        f"wrong ones {_fmt(probe['pretrained']['wrong'])}, and the same wrong ones with a check step "
        f"{_fmt(probe['pretrained']['wrong_with_check'])}. The SFT policy checks "
        f"{_pct(report['sft_check_share'])} of its answers; with the frozen RM it learned to check "
        f"{_pct(s['final_check_share'])}.",
        f"In cooper the RM kept learning from verified positives and on-policy hard negatives (the wrong rollout "
        f"of the same prompt that it scored highest): its accuracy on each new "
        f"step's pairs, measured before the update, went from {_fmt(d['cooper']['pair_accuracy_first'])} to "
        f"{_fmt(d['cooper']['pair_accuracy_last'])}; its final RM scores a checked wrong solution "
        f"{_fmt(probe['cooper_final']['wrong_with_check'])} (correct {_fmt(probe['cooper_final']['correct'])}), and "
        f"its policy checks {_pct(c['final_check_share'])} of its answers. The hacking gap after the first 10% "
        f"of steps peaked at {_fmt(report['cooper_gap_after_warmup'])} "
        + ("(it stayed honest)." if cured else f"(above the {CURED_GAP} the demo aims for)."),
        f"cooper ended {100 * (c['final_accuracy'] - base):+.1f} points from the SFT start and "
        f"{100 * (c['final_accuracy'] - r['final_accuracy']):+.1f} points from the rule arm.",
    ]
    return " ".join(parts)


README_START, README_END = "<!-- demo-results:start -->", "<!-- demo-results:end -->"


def readme_block(report: dict[str, Any], image_dir: str) -> str:
    """The README's results section, generated from ``report`` (``image_dir``: the plots, relative to it)."""
    a, d = report["arms"], report["dynamics"]
    rows = [
        (
            "RM reward of rollouts, first 10 → last 10 steps",
            "",
            [
                f"{_fmt(d[x]['rm_reward_first'])} → {_fmt(d[x]['rm_reward_last'])}"
                if d[x]["rm_reward_first"] is not None
                else "—"
                for x in P.ARMS
            ],
        ),
        (
            "verified accuracy of rollouts, first 10 → last 10 steps",
            "",
            [f"{_fmt(d[x]['verified_first'])} → {_fmt(d[x]['verified_last'])}" for x in P.ARMS],
        ),
        ("max hacking gap", "", [_fmt(a[x]["max_hacking_gap"]) for x in P.ARMS]),
        (
            "cooper: max hacking gap after the first 10% of steps",
            "",
            ["", "", _fmt(report["cooper_gap_after_warmup"])],
        ),
    ]
    lines = [
        README_START,
        f"From `cooper demo` on {report.get('machine', 'this machine')}: seeds {report['seeds']}, "
        f"{report['seconds']:.0f} s wall, peak RSS {_rss(report)}; held-out accuracy by the "
        f"exact checker ({report['settings']['eval_samples']} samples per problem at T=0.7 on "
        f"{report['heldout_problems']} problems), averaged over seeds. Written by the command; do not edit.",
        "",
        _phases_line(report),
        "",
        *_table(report, rows),
        "",
        f"![held-out accuracy]({image_dir}/heldout_accuracy.png) ![hacking gap]({image_dir}/hacking_gap.png)",
        "",
        report["narrative"],
        README_END,
    ]
    return "\n".join(lines)


def _phases_line(report: dict[str, Any]) -> str:
    """Seconds per phase, e.g. ``Seconds per phase: models and task 3, SFT warm start 64, ...``."""
    phases = report.get("phase_seconds") or {}
    workers = report.get("workers", 1)
    return (
        "Seconds per phase: "
        + ", ".join(f"{name} {sec:.0f}" for name, sec in phases.items())
        + f" ({workers} worker process{'es' if workers != 1 else ''} for the RL arms"
        + (" and the RM backbone beside SFT)." if workers > 1 else ").")
    )


def _rss(report: dict[str, Any]) -> str:
    """The peak resident memory as measured: with worker processes, an upper bound over all of them."""
    mb, workers = report.get("peak_rss_mb"), report.get("workers", 1)
    if mb is None:
        return "—"
    return f"{mb:.0f} MB" if workers == 1 else f"at most {mb:.0f} MB ({workers + 1} processes together)"


def check_readme(readme: Path) -> str:
    """The text of ``readme``, which must hold exactly one results block between the demo markers (checked
    before the demo starts, and again when it writes the block)."""
    if not readme.is_file():
        raise ValueError(f"--readme {str(readme)!r}: no such file")
    text = readme.read_text(encoding="utf-8")
    if text.count(README_START) != 1 or text.count(README_END) != 1:
        raise ValueError(f"--readme {readme}: needs exactly one {README_START} ... {README_END} block")
    return text


def update_readme(readme: Path, report: dict[str, Any], image_dir: str) -> None:
    """Replace the block between the demo markers in ``readme`` (atomically; an error if they are missing)."""
    text = check_readme(readme)
    head, rest = text.split(README_START)
    _, tail = rest.split(README_END)
    atomic_write_text(readme, head + readme_block(report, image_dir) + tail)


def _peak_rss_mb(workers: int = 1) -> float | None:
    """Peak resident memory of the demo's processes (Linux/macOS), in MB: this process's peak plus, with
    worker processes, ``workers`` times the largest finished child's peak (an upper bound: the peaks need not
    coincide)."""
    try:
        import resource  # lazy: Unix only
    except ImportError:  # Windows
        return None
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20  # ru_maxrss: KiB on Linux, bytes on macOS
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    peak = own + workers * children if workers > 1 else max(own, children)
    return round(peak * scale, 1)


def run_demo(
    out: str | Path,
    *,
    quick: bool = False,
    seeds: int = 3,
    first_seed: int = 0,
    readme: str | Path | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Every phase of the demo, then the report. ``workers``: one-thread processes for the independent jobs
    (the RM backbone beside SFT, the RL arms x seeds); default: one per available core (1 for ``quick``); 1
    runs every phase in this process. The numbers do not depend on it (each job is seeded; measured
    identical, docs/demo.md)."""

    t0 = time.perf_counter()
    out = check_output_dir(out, "--out")  # mistakes are reported before minutes of work, not after
    if readme is not None:
        check_readme(Path(readme))
    shutil.rmtree(out / "work", ignore_errors=True)  # every demo run starts from scratch
    out.mkdir(parents=True, exist_ok=True)
    s = P.DemoSettings.quick() if quick else P.DemoSettings()
    seed_list = list(range(first_seed, first_seed + (1 if quick else seeds)))
    jobs = [(arm, seed) for arm in ("cooper", "static_rm", "rule") for seed in seed_list]  # longest first
    cores = workers or (1 if quick else P.available_cores())  # the quick run's 3 short arms: start-up > gain
    n_workers = max(1, min(cores, len(jobs)))
    progress = DemoProgress(
        {
            "models and task": 1,
            "SFT warm start": s.sft_steps,
            "hybrid annotation": 1,
            "RM backbone": s.rm_backbone_steps,
            # rows x 0.9 agreed x 0.85 train split x epochs / batch; the Trainer gives the exact count at its start
            "RM pre-training": max(
                1,
                round(
                    (s.annotate_problems * s.annotate_samples + 2 * s.corpus_problems)
                    * 0.9
                    * 0.85
                    * s.rm_epochs
                    / s.rm_batch_size
                ),
            ),
            "RL arms": len(jobs) * s.rl_steps,
            "report": 1,
        },
        weights=reference_weights(n_workers),
    )
    pool = P.Workers(n_workers)
    try:
        with P.quiet_trainers():  # the progress line is the run's one display
            report = _run_phases(out, s, seed_list, jobs, pool, progress, quick)
    finally:
        pool.close()
    report["phase_seconds"] = progress.finish()
    report["workers"] = pool.workers
    report["peak_rss_mb"] = _peak_rss_mb(pool.workers)
    report["seconds"] = P.elapsed(t0)
    atomic_write_json(out / "report.json", report)
    write_markdown(report, out)
    if readme is not None:
        readme = Path(readme)
        update_readme(readme, report, os.path.relpath(out, readme.resolve().parent))
    return report


def _run_phases(
    out: Path,
    s: P.DemoSettings,
    seed_list: list[int],
    jobs: list[tuple[str, int]],
    pool: P.Workers,
    progress: DemoProgress,
    quick: bool,
) -> dict[str, Any]:
    work = out / "work"
    progress.start("models and task")
    train, held = P.build_task(s)
    tokenizer_dir, policy_dir = P.build_models(train, s, work / "models")
    train_file = write_jsonl(work / "train.jsonl", P.problem_rows(train))
    write_jsonl(work / "heldout.jsonl", P.problem_rows(held))  # for `cooper eval --data`
    # beside SFT in a worker; with one worker, here when its result is asked for, advancing the progress line
    in_process = (progress.advance,) if pool.pool is None else ()
    backbone = pool.submit(P.build_rm, tokenizer_dir, train, s, work / "rm-base", *in_process)

    threads = torch.get_num_threads()
    if pool.pool is not None:  # a worker builds the backbone meanwhile: leave it a core
        torch.set_num_threads(max(1, min(threads, pool.workers - 1)))
    progress.start("SFT warm start")
    sft_dir = P.sft_phase(policy_dir, train, s, work / "sft", callbacks=[step_callback(progress)])
    sft_acc = P.heldout_accuracy(
        AutoModelForCausalLM.from_pretrained(sft_dir),
        AutoTokenizer.from_pretrained(sft_dir),
        held,
        s.max_completion_length,
        s.eval_samples,
    )
    log.info("demo: SFT held-out accuracy %.3f (rule verifier %.3f)", sft_acc["exact"], sft_acc["rule"])
    progress.start("hybrid annotation")
    annotated, ann_stats = P.annotation_phase(sft_dir, train, s, work / "annotation")
    progress.start("RM backbone")
    base_rm = backbone.result()
    torch.set_num_threads(threads)
    progress.start("RM pre-training")
    rm_dir, rm_metrics = P.rm_phase(annotated, base_rm, s, work / "rm", callbacks=[step_callback(progress)])
    checked = [r["label"] for r in read_jsonl(annotated) if P.CHECK_WORD in r["completion"]]
    probe_problems = held[:100]
    rm_probe: dict[str, Any] = {
        "problems": len(probe_problems),
        "pretrained": P.shortcut_probe(rm_dir, probe_problems),
    }
    log.info("demo: RM shortcut probe %s", {k: round(v, 3) for k, v in rm_probe["pretrained"].items()})

    progress.start("RL arms")
    log.info("demo: RL arms %s x seeds %s in %d process(es)", P.ARMS, seed_list, pool.workers)
    futures = {
        (arm, seed): pool.submit(
            P.arm_phase, arm, seed, sft_dir, rm_dir, train_file, held, s, work / f"{arm}-{seed}"
        )
        for arm, seed in jobs
    }
    while pool.pool is not None and not all(f.done() for f in futures.values()):
        time.sleep(1.0)
        progress.set_done(sum(_rows(work / f"{arm}-{seed}" / "metrics.jsonl") for arm, seed in jobs))
    runs: dict[str, list[dict]] = {arm: [] for arm in P.ARMS}
    for seed in seed_list:
        for arm in P.ARMS:
            runs[arm].append(futures[arm, seed].result())  # in this process, in order, with one worker
            progress.set_done(sum(len(r["metrics"]) for rs in runs.values() for r in rs))

    progress.start("report")
    finals = [
        P.shortcut_probe(work / f"cooper-{seed}" / "reward_model", probe_problems) for seed in seed_list
    ]
    rm_probe["cooper_final"] = {k: statistics.fmean(f[k] for f in finals) for k in rm_probe["pretrained"]}
    report: dict[str, Any] = {
        "seconds": 0.0,
        "seeds": seed_list,
        "quick": quick,
        "sft_accuracy": sft_acc["exact"],
        "sft_rule_accuracy": sft_acc["rule"],
        "sft_check_share": sft_acc["check"],
        "rm_probe": rm_probe,
        "rm_pretrain_heldout_accuracy": rm_metrics.get("accuracy"),
        "rm_pretrain_majority": rm_metrics.get("majority_baseline"),
        "heldout_problems": len(held),
        "annotation": {
            k: ann_stats.get(k)
            for k in ("rows_in", "agreements", "kept_positive", "kept_negative", "disagreements")
        }
        | {"checked_correct": sum(checked), "checked_wrong": len(checked) - sum(checked)},
        "arms": {arm: summarise_arm(runs[arm], sft_acc["exact"]) for arm in P.ARMS},
        "cooper_gap_after_warmup": gap_after_warmup(runs["cooper"]),
        "dynamics": dynamics(runs),
        "machine": f"{os.cpu_count()} CPU cores, {platform.system()} {platform.machine()}",
        "settings": P.settings_dict(s),
        "eval_history": {arm: [r["eval"] for r in runs[arm]] for arm in P.ARMS},
    }
    report["narrative"] = narrative(report)
    plot_demo(runs, sft_acc["exact"], out)
    return report


def _rows(path: Path) -> int:
    """Complete lines in ``path`` so far (0 before it exists)."""
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


def run_cli(args: argparse.Namespace) -> int:
    """``cooper demo``: run every phase, then print the arms' summary."""
    report = run_demo(
        args.out,
        quick=args.quick,
        seeds=args.seeds,
        first_seed=args.first_seed,
        readme=args.readme,
        workers=getattr(args, "workers", None),
    )
    table = Table(title=f"cooper demo ({report['seconds']:.0f} s)")
    for col in ("arm", "initial", "final", "peak", "final RM reward", "max hacking gap"):
        table.add_column(col)
    for arm, m in report["arms"].items():
        table.add_row(
            arm,
            f"{m['initial_accuracy']:.3f}",
            f"{m['final_accuracy']:.3f}",
            f"{m['peak_accuracy']:.3f}",
            _fmt(m["final_rm_reward"]),
            _fmt(m["max_hacking_gap"]),
        )
    Console().print(table)
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0
