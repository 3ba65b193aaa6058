"""Benchmark loaders and a generic jsonl / json / parquet row loader.

Every loader returns plain dict rows ``{"id", "question", "reference", "source"}`` (all ``str``), plus
``"solution"`` where the benchmark has a gold solution text. ``reference`` is the bare final answer, cleaned
of each benchmark's formatting (``#### 1,000`` -> ``1000``, ``145.0`` -> ``145``, ``16\\\\ \\noindent`` ->
``16``), ready for :mod:`cooper.verify`. Malformed files raise :class:`DataError` naming the file, the
1-based line (JSON Lines) or row (JSON array, parquet) and the field. ``datasets`` and ``pyarrow`` are
imported only when a parquet file is read, so importing this module is cheap.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

Row = dict[str, Any]
StrPath = str | os.PathLike[str]
DATA_DIR_ENV = "COOPER_DATA_DIR"
SUPPORTED_SUFFIXES = (".jsonl", ".json", ".parquet")
# Row keys that must hold text; numbers are accepted (and converted) for the ones in _NUMBER_OK.
_TEXT_KEYS = ("id", "question", "reference", "solution", "completion")
_NUMBER_OK = ("id", "reference")


class DataError(ValueError):
    """A data file is missing, unreadable or malformed; the message names the file, line/row and field."""


def resolve_data_dir(data_dir: StrPath | None = None) -> Path:
    """The benchmark data directory.

    Order: the explicit ``data_dir``; else ``$COOPER_DATA_DIR``; else the first ``shared/data`` found
    walking up from the current directory, then from this source file (the repository's sibling
    ``../shared/data``). Raises :class:`DataError` naming where it looked when none exists.
    """
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise DataError(f"data_dir {str(path)!r} is not a directory")
        return path
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise DataError(f"${DATA_DIR_ENV}={env!r} is not a directory")
        return path
    starts = [Path.cwd().resolve(), Path(__file__).resolve().parent]
    for start in starts:
        for base in (start, *start.parents):
            candidate = base / "shared" / "data"
            if candidate.is_dir():
                return candidate
    raise DataError(
        "benchmark data directory not found: looked for shared/data in "
        + " and ".join(str(s) for s in starts)
        + f" and all their parent directories; set {DATA_DIR_ENV}=/path/to/data or pass data_dir="
    )


def read_records(path: StrPath, *, columns: Iterable[str] = ()) -> list[tuple[str, Row]]:
    """Parse a .jsonl / .json / .parquet file into ``(position, record)`` pairs.

    ``position`` is ``"line N"`` for JSON Lines (the physical line, blank lines counted) and ``"row N"``
    for a JSON array or parquet. ``columns`` are checked against a parquet file's schema up front.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type {suffix or '(none)'!r}; expected one of {SUPPORTED_SUFFIXES}"
        )
    if not path.is_file():
        raise DataError(f"{path}: file does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    if suffix == ".parquet":
        records = _read_parquet(path, list(columns))
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: not valid UTF-8 text ({e.reason} at byte {e.start})") from None
        records = _parse_json(path, text) if suffix == ".json" else _parse_jsonl(path, text)
    if not records:
        raise DataError(f"{path}: file is empty")
    for where, record in records:
        if not isinstance(record, dict):
            raise DataError(f"{path} {where}: expected a JSON object, got {type(record).__name__}")
    logger.debug("read %d records from %s", len(records), path)
    return records


def _parse_jsonl(path: Path, text: str) -> list[tuple[str, Any]]:
    records: list[tuple[str, Any]] = []
    for n, line in enumerate(text.split("\n"), 1):  # not splitlines(): JSON strings may hold U+2028
        if not line.strip():
            continue
        try:
            records.append((f"line {n}", json.loads(line)))
        except json.JSONDecodeError as e:
            raise DataError(f"{path} line {n}: invalid JSON: {e.msg} (column {e.colno})") from None
    return records


def _parse_json(path: Path, text: str) -> list[tuple[str, Any]]:
    """A JSON array of objects, or JSON Lines saved under a .json name."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        if len(text.strip().splitlines()) > 1:
            return _parse_jsonl(path, text)  # JSON Lines under a .json name: exact line numbers
        raise DataError(f"{path}: invalid JSON") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of objects, got {type(data).__name__}")
    return [(f"row {i}", record) for i, record in enumerate(data, 1)]


def _read_parquet(path: Path, columns: list[str]) -> list[tuple[str, Any]]:
    import pyarrow.parquet as pq
    from datasets import Dataset

    try:
        names = pq.read_schema(path).names
    except (OSError, ValueError) as e:  # pyarrow.ArrowInvalid is a ValueError
        raise DataError(f"{path}: not a readable parquet file: {e}") from None
    for column in columns:
        if column not in names:
            raise DataError(f"{path}: missing column {column!r} (the file has columns {names})")
    dataset = Dataset.from_parquet(str(path), keep_in_memory=True)
    return [(f"row {i}", record) for i, record in enumerate(dataset.to_list(), 1)]


def format_number(value: int | float) -> str:
    """``145.0`` -> ``"145"``, ``2.5`` -> ``"2.5"``, ``1e-05`` -> ``"0.00001"`` (shortest, no exponent)."""
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    if value.is_integer():
        return str(int(value))
    return format(Decimal(repr(value)), "f")


class _Record:
    """One parsed record with its file and position: field access fails with a precise DataError."""

    def __init__(self, path: Path, where: str, data: Row) -> None:
        self.path, self.where, self.data = path, where, data

    def error(self, message: str) -> DataError:
        return DataError(f"{self.path} {self.where}: {message}")

    def text(self, field: str, *, numbers: bool = False, label: str = "") -> str:
        """``data[field]`` as a string; with ``numbers``, an int or float is converted."""
        name = label or repr(field)
        if field not in self.data:
            raise self.error(f"missing field {name}")
        value = self.data[field]
        if isinstance(value, str):
            return value
        if (
            numbers
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
        ):
            return format_number(value)
        wanted = "a string or number" if numbers else "a string"
        raise self.error(f"field {name} must be {wanted}, got {_type_name(value)}")

    def strings(self, field: str) -> list[str]:
        """A field holding a list of strings (a lone string is taken as a one-item list)."""
        value = self.data.get(field)
        if isinstance(value, str):
            return [value]
        if field not in self.data:
            raise self.error(f"missing field {field!r}")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(f"field {field!r} must be a list of strings, got {_type_name(value)}")
        return value

    def nonempty(self, value: str, field: str, raw: Any = None) -> str:
        """``value`` (derived from ``field``) unless it is blank."""
        if not value.strip():
            raise self.error(
                f"field {field!r} is empty" + (f" (raw value {raw!r})" if raw is not None else "")
            )
        return value


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def load_rows(
    path_or_paths: StrPath | Sequence[StrPath],
    *,
    columns: dict[str, str] | None = None,
    required: Sequence[str] = ("question", "reference"),
    source: str | None = None,
    converters: dict[str, Callable[[Any], Any]] | None = None,
    skip_invalid: bool = False,
    skipped: list[str] | None = None,
) -> list[Row]:
    """Rows from one or more .jsonl / .json / .parquet files.

    ``converters`` maps a field to a function that returns its checked value or raises ValueError (the
    error then names file, line and field). With ``skip_invalid``, a row that fails a check is left out
    and its error message appended to ``skipped`` instead of raised (file-level errors still raise).

    ``columns`` renames file columns to ours, e.g. ``{"problem": "question", "reference_answer":
    "reference"}``; other columns pass through unchanged. Every ``required`` field must be present and
    non-empty; ``id``, ``question``, ``reference`` and ``solution`` must be strings where present
    (numbers are accepted for ``id`` and ``reference`` and converted). A missing ``id`` becomes
    ``"{file stem}-{index}"`` (0-based within its file); ``source`` defaults to the row's own
    ``source`` or else the file stem.
    """
    if isinstance(path_or_paths, str | os.PathLike):
        paths = [Path(path_or_paths)]
    else:
        paths = [Path(p) for p in path_or_paths]
    if not paths:
        raise DataError("load_rows: no data files given")
    rename = dict(columns or {})
    original = {ours: theirs for theirs, ours in rename.items()}

    def label(field: str) -> str:
        theirs = original.get(field, field)
        return repr(field) if theirs == field else f"{theirs!r} (read as {field!r})"

    rows: list[Row] = []
    for path in paths:
        records = read_records(path, columns=[original.get(f, f) for f in required])
        for index, (where, record) in enumerate(records):
            row = {rename.get(key, key): value for key, value in record.items()}
            rec = _Record(path, where, row)
            try:
                _check_row(rec, row, required, converters or {}, label)
            except DataError as e:
                if not skip_invalid:
                    raise
                if skipped is not None:
                    skipped.append(str(e))
                continue
            row.setdefault("id", f"{path.stem}-{index}")
            if source is not None or not isinstance(row.get("source"), str):
                row["source"] = source if source is not None else path.stem
            rows.append(row)
    logger.info("loaded %d rows from %s", len(rows), ", ".join(str(p) for p in paths))
    return rows


def _check_row(
    rec: _Record,
    row: Row,
    required: Sequence[str],
    converters: dict[str, Callable[[Any], Any]],
    label: Callable[[str], str],
) -> None:
    for field in required:
        if field not in row:
            raise rec.error(f"missing field {label(field)}")
    for field in _TEXT_KEYS:
        if field in row:
            row[field] = rec.text(field, numbers=field in _NUMBER_OK, label=label(field))
    for field in required:
        if isinstance(row[field], str) and not row[field].strip():
            raise rec.error(f"field {label(field)} is empty")
    for field, convert in converters.items():
        if field in row:
            try:
                row[field] = convert(row[field])
            except (ValueError, TypeError) as e:
                raise rec.error(f"field {label(field)}: {e}") from None


_THOUSANDS_SEP = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_PROBLEM_ENV = re.compile(r"\\(?:begin|end)\{problem\}")
_NOINDENT = re.compile(r"\\noindent(?![A-Za-z])[ \t]*")
_MATH_DELIM = re.compile(r"(?<!\\)\$\$?")  # an unescaped $ or $$ (``\$`` is a dollar sign and stays)
_DELIM_MARK = "\x00"
_TRAILING_DEBRIS = re.compile(r"(?:\s|\\\\|\.)+$")  # whitespace, ``\\`` line breaks, a full stop
_SEMICOLON_MATRIX = re.compile(r"\[([^\[\];]+(?:;[^\[\];]+)+)\]")


def gsm8k_reference(answer: str) -> str:
    """The number after GSM8K's last ``####``, thousands separators removed; ``""`` if there is none."""
    if "####" not in answer:
        return ""
    return _THOUSANDS_SEP.sub("", answer.rsplit("####", 1)[1].strip())


def clean_latex_answer(text: str) -> str:
    """A bare answer from LaTeX source: drops ``\\noindent``, ``\\end{problem}``, ``$`` delimiters,
    trailing ``\\\\`` and full stops; ``$a$,$b$`` becomes ``a, b``; whitespace runs become one space.

    ``'$\\frac{8}{3}$\\\\\\n\\noindent'`` -> ``'\\frac{8}{3}'``; ``'$69$,$84$'`` -> ``'69, 84'``.
    """
    s = _NOINDENT.sub(" ", _PROBLEM_ENV.sub(" ", text))
    s = _MATH_DELIM.sub(_DELIM_MARK, s)
    s = re.sub(rf"{_DELIM_MARK}?\s*,\s*{_DELIM_MARK}", ", ", s)  # "$a$,$b$" and "$a,$b$" -> "a, b"
    s = re.sub(r"\s+", " ", s.replace(_DELIM_MARK, ""))
    return _TRAILING_DEBRIS.sub("", s).strip()


def semicolon_matrix_to_latex(text: str) -> str:
    """``[9,0; 0, 9]`` (rows split by ``;``, as Odyssey writes matrices) -> a LaTeX ``pmatrix``, which
    math-verify parses; any other text is returned unchanged."""
    match = _SEMICOLON_MATRIX.fullmatch(text.strip())
    if not match:
        return text
    rows = [[cell.strip() for cell in row.split(",")] for row in match.group(1).split(";")]
    if any(not all(row) for row in rows) or len({len(row) for row in rows}) != 1:
        return text
    return r"\begin{pmatrix} " + r" \\ ".join(" & ".join(row) for row in rows) + r" \end{pmatrix}"


def clean_latex_question(text: str) -> str:
    """A problem statement without ``\\end{problem}`` / ``\\noindent`` debris or trailing blank space."""
    s = _NOINDENT.sub("", _PROBLEM_ENV.sub("", text))
    s = re.sub(r"[ \t]+\n", "\n", s)
    return re.sub(r"\n{3,}", "\n\n", s).strip()


BENCHMARK_FILES: dict[str, str] = {
    "gsm8k": "gsm8k/test.jsonl",
    "gsm8k_train": "gsm8k/train.jsonl",
    "math500": "math500/test.jsonl",
    "svamp": "svamp/test.jsonl",
    "olympiadbench": "olympiadbench/test.jsonl",
    "odyssey": "odyssey/test.jsonl",
}


def _load(
    name: str, build: Callable[[_Record, int], Row], data_dir: StrPath | None, limit: int | None
) -> list[Row]:
    """Read benchmark ``name``'s file and turn its first ``limit`` records into rows with ``build``."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    path = resolve_data_dir(data_dir) / BENCHMARK_FILES[name]
    records = read_records(path)[:limit]
    rows = [build(_Record(path, where, data), i) for i, (where, data) in enumerate(records)]
    for row in rows:
        row["source"] = name
    return rows


def _gsm8k_row(rec: _Record, index: int, split: str) -> Row:
    answer = rec.text("answer")
    return {
        "id": f"gsm8k-{split}-{index}",
        "question": rec.nonempty(rec.text("question"), "question"),
        "reference": rec.nonempty(gsm8k_reference(answer), "answer", answer[-80:]),
        "solution": answer,
    }


def load_gsm8k_test(*, data_dir: StrPath | None = None, limit: int | None = None) -> list[Row]:
    """GSM8K test (1319 rows); ``solution`` is the worked answer ending in ``#### N``."""
    return _load("gsm8k", lambda rec, i: _gsm8k_row(rec, i, "test"), data_dir, limit)


def load_gsm8k_train(*, data_dir: StrPath | None = None, limit: int | None = None) -> list[Row]:
    """GSM8K train (7473 rows), the paper's RL training set."""
    return _load("gsm8k_train", lambda rec, i: _gsm8k_row(rec, i, "train"), data_dir, limit)


def _math500_row(rec: _Record, index: int) -> Row:
    return {
        "id": rec.text("unique_id"),
        "question": rec.nonempty(rec.text("problem"), "problem"),
        "reference": rec.nonempty(rec.text("answer").strip(), "answer"),
        "solution": rec.text("solution"),
    }


def load_math500(*, data_dir: StrPath | None = None, limit: int | None = None) -> list[Row]:
    """MATH-500 (500 rows); ``reference`` is the LaTeX ``answer`` as is, ``id`` the ``unique_id``."""
    return _load("math500", _math500_row, data_dir, limit)


def _svamp_row(rec: _Record, index: int) -> Row:
    return {
        "id": rec.text("ID", numbers=True),
        "question": rec.nonempty(
            f"{rec.text('Body').strip()} {rec.text('Question').strip()}", "Body/Question"
        ),
        "reference": rec.nonempty(rec.text("Answer", numbers=True), "Answer"),
    }


def load_svamp(*, data_dir: StrPath | None = None, limit: int | None = None) -> list[Row]:
    """SVAMP (1000 rows); question = ``Body + " " + Question``, the float ``Answer`` as ``145`` / ``2.5``."""
    return _load("svamp", _svamp_row, data_dir, limit)


def _olympiadbench_row(rec: _Record, index: int) -> Row:
    answers = rec.strings("final_answer")
    question = rec.text("question")
    context = rec.data.get("context")
    if isinstance(context, str) and context.strip():
        question = f"{context.strip()}\n\n{question}"
    reference = ", ".join(a for a in map(clean_latex_answer, answers) if a)
    row: Row = {
        "id": rec.text("id", numbers=True),
        "question": rec.nonempty(question, "question"),
        "reference": rec.nonempty(reference, "final_answer", answers),
        "solution": "\n\n".join(s.strip() for s in rec.strings("solution")),
    }
    unit = rec.data.get("unit")
    if isinstance(unit, str) and clean_latex_answer(unit):
        row["unit"] = clean_latex_answer(unit)
    return row


def load_olympiadbench(*, data_dir: StrPath | None = None, limit: int | None = None) -> list[Row]:
    """OlympiadBench, English competition-maths subset (675 rows).

    ``reference``: the ``final_answer`` list, each cleaned of ``$`` delimiters, joined with ``", "``;
    ``solution``: the ``solution`` list joined with a blank line; ``unit`` (cleaned) where present.
    """
    return _load("olympiadbench", _olympiadbench_row, data_dir, limit)


def _odyssey_row(rec: _Record, index: int) -> Row:
    if len(rec.data) != 1 or not isinstance(next(iter(rec.data.values())), dict):
        raise rec.error(f"expected one {{'Problem_N': {{...}}}} object, got keys {list(rec.data)}")
    ((key, inner),) = rec.data.items()
    rec = _Record(rec.path, rec.where, inner)
    answer = rec.text("answer", numbers=True)
    return {
        "id": key,
        "question": rec.nonempty(clean_latex_question(rec.text("question")), "question"),
        "reference": rec.nonempty(semicolon_matrix_to_latex(clean_latex_answer(answer)), "answer", answer),
        "solution": rec.text("reasoning").strip(),
    }


def load_odyssey(*, data_dir: StrPath | None = None, limit: int | None = None) -> list[Row]:
    """Math Odyssey (387 rows), one ``{"Problem_N": {...}}`` object per line; ``id`` is ``Problem_N``.

    Question and answer are cleaned of the LaTeX debris of the source document (``\\end{problem}``,
    ``\\noindent``, trailing ``\\\\``, ``$`` delimiters, full stops); matrices written ``[a, b; c, d]``
    become ``pmatrix`` references (see :func:`semicolon_matrix_to_latex`); ``solution`` is ``reasoning``.
    """
    return _load("odyssey", _odyssey_row, data_dir, limit)


BENCHMARKS: dict[str, Callable[..., list[Row]]] = {
    "gsm8k": load_gsm8k_test,
    "gsm8k_train": load_gsm8k_train,
    "math500": load_math500,
    "svamp": load_svamp,
    "olympiadbench": load_olympiadbench,
    "odyssey": load_odyssey,
}


def load_benchmark(name: str, *, data_dir: StrPath | None = None, limit: int | None = None) -> list[Row]:
    """Rows of the benchmark ``name`` (a key of :data:`BENCHMARKS`), the first ``limit`` if given."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; valid names: {', '.join(BENCHMARKS)}")
    rows = BENCHMARKS[name](data_dir=data_dir, limit=limit)
    logger.info("loaded %d rows of %s", len(rows), name)
    return rows
