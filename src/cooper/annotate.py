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
* ``stats.json`` — written atomically (see :func:`annotate` for the keys).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import math
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from cooper.data import DataError, format_number, read_records
from cooper.endpoints import ChatClient, EndpointError, add_endpoint_args, endpoint_config_from_args, run_sync
from cooper.io import JsonlAppender, atomic_write_json, read_jsonl

logger = logging.getLogger(__name__)

Row = dict[str, Any]
Verdict = bool | None
JudgeFn = Callable[[str, str, str], Awaitable[tuple[Verdict, str | None]]]

JUDGE_SYSTEM = "You are a meticulous grader of answers to math problems."
JUDGE_TEMPLATE = """Decide whether the final answer of a model's completion is equivalent to the reference answer.

Question:
{question}

Reference answer:
{reference}

Completion:
{completion}

Compare only the completion's final answer with the reference answer; ignore its method, style and \
intermediate steps. Mathematically equivalent forms count as equal (for example 0.5 and 1/2). If the \
completion gives no final answer, or several different ones, it is not equivalent.
Reason briefly if you need to, then end your reply with exactly one final line, either
Final verdict: Yes
or
Final verdict: No"""
MAX_COMPLETION_CHARS = 8000  # the judge sees the tail of longer completions (the final answer is there)
_VERDICT_LINE = re.compile(r"final verdict:[ \t]*(yes|no)\.?", re.IGNORECASE)


class JudgeUnavailable(RuntimeError):
    """The judge could not answer (endpoint failure after retries): counted, not logged as judged."""


def judge_messages(question: str, reference: str, completion: str) -> list[dict[str, str]]:
    """The reference-based judge prompt as chat messages (system + user)."""
    if len(completion) > MAX_COMPLETION_CHARS:
        completion = "[...] " + completion[-MAX_COMPLETION_CHARS:]
    user = JUDGE_TEMPLATE.format(question=question, reference=reference, completion=completion)
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def parse_verdict(text: str | None) -> Verdict:
    """``True`` / ``False`` if the last non-empty line is exactly ``Final verdict: Yes`` / ``No``.

    Case-insensitive, one optional trailing period, surrounding whitespace ignored. Anything else (no
    such line, extra words, both words, markdown, an empty reply) is ``None``: an abstention.
    """
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    match = _VERDICT_LINE.fullmatch(lines[-1]) if lines else None
    return None if match is None else match.group(1).lower() == "yes"


