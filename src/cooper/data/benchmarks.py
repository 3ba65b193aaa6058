"""Benchmark loaders (GSM8K, MATH-500, SVAMP, OlympiadBench, Math Odyssey) and their data directory.

Every loader returns plain dict rows ``{"id", "question", "reference", "source"}`` (all ``str``), plus
``"solution"`` where the benchmark has a gold solution text. ``reference`` is the bare final answer, cleaned
of each benchmark's formatting (``#### 1,000`` -> ``1000``, ``145.0`` -> ``145``, ``16\\\\ \\noindent`` ->
``16``), ready for :mod:`cooper.verify`. Malformed files raise :class:`DataError` naming the file, the
1-based line (JSON Lines) or row (JSON array, parquet) and the field. The generic row loader
(:func:`load_rows`, :func:`read_records`, :class:`DataError`, ...) lives in :mod:`cooper.data.rows`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

from cooper.data.rows import (
    DataError,
    Record,
    Row,
    StrPath,
    read_records,
)

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "COOPER_DATA_DIR"


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
    "gsm8k_solutions": "gsm8k/example_model_solutions.jsonl",  # model solutions, not a benchmark
}


def _records(name: str, data_dir: StrPath | None, limit: int | None) -> list[Record]:
    """The first ``limit`` records of the file of ``name`` (a key of :data:`BENCHMARK_FILES`)."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    path = resolve_data_dir(data_dir) / BENCHMARK_FILES[name]
    return [Record(path, where, data) for where, data in read_records(path)[:limit]]


def _load(
    name: str, build: Callable[[Record, int], Row], data_dir: StrPath | None, limit: int | None
) -> list[Row]:
    """Read benchmark ``name``'s file and turn its first ``limit`` records into rows with ``build``."""
    rows = [build(rec, i) for i, rec in enumerate(_records(name, data_dir, limit))]
    for row in rows:
        row["source"] = name
    return rows


def _gsm8k_row(rec: Record, index: int, split: str) -> Row:
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


_GSM8K_FINAL_ANSWER = re.compile(r"A:\s*(.+?)\s*$")  # the "A: N" line that ends a ground_truth


def _gsm8k_solution_rows(rec: Record, index: int) -> list[Row]:
    truth = rec.text("ground_truth")
    final = _GSM8K_FINAL_ANSWER.search(truth)
    reference = _THOUSANDS_SEP.sub("", final.group(1)) if final else ""
    problem = {
        "question": rec.nonempty(rec.text("question"), "question"),
        "reference": rec.nonempty(reference, "ground_truth", truth[-80:]),
    }
    rows = []
    for key, value in rec.data.items():
        if isinstance(value, dict) and "solution" in value:
            if not isinstance(value.get("is_correct"), bool):
                raise rec.error(
                    f"field {key!r}: is_correct must be true or false, got {value.get('is_correct')!r}"
                )
            completion = Record(rec.path, rec.where, value).text("solution", label=repr(f"{key}.solution"))
            rows.append(
                {"id": f"gsm8k-sol-{index}-{key}", **problem, "completion": completion}
                | {"label": value["is_correct"], "source": "gsm8k_solutions"}
            )
    return rows


def load_gsm8k_model_solutions(*, data_dir: StrPath | None = None, limit: int | None = None) -> list[Row]:
    """The 5,276 real model solutions to the 1,319 GSM8K test problems, with human correctness labels.

    One row per solution (OpenAI's ``example_model_solutions.jsonl``: four models per problem), in file
    order: ``{id, question, reference, completion, label, source}``. ``id`` is ``gsm8k-sol-{i}-{model}``
    with ``i`` the problem's 0-based row (GSM8K test row ``i``); ``reference`` is the ``A: N`` answer that
    ends ``ground_truth``, thousands separators removed; ``label`` (bool) is ``is_correct``. ``limit``
    keeps the first rows (solutions, not problems).
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    records = _records("gsm8k_solutions", data_dir, None)
    return [row for i, rec in enumerate(records) for row in _gsm8k_solution_rows(rec, i)][:limit]


def _math500_row(rec: Record, index: int) -> Row:
    return {
        "id": rec.text("unique_id"),
        "question": rec.nonempty(rec.text("problem"), "problem"),
        "reference": rec.nonempty(rec.text("answer").strip(), "answer"),
        "solution": rec.text("solution"),
    }


def load_math500(*, data_dir: StrPath | None = None, limit: int | None = None) -> list[Row]:
    """MATH-500 (500 rows); ``reference`` is the LaTeX ``answer`` as is, ``id`` the ``unique_id``."""
    return _load("math500", _math500_row, data_dir, limit)


def _svamp_row(rec: Record, index: int) -> Row:
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


def _olympiadbench_row(rec: Record, index: int) -> Row:
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
    # what the verifier reads to compare several answers as a set and to pick the comparison
    if isinstance(rec.data.get("answer_type"), str):
        row["answer_type"] = rec.data["answer_type"]
    if isinstance(rec.data.get("is_multiple_answer"), bool):
        row["is_multiple_answer"] = rec.data["is_multiple_answer"]
    return row


def load_olympiadbench(*, data_dir: StrPath | None = None, limit: int | None = None) -> list[Row]:
    """OlympiadBench, English competition-maths subset (675 rows).

    ``reference``: the ``final_answer`` list, each cleaned of ``$`` delimiters, joined with ``", "``;
    ``solution``: the ``solution`` list joined with a blank line; ``unit`` (cleaned) where present;
    ``answer_type`` and ``is_multiple_answer`` as the file gives them (the verifier uses both).
    """
    return _load("olympiadbench", _olympiadbench_row, data_dir, limit)


def _odyssey_row(rec: Record, index: int) -> Row:
    if len(rec.data) != 1 or not isinstance(next(iter(rec.data.values())), dict):
        raise rec.error(f"expected one {{'Problem_N': {{...}}}} object, got keys {list(rec.data)}")
    ((key, inner),) = rec.data.items()
    rec = Record(rec.path, rec.where, inner)
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
