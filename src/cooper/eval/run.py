"""``cooper eval``: policy evaluation with the paper's protocol.

Protocol (Cooper, arXiv 2508.05613, as in Qwen2.5-Math's evaluation): ``n = 8`` samples per problem at
temperature 0.7, top-p 0.95; the headline number is the **average accuracy over all samples**. From the
same samples we also report pass@1 and pass@n (unbiased estimator) and majority-vote accuracy (the most
frequent final answer, answers grouped when the rule verifier says they are equal).

Benchmarks are looked up in :data:`cooper.data.benchmarks.BENCHMARKS` at call time, so registering a loader there
adds a benchmark; any jsonl/parquet file can be evaluated with a column mapping (``data_files`` /
``--data FILE --columns their=ours``). Outputs in ``out_dir``: ``results.md`` (the paper's table),
``results.json`` (metrics, protocol, prompt, model, engine) and ``samples.jsonl`` (one row per sample,
append-only, so ``resume=True`` skips finished samples and recomputes the metrics over all of them).
Generation lives in :mod:`cooper.eval.engines`, scoring and metrics in :mod:`cooper.eval.metrics`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cooper._version import __version__
from cooper.data.benchmarks import BENCHMARKS, load_benchmark
from cooper.data.prompts import DEFAULT_INSTRUCTION
from cooper.data.rows import DataError, check_rows, load_rows, parse_columns
from cooper.eval.constants import DEFAULT_MAX_NEW_TOKENS, PAPER_BENCHMARKS
from cooper.eval.engines import (
    Engine,
    PromptTemplate,
    SamplingSettings,
    default_max_new_tokens,
    encode_prompts,
    generate_samples,
    load_engine,
    sample_id,
)
from cooper.eval.metrics import (
    METRIC,
    benchmark_metrics,
    score_samples,
)
from cooper.utils.errors import BadInput
from cooper.utils.io import JsonlAppender, atomic_write_json, atomic_write_text, check_output_dir, read_jsonl
from cooper.utils.models import check_model_dir
from cooper.verify.registry import check_verifier, row_fields

logger = logging.getLogger(__name__)

Row = dict[str, Any]
# Settings that must match for --resume to reuse samples (n may grow; new samples are added).
RESUME_KEYS = ("model", "temperature", "top_p", "max_new_tokens", "prompt", "verifier")
# The protocol's verifier before it was a choice (always the math verifier)
_OLD_VERIFIER = "cooper.verify.is_correct_batch"
SUMMARY_KEYS = ("mean_accuracy", "pass@1", "pass@n", "majority_vote_accuracy")
# What each problem needs (cooper.data.rows.check_rows); ids may be numbers, they are used as str(id)
ROW_FIELDS = {"id": "any", "question": "text", "reference": "text"}
# A problem's columns that are not row fields for the verifier (the reference is passed as such)
_NOT_FIELDS = ("id", "question", "reference", "solution")


class EvalError(BadInput, ValueError):
    """Bad evaluation input (benchmark name, data, output directory); the message says what to fix."""


# ----------------------------------------------------------------------------------------------- data


def load_suites(
    benchmarks: Sequence[str] | Mapping[str, Sequence[Row]] | None,
    *,
    data_files: Sequence[str | Path] = (),
    columns: Mapping[str, str] | None = None,
    limit: int | None = None,
    data_dir: str | Path | None = None,
) -> dict[str, list[Row]]:
    """``{benchmark name: rows}``: registry names, given rows (a mapping), and data files (named by stem).

    ``None`` means the paper's five benchmarks unless ``data_files`` are given. Unknown names raise
    :class:`EvalError` listing the valid ones before anything is loaded.
    """
    if benchmarks is None:
        benchmarks = () if data_files else PAPER_BENCHMARKS
    if isinstance(benchmarks, Mapping):
        given = {name: list(rows)[:limit] if limit else list(rows) for name, rows in benchmarks.items()}
    else:
        unknown = [b for b in benchmarks if b not in BENCHMARKS]
        if unknown:
            raise EvalError(
                f"unknown benchmark(s) {', '.join(unknown)}; valid names: {', '.join(BENCHMARKS)}"
            )
        given = {}
    suites: dict[str, list[Row]] = {}
    try:
        for name in benchmarks:
            suites[name] = (
                given[name] if name in given else load_benchmark(name, data_dir=data_dir, limit=limit)
            )
        for path in data_files:
            name = Path(path).stem
            if name in suites:
                raise EvalError(f"data file {path}: its name {name!r} is already used by another benchmark")
            rows = load_rows(path, columns=dict(columns or {}))
            suites[name] = rows[:limit] if limit else rows
        for name, rows in suites.items():
            if not rows:
                raise EvalError(f"benchmark {name!r} has no rows")
            check_rows(rows, ROW_FIELDS, where=f"benchmark {name!r} ")
    except DataError as e:
        raise EvalError(str(e)) from e
    if not suites:
        raise EvalError("nothing to evaluate: give benchmark names or data files")
    return suites


# ------------------------------------------------------------------------------------------- results


def render_table(name: str, results: Mapping[str, Mapping[str, Any]]) -> str:
    """The paper's table (one row per model, columns = benchmarks + Average, cells = accuracy %) and a
    second table with pass@1 / pass@n / majority vote per benchmark."""
    names = list(results)
    accs = [100 * results[b]["mean_accuracy"] for b in names]
    avg = sum(accs) / len(accs)
    lines = [
        "| Model | " + " | ".join(names) + " | Average |",
        "|---|" + "---:|" * (len(names) + 1),
        f"| {name} | " + " | ".join(f"{a:.1f}" for a in accs) + f" | {avg:.1f} |",
        "",
        "| Benchmark | problems | samples | accuracy | pass@1 | pass@n | maj@n | truncated prompts |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in names:
        r = results[b]
        lines.append(
            f"| {b} | {r['n_problems']} | {r['n_samples']} | {100 * r['mean_accuracy']:.1f} | "
            f"{100 * r['pass@1']:.1f} | {100 * r['pass@n']:.1f} (n={r['n']}) | "
            f"{100 * r['majority_vote_accuracy']:.1f} | {r.get('truncated_prompts', 0)} |"
        )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- pipeline


def _check_resume(previous: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """Refuse to mix samples made under different settings into one set of metrics."""

    def settings(r: Mapping[str, Any]) -> dict[str, Any]:
        prompt = {k: r.get("prompt", {}).get(k) for k in ("instruction", "system", "user_template")}
        protocol = dict(r.get("protocol", {}))
        if protocol.get("verifier", _OLD_VERIFIER) == _OLD_VERIFIER:  # made before the verifier was a choice
            protocol["verifier"] = "math"
        return {"model": r.get("model"), **protocol, "prompt": prompt}

    old, new = settings(previous), settings(current)
    for key in RESUME_KEYS:
        a, b = old.get(key), new.get(key)
        if a != b:
            raise EvalError(
                f"--resume: {key} differs from the run in this output directory ({a!r} there, {b!r} now); "
                "use another --out, or run without --resume to start over"
            )


def _run_benchmark(
    bench: str,
    rows: list[Row],
    engine: Engine,
    settings: SamplingSettings,
    template: PromptTemplate,
    max_prompt_tokens: int | None,
    previous: Mapping[str, Row],
    sink: Callable[[Row], None],
    timeout_s: float,
    verifier: str = "math",
) -> dict[str, Any]:
    """Generate the missing samples of one benchmark, score and store them; metrics over all samples."""
    start = time.perf_counter()
    # each problem's row fields for the verifier (answer_type, is_multiple_answer, ... where the rows have them)
    columns = row_fields(verifier, rows, exclude=_NOT_FIELDS)
    fields_of = {str(r["id"]): {k: v[i] for k, v in columns.items()} for i, r in enumerate(rows)}
    prompts = encode_prompts(engine.tokenizer, [r["question"] for r in rows], template, max_prompt_tokens)
    n_truncated = sum(p.truncated for p in prompts)
    if n_truncated:
        why = f"longer than {max_prompt_tokens} tokens (context minus max_new_tokens)"
        logger.warning("%s: %d/%d prompts %s were cut from the left", bench, n_truncated, len(prompts), why)
    samples: list[Row] = []
    todo: list[tuple[int, int]] = []
    for i, row in enumerate(rows):
        for k in range(settings.n):
            if (done := previous.get(sample_id(bench, str(row["id"]), k))) is not None:
                samples.append(done)
            else:
                todo.append((i, k))
    if samples:
        logger.info(
            "%s: %d samples reused from samples.jsonl, %d to generate", bench, len(samples), len(todo)
        )
    new_tokens, gen_seconds, last_log = 0, 0.0, time.perf_counter()
    stream = generate_samples(bench, rows, prompts, todo, engine, settings)
    while True:
        tick = time.perf_counter()
        batch = next(stream, None)
        gen_seconds += time.perf_counter() - tick
        if batch is None:
            break
        new_tokens += sum(s["completion_tokens"] for s in batch)
        fields = [fields_of[s["problem_id"]] for s in batch]
        for sample in score_samples(batch, timeout_s=timeout_s, verifier=verifier, fields=fields):
            sink(sample)
            samples.append(sample)
        if time.perf_counter() - last_log > 15:
            last_log, rate = time.perf_counter(), new_tokens / gen_seconds
            logger.info("%s: %d/%d samples, %.0f tokens/s", bench, len(samples), len(rows) * settings.n, rate)
    metrics = benchmark_metrics(samples, timeout_s=timeout_s, verifier=verifier)
    metrics.update(
        truncated_prompts=n_truncated,
        samples_generated=len(todo),
        tokens_generated_this_run=new_tokens,
        generation_seconds=gen_seconds,
        tokens_per_s=new_tokens / gen_seconds if todo and gen_seconds > 0 else None,
        seconds=time.perf_counter() - start,
    )
    shown = ", ".join(f"{k} {100 * metrics[k]:.1f}%" for k in SUMMARY_KEYS)
    logger.info("%s: %s (%d problems x %d samples)", bench, shown, metrics["n_problems"], metrics["n"])
    return metrics


def evaluate(
    model_path: str | Path,
    benchmarks: Sequence[str] | Mapping[str, Sequence[Row]] | None = None,
    *,
    n: int = 8,
    temperature: float = 0.7,
    top_p: float = 0.95,
    max_new_tokens: int | None = None,
    seed: int = 0,
    limit: int | None = None,
    batch_size: int | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    instruction: str = DEFAULT_INSTRUCTION,
    system_prompt: str | None = None,
    engine: str | Engine = "auto",
    data_files: Sequence[str | Path] = (),
    columns: Mapping[str, str] | None = None,
    trust_remote_code: bool = False,
    device: str = "auto",
    dtype: str = "auto",
    name: str | None = None,
    data_dir: str | Path | None = None,
    verify_timeout_s: float = 5.0,
    verifier: str = "math",
) -> dict[str, Any]:
    """Evaluate the policy in ``model_path`` and return the results dict (also written to ``out_dir``).

    ``benchmarks``: names in :data:`cooper.data.benchmarks.BENCHMARKS`, or ``{name: rows}`` with rows holding ``id``,
    ``question`` and ``reference`` (``None``: the paper's five, or only ``data_files`` when given).
    ``engine``: ``"auto" | "transformers" | "vllm"`` or an already loaded engine (see
    :mod:`cooper.eval.engines`). ``limit`` takes the first rows of each benchmark. With ``out_dir`` and
    ``resume``, samples already in ``samples.jsonl`` are reused. ``max_new_tokens=None``: 2048, capped at
    half the model's context (:func:`~cooper.eval.engines.default_max_new_tokens`); the value used is logged
    and recorded in the protocol. ``verifier``: the rule verifier that scores the samples (``math``,
    ``choice``, ``string`` or a user's ``module:function``), given each problem's other columns
    (``answer_type``, ``is_multiple_answer``, ...) as row fields; recorded in the protocol, and a resume with
    another one is refused. Bad input raises :class:`EvalError`,
    :class:`~cooper.verify.VerifierError` or :class:`~cooper.utils.models.ModelLoadError` before any
    generation (an unusable ``out_dir`` or verifier before the model is loaded).
    """
    verifier = check_verifier(verifier)
    try:
        given = DEFAULT_MAX_NEW_TOKENS if max_new_tokens is None else max_new_tokens
        settings = SamplingSettings(n, temperature, top_p, given, seed)
        out = check_output_dir(out_dir, "--out") if out_dir is not None else None
    except ValueError as e:
        raise EvalError(str(e)) from e
    if limit is not None and limit < 1:
        raise EvalError(f"limit must be >= 1, got {limit}")
    if batch_size is not None and batch_size < 1:
        raise EvalError(f"batch_size must be >= 1, got {batch_size}")
    suites = load_suites(benchmarks, data_files=data_files, columns=columns, limit=limit, data_dir=data_dir)
    model_dir = check_model_dir(model_path)
    if isinstance(engine, str):
        engine = load_engine(
            model_dir,
            engine=engine,
            device=device,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            batch_size=batch_size,
            seed=seed,
        )
    if max_new_tokens is None:
        max_new_tokens = default_max_new_tokens(engine.max_context)
        settings = dataclasses.replace(settings, max_new_tokens=max_new_tokens)
        logger.info(
            "max_new_tokens %d (default: %d, capped at half the model's context of %s tokens)",
            max_new_tokens,
            DEFAULT_MAX_NEW_TOKENS,
            engine.max_context,
        )
    max_prompt = None if engine.max_context is None else engine.max_context - max_new_tokens
    if max_prompt is not None and max_prompt < 1:
        raise EvalError(
            f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the model's context of "
            f"{engine.max_context} tokens"
        )
    if settings.greedy and n > 1:
        logger.warning("temperature 0 is greedy decoding: the %d samples of a problem will be identical", n)
    template = PromptTemplate(instruction, system_prompt)
    results: dict[str, Any] = {
        "name": name or model_dir.resolve().name,
        "model": str(model_dir.resolve()),
        "engine": engine.name,
        "device": engine.device,
        "dtype": engine.dtype,
        "seed": seed,
        "protocol": dict(n=n, temperature=temperature, top_p=top_p, top_k=None, max_new_tokens=max_new_tokens)
        | dict(max_prompt_tokens=max_prompt, verifier=verifier, metric=METRIC),
        "prompt": template.describe(engine.tokenizer),
        "benchmarks": {},
        "average": {},
        "status": "running",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "cooper_version": __version__,
    }
    previous: dict[str, Row] = {}
    appender = None
    if out is not None:
        if resume and (out / "results.json").is_file():
            try:
                before = json.loads((out / "results.json").read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise EvalError(f"--resume: cannot read {out / 'results.json'}: {e}") from e
            _check_resume(before, results)
        elif not resume and (out / "samples.jsonl").is_file():
            logger.warning("%s exists and --resume is off: starting over", out / "samples.jsonl")
        appender = JsonlAppender(out / "samples.jsonl", resume=resume)
        if resume:
            previous = {r["id"]: r for r in read_jsonl(appender.path)}
        atomic_write_json(out / "results.json", results)
    sink = appender.write if appender is not None else (lambda row: None)
    try:
        for bench, rows in suites.items():
            results["benchmarks"][bench] = _run_benchmark(
                bench,
                rows,
                engine,
                settings,
                template,
                max_prompt,
                previous,
                sink,
                verify_timeout_s,
                verifier=verifier,
            )
            if out is not None:
                atomic_write_json(out / "results.json", results)
    finally:
        if appender is not None:
            appender.close()
    per_bench = results["benchmarks"].values()
    for key in SUMMARY_KEYS:
        results["average"][key] = sum(r[key] for r in per_bench) / len(per_bench)
    results["status"] = "complete"
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["table"] = render_table(results["name"], results["benchmarks"])
    if out is not None:
        atomic_write_json(out / "results.json", results)
        atomic_write_text(out / "results.md", results["table"])
        logger.info("wrote %s, %s and %s", out / "results.md", out / "results.json", out / "samples.jsonl")
    return results


# ------------------------------------------------------------------------------------------------ CLI


def _parse_columns(items: Sequence[str] | None) -> dict[str, str]:
    """``--columns a=b,c=d e=f`` (pairs separated by commas and/or spaces) -> ``{a: b, c: d, e: f}``."""
    try:
        return parse_columns([p for item in items or () for p in item.split(",") if p], flag="--columns")
    except ValueError as e:
        raise EvalError(str(e)) from e


def run_cli(args: argparse.Namespace) -> int:
    """``cooper eval``: print the table (bad input raises; :func:`cooper.cli.main` exits 2)."""
    same_names = ("n", "temperature", "top_p", "max_new_tokens", "seed", "limit", "batch_size", "resume")
    same_names += ("instruction", "engine", "trust_remote_code", "device", "dtype", "name", "verifier")
    kwargs = {key: getattr(args, key) for key in same_names}
    benchmarks = [b.strip() for b in args.benchmarks.split(",") if b.strip()] if args.benchmarks else None
    results = evaluate(
        args.model,
        benchmarks,
        out_dir=args.out,
        system_prompt=args.system,
        data_files=args.data,
        columns=_parse_columns(args.columns),
        **kwargs,
    )
    print(results["table"], end="")
    return 0