class LLMJudge:
    """The LLM judge over a :class:`~cooper.endpoints.ChatClient`."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client

    async def judge_detail(self, question: str, reference: str, completion: str) -> tuple[Verdict, str]:
        """``(verdict, raw reply)``; raises :class:`JudgeUnavailable` when the endpoint gave no reply."""
        reply = await self.client.chat(judge_messages(question, reference, completion))
        if reply is None:
            raise JudgeUnavailable("the judge endpoint failed after all retries")
        return parse_verdict(reply), reply

    async def judge(self, question: str, reference: str, completion: str) -> Verdict:
        return (await self.judge_detail(question, reference, completion))[0]


def as_judge(judge: Any) -> JudgeFn:
    """An async ``(q, ref, completion) -> (verdict, raw reply or None)`` from any supported judge.

    Accepted: a :class:`ChatClient` (wrapped in :class:`LLMJudge`), an object with a ``judge`` method, or a
    plain callable; sync or async, returning ``True`` / ``False`` / ``None`` (abstain). A sync judge runs
    in the event-loop thread, one call at a time. Raise :class:`JudgeUnavailable` to count a failure.
    """
    if isinstance(judge, ChatClient):
        judge = LLMJudge(judge)
    if isinstance(judge, LLMJudge):
        return judge.judge_detail
    fn = getattr(judge, "judge", judge)
    if not callable(fn):
        raise TypeError(f"judge must be a ChatClient, an object with .judge(), or a callable; got {judge!r}")

    async def call(question: str, reference: str, completion: str) -> tuple[Verdict, str | None]:
        verdict = fn(question, reference, completion)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if verdict is not None and not isinstance(verdict, bool):
            raise TypeError(f"judge returned {verdict!r}; expected True, False or None")
        return verdict, None

    return call


# --- input ---------------------------------------------------------------------------------------------


def _field_text(row: Row, field: str, label: str, *, numbers: bool) -> str:
    if field not in row:
        raise ValueError(f"missing field {label}")
    value = row[field]
    if numbers and isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        value = format_number(value)
    if not isinstance(value, str):
        raise ValueError(f"field {label} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"field {label} is empty")
    return value


def load_input_rows(
    paths: Sequence[str | os.PathLike[str]],
    *,
    columns: dict[str, str] | None = None,
    need_completion: bool = True,
    skip_invalid: bool = False,
) -> tuple[list[Row], int]:
    """Rows ``{id, question, reference, [completion], source, ...}`` from jsonl / json / parquet files.

    Same conventions as :func:`cooper.data.load_rows` (``columns`` renames theirs -> ours; numbers allowed
    for ``id`` / ``reference``; a missing ``id`` is ``{file stem}-{index}``; ``source`` defaults to the
    file stem), but row by row, so that with ``skip_invalid`` a bad row (missing, empty or non-text field,
    duplicate id) is skipped and counted instead of raising :class:`DataError` naming file, line and field.
    Unreadable, empty or non-JSON files always raise. Returns ``(rows, n_skipped)``.
    """
    rename = dict(columns or {})
    theirs = {ours: their for their, ours in rename.items()}
    required = ("question", "reference", "completion") if need_completion else ("question", "reference")
    rows: list[Row] = []
    seen: dict[str, str] = {}
    skipped = 0
    for path in map(Path, paths):
        for index, (where, record) in enumerate(read_records(path)):
            row = {rename.get(key, key): value for key, value in record.items()}
            try:
                for field in ("id", *required):
                    if field == "id" and "id" not in row:
                        row["id"] = f"{path.stem}-{index}"
                    label = (
                        repr(field)
                        if theirs.get(field, field) == field
                        else f"{theirs[field]!r} (read as {field!r})"
                    )
                    row[field] = _field_text(row, field, label, numbers=field in ("id", "reference"))
                if row["id"] in seen:
                    raise ValueError(f"duplicate id {row['id']!r} (first at {seen[row['id']]})")
            except ValueError as e:
                error = DataError(f"{path} {where}: {e}")
                if not skip_invalid:
                    raise error from None
                skipped += 1
                if skipped <= 5:
                    logger.warning("skipping invalid row: %s", error)
                continue
            seen[row["id"]] = f"{path} {where}"
            if not isinstance(row.get("source"), str) or not row["source"].strip():
                row["source"] = path.stem
            rows.append(row)
    if skipped:
        logger.warning("skipped %d invalid row(s) (--skip-invalid)", skipped)
    if not rows:
        raise DataError(f"no valid rows in {', '.join(map(str, paths))}")
    logger.info("loaded %d rows from %d file(s)", len(rows), len(paths))
    return rows, skipped


def _check_rows(rows: Sequence[Row]) -> list[Row]:
    """Validate rows given to :func:`annotate` directly (DataError naming the row and field)."""
    ids: set[str] = set()
    for i, row in enumerate(rows):
        where = f"row {i} (id {row.get('id')!r})" if isinstance(row, dict) else f"row {i}"
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a dict, got {type(row).__name__}")
        for field in ("id", "question", "reference", "completion"):
            value = row.get(field)
            if not isinstance(value, str) or (field != "completion" and not value.strip()):
                problem = (
                    "missing" if field not in row else f"not a non-empty string ({type(value).__name__})"
                )
                raise DataError(f"{where}: field {field!r} is {problem}")
        if row["id"] in ids:
            raise DataError(f"{where}: duplicate id {row['id']!r}")
        ids.add(row["id"])
    return list(rows)


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
    """Sample ``samples`` completions per row from a local causal LM with :mod:`cooper.generation`.

    Prompts are the question plus the usual "reason step by step ... \\boxed{}" instruction in the model's
    chat template; batches are left-padded, each seeded from ``seed`` and its sample ids. Completions are
    appended to ``out_path`` as ``{id: "{row_id}-s{k}", row_id, sample, question, reference, completion,
    source, finish_reason}``; ids already there are not generated again (resume). Returns the rows with
    completions, in input order. Raises :class:`cooper.generation.ModelLoadError` for a bad model dir.
    """
    from cooper.generation import PromptTemplate, SamplingSettings, encode_prompts, load_engine

    settings = SamplingSettings(
        n=samples, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed
    )
    with JsonlAppender(out_path) as store:
        todo = [(r, k) for r in rows for k in range(samples) if f"{r['id']}-s{k}" not in store.done]
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
) -> dict[str, Any]:
    """Judge each ``{id, question, reference, completion[, source]}`` row twice and keep the agreements.

    ``judge``: a :class:`ChatClient`, an object with ``judge(q, ref, completion)``, or a callable; sync or
    async; ``True`` / ``False`` / ``None`` (abstain). Rows already in ``judged.jsonl`` (or the outputs) are
    skipped. ``concurrency`` bounds judge calls in flight (default: the client's ``max_concurrency``, or 8).

    Returns (and writes to ``stats.json``) the counts over all given rows, this run and earlier ones:
    ``rows_in, judged, agreements, disagreements, abstentions, agreement_rate`` (agreements / (agreements +
    disagreements)), ``kept_positive, kept_negative, verifier_correct, judge_failures`` (this run: rows
    left unjudged by endpoint errors), ``judged_this_run, skipped_already_judged, per_source``,
    ``endpoint`` (the client's stats) and ``elapsed_s``, plus ``extra_stats``.
    """
    if output_format not in ("jsonl", "parquet"):
        raise ValueError(f"output_format must be 'jsonl' or 'parquet', got {output_format!r}")
    start = time.perf_counter()
    rows = _check_rows(rows)
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
        verifier = _verify(pending, verifier_timeout_s)
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
            for item in zip(pending, verifier, strict=True):
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
    stats = _summarise(rows, outcomes, failures, len(pending))
    stats["endpoint"] = dict(client.stats) if client else None
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


def _verify(rows: list[Row], timeout_s: float) -> list[bool]:
    if not rows:
        return []
    from cooper.verify import is_correct_batch

    start = time.perf_counter()
    verdicts = is_correct_batch(
        [r["completion"] for r in rows], [r["reference"] for r in rows], timeout_s=timeout_s
    )
    logger.info(
        "rule verifier: %d/%d correct in %.2f s", sum(verdicts), len(rows), time.perf_counter() - start
    )
    return verdicts


_OUTCOME_COUNT = {"agree": "agreements", "disagree": "disagreements", "abstain": "abstentions"}


def _summarise(
    rows: list[Row], outcomes: dict[str, Row], failures: Counter[str], n_pending: int
) -> dict[str, Any]:
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
        keys = ["judged", _OUTCOME_COUNT[entry["outcome"]]] + (
            ["verifier_correct"] if entry["verifier"] else []
        )
        if entry["outcome"] == "agree":
            keys.append("kept_positive" if entry["verifier"] else "kept_negative")
        for c in counts:
            c.update(keys)
    for source, n in failures.items():
        per_source[source]["judge_failures"] += n
    decided = total["agreements"] + total["disagreements"]
    names = ("judged", *_OUTCOME_COUNT.values(), "kept_positive", "kept_negative", "verifier_correct")
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


def _write_parquet(jsonl_path: Path, parquet_path: Path) -> None:
    """``annotated.jsonl`` -> ``annotated.parquet`` via a temporary file and a rename (never half-written)."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = read_jsonl(jsonl_path) if jsonl_path.exists() else []
    schema = pa.schema(
        [(k, pa.string()) for k in ("id", "question", "reference", "completion")]
        + [("label", pa.int64()), ("source", pa.string())]
    )
    table = pa.Table.from_pylist([{f: r.get(f) for f in schema.names} for r in rows], schema=schema)
    fd, tmp = tempfile.mkstemp(dir=parquet_path.parent, prefix=f".{parquet_path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, parquet_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("wrote %d rows to %s", len(rows), parquet_path)


# --- command line --------------------------------------------------------------------------------------


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
    "disagree": "disagreements", "abstain": "abstentions", "failed": "judge_failures"
}  # fmt: skip


def print_stats(stats: dict[str, Any]) -> None:
    """The stats as rich tables on stdout (the command's final output)."""
    from rich.console import Console
    from rich.table import Table

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


def _parse_columns(pairs: Sequence[str] | None) -> dict[str, str]:
    columns: dict[str, str] = {}
    for pair in pairs or []:
        theirs, sep, ours = pair.partition("=")
        if not sep or not theirs.strip() or not ours.strip():
            raise ValueError(f"--column expects THEIRS=OURS (e.g. problem=question), got {pair!r}")
        columns[theirs.strip()] = ours.strip()
    return columns


def run_cli(args: argparse.Namespace) -> int:
    """``cooper annotate``: exit 0 when done, 2 for bad input or an unusable endpoint (before any request
    or generation), 3 when some rows were left unjudged by endpoint failures (rerun to retry them)."""
    try:
        rows, skipped = load_input_rows(
            args.data,
            columns=_parse_columns(args.column),
            need_completion=args.generator is None,
            skip_invalid=args.skip_invalid,
        )
        config = endpoint_config_from_args(args, "judge")
        client = ChatClient(config)
        client.preflight()
    except (DataError, EndpointError, ValueError) as e:
        logger.error("%s", e)
        return 2
    extra: dict[str, Any] = {
        "invalid_rows_skipped": skipped,
        "input_rows": len(rows),
        "judge": config.describe(),
    }
    out = Path(args.out)
    if args.generator is not None:
        from cooper.generation import ModelLoadError

        try:
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
        except (ModelLoadError, ValueError, OSError) as e:
            logger.error("generation failed: %s", e)
            return 2
        extra["generator"] = {"model": str(args.generator), "samples": args.samples, "completions": len(rows)}
    stats = annotate(
        rows,
        client,
        out,
        retry_abstentions=args.retry_abstentions,
        verifier_timeout_s=args.verifier_timeout,
        output_format=args.format,
        extra_stats=extra,
    )
    print_stats(stats)
    if stats["judge_failures"]:
        logger.warning(
            "%d rows were not judged (endpoint failures); rerun to retry them", stats["judge_failures"]
        )
        return 3
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``cooper annotate`` to the ``cooper`` command."""
    p = sub.add_parser(
        "annotate",
        help="hybrid annotation: rule verifier + LLM judge, keep the rows where they agree",
        description=(
            "Label completions with the rule verifier and a reference-based LLM judge (any OpenAI-compatible "
            "endpoint) and keep the rows where both agree: OUT/annotated.jsonl ({id, question, reference, "
            "completion, label, source}, ready for `cooper train-rm`), OUT/disagreements.jsonl, OUT/stats.json. "
            "Resumable: a rerun skips ids already judged. Exit codes: 0 done, 2 bad input or unusable endpoint "
            "(reported before any work), 3 some rows unjudged after endpoint failures (rerun to retry)."
        ),
    )
    p.add_argument(
        "--data", nargs="+", required=True, metavar="FILE", help=".jsonl/.json/.parquet input file(s)"
    )
    p.add_argument(
        "--column", action="append", metavar="THEIRS=OURS", help="rename an input column (repeatable)"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (reused on resume)")
    p.add_argument(
        "--format", choices=("jsonl", "parquet"), default="jsonl", help="also write annotated.parquet"
    )
    p.add_argument(
        "--skip-invalid", action="store_true", help="skip (and count) invalid rows instead of failing"
    )
    p.add_argument("--retry-abstentions", action="store_true", help="ask the judge again where it abstained")
    p.add_argument("--verifier-timeout", type=float, default=5.0, help="seconds per rule-verifier verdict")
    add_endpoint_args(p, "judge", "judge endpoint (OpenAI-compatible)")
    g = p.add_argument_group("generation (rows without completions)")
    g.add_argument(
        "--generator", metavar="MODEL_DIR", help="local model directory to sample completions from"
    )
    g.add_argument("--samples", type=int, default=4, metavar="K", help="completions per row")
    g.add_argument("--temperature", type=float, default=0.7)
    g.add_argument("--top-p", type=float, default=0.95)
    g.add_argument("--max-new-tokens", type=int, default=512)
    g.add_argument("--batch-size", type=int, default=8, help="prompts per generate() call")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--trust-remote-code", action="store_true", help="allow custom model code from MODEL_DIR")
    p.set_defaults(func=run_cli)
