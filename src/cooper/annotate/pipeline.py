"""Hybrid annotation (``cooper annotate``): label completions with the rule verifier *and* an LLM judge.

The paper builds VerifyRM's training data this way: each completion is judged by the rule verifier
(:mod:`cooper.verify`) and by a reference-based LLM judge; rows where both agree are kept with that label,
disagreements are set aside for inspection, and a judge answer that is not exactly
``Final verdict: Yes`` / ``Final verdict: No`` on its last line is an abstention, never a label.

Files written to the output directory (all append-only and keyed by row id, so a rerun resumes):

* ``annotated.jsonl`` — ``{id, question, reference, completion, label (0/1), source}`` (for ``train-rm``);
  with ``--format parquet`` also ``annotated.parquet``, written atomically at the end;
* ``disagreements.jsonl`` — the row plus ``verifier`` and ``judge`` verdicts;
* ``judged.jsonl`` — one line per judged id with its outcome (``agree`` / ``disagree`` / ``abstain``), so
  abstentions are not asked again unless ``retry_abstentions``; endpoint failures are not logged (a rerun
  retries them);
* ``generated.jsonl`` — completions sampled with ``--generator`` (ids ``{row_id}-s{k}``), reused on resume;
* ``stats.json`` — written atomically (see :func:`annotate` for the keys);
* ``run.json`` — what made these results (:func:`run_record`: input paths and sha256, column renames, judge
  model, verifier, generator settings), written first; ``cooper annotate`` refuses to resume from another
  input or with another verifier.

The rule verifier is ``math`` unless ``verifier`` names another (``choice``, ``string``, a user's
``module:function``); it gets each row's other columns (``answer_type``, ``is_multiple_answer``, ...) as row
fields.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cooper.annotate.judge import (
    JudgeUnavailable,
    Verdict,
    as_judge,
)
from cooper.annotate.stats import abstention_warning, print_stats, summarise
from cooper.data.rows import check_rows, load_rows, parse_columns
from cooper.eval.engines import PromptTemplate, SamplingSettings, encode_prompts, load_engine
from cooper.utils.endpoints import ChatClient, endpoint_config_from_args, run_sync
from cooper.utils.io import JsonlAppender, atomic_path, atomic_write_json, check_output_dir, read_jsonl
from cooper.utils.models import check_model_dir
from cooper.verify.pool import is_correct_batch
from cooper.verify.registry import check_verifier, row_fields

logger = logging.getLogger(__name__)

Row = dict[str, Any]


# --- input ---------------------------------------------------------------------------------------------


def load_input_rows(
    paths: Sequence[str | os.PathLike[str]],
    *,
    columns: dict[str, str] | None = None,
    need_completion: bool = True,
    skip_invalid: bool = False,
) -> tuple[list[Row], int]:
    """Rows ``{id, question, reference, [completion], source, ...}`` from jsonl / json / parquet files.

    :func:`cooper.data.rows.load_rows` with ids that must be non-empty and unique across the files (``columns``
    renames theirs -> ours; numbers allowed for ``id`` / ``reference``; a missing ``id`` is
    ``{file stem}-{index}``; ``source`` defaults to the file stem). A bad row (missing, empty or non-text
    field, duplicate id) raises :class:`DataError` naming file, line and field, or with ``skip_invalid``
    is skipped and counted. Unreadable, empty or non-JSON files always raise. Returns ``(rows, n_skipped)``.
    """
    required = ("question", "reference", "completion") if need_completion else ("question", "reference")
    skipped: list[str] = []
    rows = load_rows(
        paths,
        columns=columns,
        required=required,
        converters={"source": _source_or_none},
        unique_ids=True,
        skip_invalid=skip_invalid,
        skipped=skipped,
    )
    return rows, len(skipped)


def _source_or_none(value: Any) -> Any:
    """A blank or non-text ``source`` is dropped, so that the file stem stands in for it."""
    return value if isinstance(value, str) and value.strip() else None


# What annotate() needs of each row it is given directly (cooper.data.rows.check_rows)
ROW_FIELDS = {"id": "nonempty", "question": "nonempty", "reference": "nonempty", "completion": "text"}


# --- generation ----------------------------------------------------------------------------------------


def generate_completions(
    rows: Sequence[Row],
    model_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    samples: int = 4,
    temperature: float = 0.7,
    top_p: float = 0.95,
    max_new_tokens: int = 512,
    seed: int = 0,
    batch_size: int | None = None,
    trust_remote_code: bool = False,
) -> list[Row]:
    """Sample ``samples`` completions per row from a local causal LM with :mod:`cooper.eval.engines`.

    Prompts are the question plus the usual "reason step by step ... \\boxed{}" instruction in the model's
    chat template; batches are left-padded, each seeded from ``seed`` and its sample ids. Completions are
    appended to ``out_path`` as ``{id: "{row_id}-s{k}", row_id, sample, question, reference, completion,
    source, finish_reason}``; ids already there are not generated again (resume). Returns the rows with
    completions, in input order. Raises :class:`cooper.utils.models.ModelLoadError` for a bad model dir
    (before ``out_path`` is created).
    """
    settings = SamplingSettings(
        n=samples, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed
    )
    out_path = Path(out_path)
    done: set[str] = set()
    if out_path.exists():
        with JsonlAppender(out_path) as previous:  # also drops a torn last line
            done = previous.done
    todo = [(r, k) for r in rows for k in range(samples) if f"{r['id']}-s{k}" not in done]
    if todo:
        start = time.perf_counter()
        engine = load_engine(
            model_dir, engine="transformers", trust_remote_code=trust_remote_code, batch_size=batch_size
        )
        budget = engine.max_context - max_new_tokens if engine.max_context else None
        questions = list({r["id"]: r["question"] for r, _ in todo}.items())
        encoded = encode_prompts(engine.tokenizer, [q for _, q in questions], PromptTemplate(), budget)
        prompt_of = {row_id: e.ids for (row_id, _), e in zip(questions, encoded, strict=True)}
        keys = [f"{r['id']}-s{k}" for r, k in todo]
        prompts = [prompt_of[r["id"]] for r, _ in todo]
        with JsonlAppender(out_path) as store:
            for positions, completions in engine.generate(prompts, keys, settings):
                for pos, completion in zip(positions, completions, strict=True):
                    row, k = todo[pos]
                    fields = {k_: row[k_] for k_ in ("question", "reference")}
                    store.write(
                        {"id": keys[pos], "row_id": row["id"], "sample": k, **fields}
                        | {"completion": completion.text, "source": row.get("source", "unknown")}
                        | {"finish_reason": completion.finish_reason}
                    )
        logger.info("generated %d completions in %.1f s", len(todo), time.perf_counter() - start)
    else:
        logger.info("all %d x %d completions already in %s", len(rows), samples, out_path)
    saved = {r["id"]: r for r in read_jsonl(out_path)}
    return [saved[f"{r['id']}-s{k}"] for r in rows for k in range(samples)]


# --- annotation ----------------------------------------------------------------------------------------


def annotate(
    rows: Sequence[Row],
    judge: Any,
    out_dir: str | os.PathLike[str],
    *,
    concurrency: int | None = None,
    retry_abstentions: bool = False,
    verifier_timeout_s: float = 5.0,
    output_format: str = "jsonl",
    extra_stats: dict[str, Any] | None = None,
    verifier: str = "math",
) -> dict[str, Any]:
    """Judge each ``{id, question, reference, completion[, source]}`` row twice and keep the agreements.

    ``judge``: a :class:`ChatClient`, an object with ``judge(q, ref, completion)``, or a callable; sync or
    async; ``True`` / ``False`` / ``None`` (abstain). Rows already in ``judged.jsonl`` (or the outputs) are
    skipped. ``concurrency`` bounds judge calls in flight (default: the client's ``max_concurrency``, or 8).

    Returns (and writes to ``stats.json``) the counts over all given rows, this run and earlier ones:
    ``rows_in, judged, agreements, disagreements, abstentions, agreement_rate`` (agreements / (agreements +
    disagreements)), ``kept_positive, kept_negative, verifier_correct, judge_failures`` (this run: rows
    left unjudged by endpoint errors), ``judged_this_run, skipped_already_judged, per_source``,
    ``endpoint`` (the client's stats), ``verifier`` and ``elapsed_s``, plus ``extra_stats``. ``verifier``
    names the rule verifier (checked before any row is judged: a VerifierError if unusable).
    """
    if output_format not in ("jsonl", "parquet"):
        raise ValueError(f"output_format must be 'jsonl' or 'parquet', got {output_format!r}")
    verifier = check_verifier(verifier)
    start = time.perf_counter()
    rows = check_rows(rows, ROW_FIELDS)
    judge_fn = as_judge(judge)
    client = judge if isinstance(judge, ChatClient) else getattr(judge, "client", None)
    client = client if isinstance(client, ChatClient) else None
    limit = concurrency or (client.config.max_concurrency if client else 8)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "judged.jsonl"
    with (
        JsonlAppender(out / "annotated.jsonl") as kept,
        JsonlAppender(out / "disagreements.jsonl") as disagreements,
        JsonlAppender(log_path) as judged_log,
    ):
        outcomes = _recover_outcomes(log_path, judged_log, kept, disagreements)
        retry = {i for i, o in outcomes.items() if o["outcome"] == "abstain"} if retry_abstentions else set()
        pending = [r for r in rows if r["id"] not in outcomes or r["id"] in retry]
        logger.info("%d rows to judge (%d already judged)", len(pending), len(rows) - len(pending))
        verdicts = _verify(pending, verifier_timeout_s, verifier)
        failures: Counter[str] = Counter()

        def record(row: Row, correct: bool, verdict: Verdict, raw: str | None) -> None:
            base = {k: row[k] for k in ("id", "question", "reference", "completion")}
            base["source"] = row.get("source", "unknown")
            entry: Row = {"id": row["id"], "source": base["source"], "verifier": correct, "judge": verdict}
            if verdict is None:
                entry["outcome"] = "abstain"
                entry["judge_reply"] = raw[-500:] if raw else raw
            elif verdict == correct:
                entry["outcome"] = "agree"
                if row["id"] not in kept.done:
                    kept.write({**base, "label": int(correct)})
            else:
                entry["outcome"] = "disagree"
                if row["id"] not in disagreements.done:
                    disagreements.write({**base, "verifier": correct, "judge": verdict})
            judged_log.write(entry)  # last, so that a crash before it only means judging the row again
            outcomes[row["id"]] = entry

        async def work() -> None:
            queue: asyncio.Queue[tuple[Row, bool]] = asyncio.Queue()
            for item in zip(pending, verdicts, strict=True):
                queue.put_nowait(item)

            async def worker() -> None:
                while not queue.empty():
                    row, correct = queue.get_nowait()
                    try:
                        verdict, raw = await judge_fn(row["question"], row["reference"], row["completion"])
                    except JudgeUnavailable:
                        failures[row.get("source", "unknown")] += 1
                        continue
                    record(row, correct, verdict, raw)

            try:
                await asyncio.gather(*(worker() for _ in range(max(1, min(limit, len(pending))))))
            finally:
                if client is not None:
                    await client.aclose()

        if pending:
            run_sync(work)
    stats = summarise(rows, outcomes, failures, len(pending))
    stats["endpoint"] = dict(client.stats) if client else None
    stats["verifier"] = verifier
    stats["elapsed_s"] = round(time.perf_counter() - start, 3)
    stats.update(extra_stats or {})
    if output_format == "parquet":
        _write_parquet(out / "annotated.jsonl", out / "annotated.parquet")
    atomic_write_json(out / "stats.json", stats)
    return stats


def _recover_outcomes(
    log_path: Path, judged_log: JsonlAppender, kept: JsonlAppender, disagreements: JsonlAppender
) -> dict[str, Row]:
    """Outcomes by id from ``judged.jsonl`` (last line wins), completed from the outputs for ids whose
    log line was lost in a crash (the row was written, its log line not)."""
    outcomes = {str(e["id"]): e for e in read_jsonl(log_path)} if log_path.exists() else {}
    for appender, outcome in ((kept, "agree"), (disagreements, "disagree")):
        missing = appender.done - outcomes.keys()
        for row in read_jsonl(appender.path) if missing else []:
            if row["id"] in missing:
                correct = bool(row["label"]) if outcome == "agree" else row["verifier"]
                verdict = correct if outcome == "agree" else row["judge"]
                source = row.get("source", "unknown")
                entry = dict(id=row["id"], source=source, verifier=correct, judge=verdict, outcome=outcome)
                judged_log.write(entry)
                outcomes[row["id"]] = entry
    return outcomes


# The columns the verifier is given as responses and references, or that are no row's property
_NOT_FIELDS = ("id", "question", "reference", "completion")


def _verify(rows: list[Row], timeout_s: float, verifier: str = "math") -> list[bool]:
    if not rows:
        return []
    start = time.perf_counter()
    verdicts = is_correct_batch(
        [r["completion"] for r in rows],
        [r["reference"] for r in rows],
        timeout_s=timeout_s,
        verifier=verifier,
        **row_fields(verifier, rows, exclude=_NOT_FIELDS),
    )
    logger.info(
        "rule verifier: %d/%d correct in %.2f s", sum(verdicts), len(rows), time.perf_counter() - start
    )
    return verdicts


def _write_parquet(jsonl_path: Path, parquet_path: Path) -> None:
    """``annotated.jsonl`` -> ``annotated.parquet`` via a temporary file and a rename (never half-written)."""
    rows = read_jsonl(jsonl_path) if jsonl_path.exists() else []
    schema = pa.schema(
        [(k, pa.string()) for k in ("id", "question", "reference", "completion")]
        + [("label", pa.int64()), ("source", pa.string())]
    )
    table = pa.Table.from_pylist([{f: r.get(f) for f in schema.names} for r in rows], schema=schema)
    with atomic_path(parquet_path) as tmp:
        pq.write_table(table, tmp)
    logger.info("wrote %d rows to %s", len(rows), parquet_path)


# --- command line --------------------------------------------------------------------------------------


RUN_RECORD = "run.json"
_RESULT_FILES = ("generated.jsonl", "judged.jsonl", "annotated.jsonl", "disagreements.jsonl")


def run_record(
    data: Sequence[str | os.PathLike[str]],
    *,
    columns: dict[str, str],
    judge_model: str,
    generator: dict[str, Any] | None = None,
    verifier: str = "math",
) -> dict[str, Any]:
    """What makes an annotation run's results (saved as ``OUT/run.json``): the input files (resolved path
    and sha256 of the content), the column renames, the judge model, the rule verifier and the generator
    settings."""
    files = [{"path": str(Path(f).resolve()), "sha256": _sha256(Path(f))} for f in data]
    return {
        "data": files,
        "columns": columns,
        "judge_model": judge_model,
        "verifier": verifier,
        "generator": generator,
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_run_record(out: Path, record: dict[str, Any]) -> None:
    """ValueError when ``out`` holds results of a run with another input or settings (a rerun would mix
    two datasets: row ids come from file names and line numbers). A run that left no results, or an
    identical input under another folder (same file names and content), is fine. Writes nothing."""
    results = [n for n in _RESULT_FILES if (out / n).is_file() and (out / n).stat().st_size > 0]
    path = out / RUN_RECORD
    where = f"--out {str(out)!r}"
    if not results:
        return
    if not path.exists():
        logger.warning(
            "%s holds results but no %s (made by an older cooper): cannot check that they come from the "
            "same input; resuming, and recording this run's input",
            where,
            RUN_RECORD,
        )
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        differences = _differences(old, record)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        raise ValueError(
            f"{where}: cannot read {str(path)!r} ({type(e).__name__}), which says what input made the results "
            f"there; use a new --out, or delete {str(out)!r} to start over"
        ) from None
    if differences:
        raise ValueError(
            f"{where} holds the results of another run ({'; '.join(differences)}); resuming would mix the "
            f"two: use a new --out for this run, or delete {str(out)!r} to start over"
        )


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two run records, each as 'it was made from X, this run Y'."""

    def files(record: dict[str, Any]) -> list[tuple[str, str]]:
        return sorted((Path(f["path"]).name, f["sha256"]) for f in record["data"])

    def named(record: dict[str, Any]) -> str:
        return ", ".join(f"{f['path']!r} (sha256 {f['sha256'][:12]})" for f in record["data"])

    out = []
    if files(old) != files(new):  # the same files elsewhere are the same rows (ids come from file names)
        out.append(f"it was made from {named(old)}, this run reads {named(new)}")
    old = {"verifier": "math", **old}  # a record made before the verifier was a choice: the default
    for key, what in (
        ("columns", "column renames"),
        ("judge_model", "judge model"),
        ("verifier", "verifier"),
        ("generator", "generator"),
    ):
        if old.get(key) != new.get(key):
            out.append(f"it was made with {what} {old.get(key)!r}, this run with {new.get(key)!r}")
    return out


def _generator_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The checked ``--generator`` settings (ModelDirError / ValueError naming the flag), loading nothing."""
    model = check_model_dir(args.generator, "--generator model")
    try:
        SamplingSettings(args.samples, args.temperature, args.top_p, args.max_new_tokens, args.seed)
    except ValueError as e:
        raise ValueError(f"--samples / --temperature / --top-p / --max-new-tokens: {e}") from None
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    settings = {k: getattr(args, k) for k in ("samples", "temperature", "top_p", "max_new_tokens", "seed")}
    return {"model": str(model.resolve()), **settings}


def run_cli(args: argparse.Namespace) -> int:
    """``cooper annotate``. Exit 0 when done; 3 when rows are left unjudged: endpoint failures (rerun to
    retry them) or a judge that gave no verdict at all (fix the judge, rerun with ``--retry-abstentions``).
    Bad input, an unusable endpoint or an ``--out`` holding another run's results raise (all checked before
    anything is written or asked): :func:`cooper.cli.main` exits 2."""
    verifier = check_verifier(args.verifier)  # before any file is read or endpoint asked
    out = check_output_dir(args.out, "--out")
    columns = parse_columns(args.column)
    rows, skipped = load_input_rows(
        args.data, columns=columns, need_completion=args.generator is None, skip_invalid=args.skip_invalid
    )
    config = endpoint_config_from_args(args, "judge")
    generator = _generator_settings(args) if args.generator is not None else None
    record = run_record(
        args.data, columns=columns, judge_model=config.model, generator=generator, verifier=verifier
    )
    check_run_record(out, record)
    client = ChatClient(config)
    client.preflight()
    atomic_write_json(out / RUN_RECORD, record)  # the first write: every check has passed
    extra: dict[str, Any] = {
        "invalid_rows_skipped": skipped,
        "input_rows": len(rows),
        "judge": config.describe(),
    }
    if args.generator is not None:
        rows = generate_completions(
            rows,
            args.generator,
            out / "generated.jsonl",
            samples=args.samples,
            batch_size=args.batch_size,
            temperature=args.temperature,
            top_p=args.top_p,
            max_new_tokens=args.max_new_tokens,
            seed=args.seed,
            trust_remote_code=args.trust_remote_code,
        )
        extra["generator"] = {"model": str(args.generator), "samples": args.samples, "completions": len(rows)}
    stats = annotate(
        rows,
        client,
        out,
        retry_abstentions=args.retry_abstentions,
        verifier_timeout_s=args.verifier_timeout,
        output_format=args.format,
        extra_stats=extra,
        verifier=verifier,
    )
    print_stats(stats)
    code = 0
    if stats["judge_failures"]:
        logger.warning(
            "%d rows were not judged (endpoint failures); rerun to retry them", stats["judge_failures"]
        )
        code = 3
    warning = abstention_warning(stats, str(out))
    if warning:
        logger.warning("%s", warning)
    if stats["judged"] and stats["abstentions"] == stats["judged"]:
        code = 3  # no verdict at all: nothing was annotated
    return code
