"""Generic row files: read .jsonl / .json / .parquet into checked dict rows.

:func:`load_rows` renames columns, checks the text fields and fills ``id`` and ``source``; malformed files
and rows raise :class:`DataError` naming the file, the 1-based line (JSON Lines) or row (JSON array,
parquet) and the field. ``datasets`` and ``pyarrow`` are imported only when a parquet file is read, so
importing this module is cheap. The benchmark loaders built on it are in :mod:`cooper.data.benchmarks`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from cooper.utils.errors import BadInput

logger = logging.getLogger(__name__)

Row = dict[str, Any]
StrPath = str | os.PathLike[str]
SUPPORTED_SUFFIXES = (".jsonl", ".json", ".parquet")
# Row keys that must hold text; numbers are accepted (and converted) for the ones in _NUMBER_OK.
_TEXT_KEYS = ("id", "question", "reference", "solution", "completion")
_NUMBER_OK = ("id", "reference")


class DataError(BadInput, ValueError):
    """A data file is missing, unreadable or malformed; the message names the file, line/row and field."""


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
            # utf-8-sig: a leading byte-order mark (saved by Windows editors and Excel) is dropped
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: not valid UTF-8 text ({e.reason} at byte {e.start})") from None
        except OSError as e:  # e.g. no permission to read it
            raise DataError(f"{path}: cannot read the file ({e.strerror or type(e).__name__})") from None
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
    # lazy: only parquet needs them; datasets takes 1.3 s to import, and cooper plot imports this module
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


class Record:
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
    unique_ids: bool = False,
) -> list[Row]:
    """Rows from one or more .jsonl / .json / .parquet files.

    ``converters`` maps a field to a function that returns its checked value or raises ValueError (the
    error then names file, line and field). With ``unique_ids``, ids must be non-empty and unique across
    all the files (a duplicate's error names where the id was first seen). With ``skip_invalid``, a row
    that fails a check is left out and its error message appended to ``skipped`` instead of raised
    (file-level errors still raise); the first five messages and the count are logged, and a DataError is
    raised when no row is left.

    ``columns`` renames file columns to ours, e.g. ``{"problem": "question", "reference_answer":
    "reference"}``; other columns pass through unchanged. Every ``required`` field must be present and
    non-empty; ``id``, ``question``, ``reference`` and ``solution`` must be strings where present
    (numbers are accepted for ``id`` and ``reference`` and converted). A missing ``id`` becomes
    ``"{file stem}-{index}"`` (0-based within its file); ``source`` defaults to the row's own
    ``source`` or else the file stem.
    """
    one = isinstance(path_or_paths, str | os.PathLike)
    paths = [Path(path_or_paths)] if one else [Path(p) for p in path_or_paths]
    if not paths:
        raise DataError("load_rows: no data files given")
    rename = dict(columns or {})
    original = {ours: theirs for theirs, ours in rename.items()}

    def label(field: str) -> str:
        theirs = original.get(field, field)
        return repr(field) if theirs == field else f"{theirs!r} (read as {field!r})"

    rows: list[Row] = []
    errors: list[str] = []  # of the rows skipped (skip_invalid)
    first_seen: dict[str, str] = {}  # id -> "file line N", with unique_ids
    for path in paths:
        records = read_records(path, columns=[original.get(f, f) for f in required])
        for index, (where, record) in enumerate(records):
            row = {rename.get(key, key): value for key, value in record.items()}
            rec = Record(path, where, row)
            try:
                _check_row(rec, row, required, converters or {}, label)
                row.setdefault("id", f"{path.stem}-{index}")
                if unique_ids:
                    _check_unique_id(rec, row["id"], first_seen, label)
            except DataError as e:
                if not skip_invalid:
                    raise
                errors.append(str(e))
                continue
            if unique_ids:
                first_seen[row["id"]] = f"{path} {where}"
            if source is not None or not isinstance(row.get("source"), str):
                row["source"] = source if source is not None else path.stem
            rows.append(row)
    if errors:
        for message in errors[:5]:
            logger.warning("skipping invalid row: %s", message)
        logger.warning("skipped %d invalid rows", len(errors))
        if skipped is not None:
            skipped.extend(errors)
        if not rows:
            raise DataError(f"no valid rows in {', '.join(map(str, paths))}")
    logger.info("loaded %d rows from %s", len(rows), ", ".join(str(p) for p in paths))
    return rows


def parse_columns(pairs: Iterable[str] | None, *, flag: str = "--column") -> dict[str, str]:
    """Column renames from the command line: ``["problem=question"]`` -> ``{"problem": "question"}``.

    Whitespace around either name is dropped; a pair without ``=`` or with an empty side raises ValueError
    naming ``flag``. The result is the ``columns`` argument of :func:`load_rows`.
    """
    columns: dict[str, str] = {}
    for pair in pairs or []:
        theirs, sep, ours = pair.partition("=")
        if not sep or not theirs.strip() or not ours.strip():
            raise ValueError(f"{flag} expects THEIRS=OURS (e.g. problem=question), got {pair!r}")
        columns[theirs.strip()] = ours.strip()
    return columns


def check_rows(rows: Sequence[Any], fields: dict[str, str], *, where: str = "") -> list[Row]:
    """Rows given in memory (an API caller's dicts, a benchmark's rows), checked as :func:`load_rows` checks
    a file's: a :class:`DataError` names the row (``{where}row N (id ...)``, 0-based) and the field.

    ``fields`` maps each required field to what it must hold: ``"any"`` (present), ``"text"`` (a string) or
    ``"nonempty"`` (a non-blank string). Ids (as strings) must be unique; a duplicate names the row where
    the id was first seen. Returns the rows as a list; nothing is converted."""
    first_seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"{where}row {i}: expected a dict, got {type(row).__name__}")
        at = f"{where}row {i} (id {row.get('id')!r})"
        for field, kind in fields.items():
            if field not in row:
                raise DataError(f"{at}: field {field!r} is missing (has keys {sorted(map(str, row))})")
            value = row[field]
            if kind == "any":
                continue
            if not isinstance(value, str) or (kind == "nonempty" and not value.strip()):
                wanted = "a non-empty string" if kind == "nonempty" else "a string"
                raise DataError(f"{at}: field {field!r} is not {wanted} ({type(value).__name__})")
        if "id" in row:
            row_id = str(row["id"])
            if row_id in first_seen:
                raise DataError(f"{at}: duplicate id {row_id!r} (first at row {first_seen[row_id]})")
            first_seen[row_id] = i
    return list(rows)


def _check_row(
    rec: Record,
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


def _check_unique_id(
    rec: Record, row_id: str, first_seen: dict[str, str], label: Callable[[str], str]
) -> None:
    if not row_id.strip():
        raise rec.error(f"field {label('id')} is empty")
    if row_id in first_seen:
        raise rec.error(f"duplicate id {row_id!r} (first at {first_seen[row_id]})")
