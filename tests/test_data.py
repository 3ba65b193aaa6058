"""Tests for cooper.data: the six real benchmark loaders, the generic loader and its error messages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cooper.data import benchmarks as data
from cooper.data.benchmarks import BENCHMARKS, load_benchmark
from cooper.data.rows import DataError, format_number, load_rows

EXPECTED_ROWS = {
    "gsm8k_train": 7473,
    "gsm8k": 1319,
    "math500": 500,
    "svamp": 1000,
    "olympiadbench": 675,
    "odyssey": 387,
}
WITH_SOLUTION = {"gsm8k", "gsm8k_train", "math500", "olympiadbench", "odyssey"}
UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")


@pytest.fixture(scope="module")
def benchmarks() -> dict[str, list[dict]]:
    """Every benchmark, loaded once (the data must be present: missing data is a failure, not a skip)."""
    return {name: load_benchmark(name) for name in BENCHMARKS}


# --------------------------------------------------------------------------- real benchmarks


def test_registry_names() -> None:
    assert set(BENCHMARKS) == set(EXPECTED_ROWS)


@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_row_counts_match_readme(benchmarks: dict, name: str) -> None:
    assert len(benchmarks[name]) == EXPECTED_ROWS[name]


@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_rows_are_well_formed(benchmarks: dict, name: str) -> None:
    rows = benchmarks[name]
    assert len({r["id"] for r in rows}) == len(rows), "ids must be unique"
    for r in rows:
        assert {"id", "question", "reference", "source"} <= set(r)
        assert all(isinstance(r[k], str) for k in ("id", "question", "reference", "source"))
        assert r["question"].strip() and r["reference"].strip(), r["id"]
        assert r["source"] == name
        assert ("solution" in r) == (name in WITH_SOLUTION)


@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_references_carry_no_latex_debris(benchmarks: dict, name: str) -> None:
    bad = [
        (r["id"], r["reference"])
        for r in benchmarks[name]
        if "\\noindent" in r["reference"]
        or "\\end{problem}" in r["reference"]
        or r["reference"].rstrip().endswith("\\\\")
        or UNESCAPED_DOLLAR.search(r["reference"])
        or r["reference"] != r["reference"].strip()
    ]
    assert not bad, bad[:10]


def test_odyssey_questions_carry_no_debris(benchmarks: dict) -> None:
    for r in benchmarks["odyssey"]:
        assert "\\noindent" not in r["question"] and "\\end{problem}" not in r["question"], r["id"]
        assert r["question"] == r["question"].strip()


def test_known_references(benchmarks: dict) -> None:
    by_id = {name: {r["id"]: r for r in rows} for name, rows in benchmarks.items()}
    assert by_id["gsm8k"]["gsm8k-test-0"]["reference"] == "18"
    assert by_id["gsm8k"]["gsm8k-test-0"]["solution"].endswith("#### 18")
    assert all("," not in r["reference"] for r in benchmarks["gsm8k_train"])  # "1,080" -> "1080"
    svamp = by_id["svamp"]["chal-777"]
    assert svamp["reference"] == "145"
    assert svamp["question"].endswith("groups How big is each group of bananas?")
    assert by_id["math500"]["test/precalculus/807.json"]["reference"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    olymp = by_id["olympiadbench"]
    assert olymp["1664"]["reference"] == "69, 84"  # "$69$,$84$"
    assert olymp["2349"]["reference"] == "221, 8"  # "$221,$8$"
    assert olymp["1970"]["reference"] == "(-\\infty, 0) \\cup\\{1\\}"  # "$...$."
    assert olymp["2419"]["reference"] == "166" and olymp["2419"]["unit"] == "cm^2"
    # the fields the verifier reads, as the file gives them
    assert (olymp["1664"]["answer_type"], olymp["1664"]["is_multiple_answer"]) == ("Numerical", True)
    assert (olymp["2419"]["answer_type"], olymp["2419"]["is_multiple_answer"]) == ("Numerical", False)
    assert sum(r["is_multiple_answer"] is True for r in olymp.values()) == 94
    first, second = olymp["1618"]["solution"].split("\n\nSet again $s=x+y$.")  # two solutions, joined
    assert first.startswith("Up to a swap") and second
    ody = by_id["odyssey"]
    assert ody["Problem_1"]["reference"] == "16"  # "16\\\\\n\\noindent"
    assert ody["Problem_104"]["reference"] == "\\frac{\\sqrt{30}}{12}"  # "\\frac{..}{12} $.\n\n\\noindent"
    assert ody["Problem_295"]["reference"] == "2"  # "$2\n$ \\\\\n\\noindent"
    assert ody["Problem_300"]["reference"] == "-1"  # "$-1.$ \\\\\n\\noindent"
    assert ody["Problem_213"]["reference"] == "\\$ 9681.72"  # an escaped dollar sign is content
    assert ody["Problem_305"]["reference"] == "\\begin{pmatrix} 9 & 0 \\\\ 0 & 9 \\end{pmatrix}"
    assert ody["Problem_151"]["question"].endswith("D) 62 m")


def test_limit_and_unknown_name() -> None:
    assert len(load_benchmark("math500", limit=3)) == 3
    with pytest.raises(ValueError, match="valid names: .*gsm8k.*odyssey"):
        load_benchmark("gsm9k")


def test_gsm8k_model_solutions(benchmarks: dict) -> None:
    rows = data.load_gsm8k_model_solutions()
    assert len(rows) == 5276  # 1,319 problems x 4 models
    assert len({r["id"] for r in rows}) == len(rows)
    assert {"id", "question", "reference", "completion", "label"} <= set(rows[0])
    assert all(isinstance(r["label"], bool) for r in rows)
    assert 0 < sum(r["label"] for r in rows) < len(rows)
    assert all(r["reference"].strip() and r["question"].strip() and r["completion"] for r in rows)
    assert rows[0]["id"] == "gsm8k-sol-0-6b_finetuning" and rows[0]["reference"] == "18"
    # problem i is GSM8K test row i: same question, same reference (thousands separators removed)
    test = benchmarks["gsm8k"]
    for r in rows:
        i = int(r["id"].split("-")[2])
        assert (r["question"], r["reference"]) == (test[i]["question"], test[i]["reference"]), r["id"]
    assert data.load_gsm8k_model_solutions(limit=6) == rows[:6]


def test_cleaning_helpers() -> None:
    assert data.gsm8k_reference("so 1,000 + 2\n#### 1,234,567") == "1234567"
    assert data.gsm8k_reference("no marker") == ""
    assert [format_number(x) for x in (145.0, 2.5, -3.0, 1e-05, 7)] == [
        "145",
        "2.5",
        "-3",
        "0.00001",
        "7",
    ]
    assert data.clean_latex_answer("$\\frac{8}{3}$\\\\\n\\noindent") == "\\frac{8}{3}"
    assert data.clean_latex_answer("$\\alpha=1$ and $\\beta=4$. \\\\\n\\noindent") == "\\alpha=1 and \\beta=4"
    assert data.clean_latex_answer("0.42. \\\\ \n\n\t\\noindent") == "0.42"
    assert data.semicolon_matrix_to_latex("[1,2]") == "[1,2]"


# --------------------------------------------------------------------------- data directory


def test_data_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert data.resolve_data_dir(tmp_path) == tmp_path
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert data.resolve_data_dir() == tmp_path
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "nope"))
    with pytest.raises(DataError, match="COOPER_DATA_DIR"):
        data.resolve_data_dir()
    with pytest.raises(DataError, match="not a directory"):
        data.resolve_data_dir(tmp_path / "nope")


def test_data_dir_not_found_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "__file__", str(tmp_path / "pkg" / "data.py"))
    with pytest.raises(DataError, match=rf"shared/data in {re.escape(str(tmp_path))}.*COOPER_DATA_DIR"):
        data.resolve_data_dir()


def test_data_dir_found_by_walking_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "repo" / "sub").mkdir(parents=True)
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path / "repo" / "sub")
    assert data.resolve_data_dir() == (tmp_path / "shared" / "data").resolve()


# --------------------------------------------------------------------------- the generic loader


def _write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _write_parquet(path: Path, columns: dict[str, list]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)
    return path


def test_generic_jsonl_with_renames_and_ids(tmp_path: Path) -> None:
    rows_in = [
        {"problem": "1+1?", "reference_answer": 2},
        {"problem": "2+2?", "reference_answer": "4", "id": "x"},
    ]
    path = _write_jsonl(tmp_path / "mine.jsonl", [json.dumps(r) for r in rows_in])
    rows = load_rows(path, columns={"problem": "question", "reference_answer": "reference"})
    assert rows == [
        {"id": "mine-0", "question": "1+1?", "reference": "2", "source": "mine"},
        {"id": "x", "question": "2+2?", "reference": "4", "source": "mine"},
    ]
    assert (
        load_rows(path, columns={"problem": "question", "reference_answer": "reference"}, source="s")[0][
            "source"
        ]
        == "s"
    )


def test_generic_parquet_and_json_array(tmp_path: Path) -> None:
    pq_path = _write_parquet(tmp_path / "p.parquet", {"question": ["a", "b"], "reference": ["1", "2.5"]})
    js_path = tmp_path / "j.json"
    js_path.write_text(json.dumps([{"question": "c", "reference": 3.0}]), encoding="utf-8")
    rows = load_rows([pq_path, js_path])
    assert [(r["id"], r["reference"]) for r in rows] == [("p-0", "1"), ("p-1", "2.5"), ("j-0", "3")]


def test_generic_parquet_renames(tmp_path: Path) -> None:
    path = _write_parquet(tmp_path / "p.parquet", {"problem": ["a"], "answer": ["7"]})
    rows = load_rows(path, columns={"problem": "question", "answer": "reference"})
    assert rows[0]["question"] == "a" and rows[0]["reference"] == "7"


def test_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "data.jsonl", ['{"question": "a", "reference": "1"}', "", "{not json"])
    with pytest.raises(DataError, match=r"data\.jsonl line 3: invalid JSON"):
        load_rows(path)


def test_missing_field_names_line_and_field(tmp_path: Path) -> None:
    lines = [json.dumps({"question": "q", "reference": "1"})] * 4 + [json.dumps({"question": "q"})]
    path = _write_jsonl(tmp_path / "data.jsonl", lines)
    with pytest.raises(DataError, match=r"data\.jsonl line 5: missing field 'reference'"):
        load_rows(path)
    with pytest.raises(DataError, match=r"line 5: missing field 'answer' \(read as 'reference'\)"):
        load_rows(path, columns={"answer": "reference"})


@pytest.mark.parametrize("value", [None, ["1"], {"a": 1}, True])
def test_non_string_field_is_rejected(tmp_path: Path, value: object) -> None:
    path = _write_jsonl(
        tmp_path / "data.jsonl",
        [json.dumps({"question": "q", "reference": "1"}), json.dumps({"question": "q", "reference": value})],
    )
    with pytest.raises(DataError, match=r"data\.jsonl line 2: field 'reference' must be a string or number"):
        load_rows(path)


def test_numeric_question_is_rejected_and_empty_reference_too(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "a.jsonl", [json.dumps({"question": 5, "reference": "1"})])
    with pytest.raises(DataError, match=r"line 1: field 'question' must be a string, got int"):
        load_rows(path)
    path = _write_jsonl(tmp_path / "b.jsonl", [json.dumps({"question": "q", "reference": "  "})])
    with pytest.raises(DataError, match=r"line 1: field 'reference' is empty"):
        load_rows(path)


def test_non_object_line_is_rejected(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "data.jsonl", ["[1, 2]"])
    with pytest.raises(DataError, match=r"line 1: expected a JSON object, got list"):
        load_rows(path)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=r"empty\.jsonl: file is empty"):
        load_rows(path)


def test_missing_file_and_bad_extension(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.jsonl: file does not exist"):
        load_rows(tmp_path / "nope.jsonl")
    csv = tmp_path / "data.csv"
    csv.write_text("question,reference\nq,1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"data\.csv: unsupported file type '\.csv'"):
        load_rows(csv)
    with pytest.raises(DataError, match="no data files"):
        load_rows([])


def test_parquet_with_unexpected_schema(tmp_path: Path) -> None:
    path = _write_parquet(tmp_path / "p.parquet", {"question": ["a"], "answer": ["1"]})
    with pytest.raises(DataError, match=r"p\.parquet: missing column 'reference'"):
        load_rows(path)


def test_parquet_null_names_row(tmp_path: Path) -> None:
    path = _write_parquet(tmp_path / "p.parquet", {"question": ["a", "b"], "reference": ["1", None]})
    with pytest.raises(
        DataError, match=r"p\.parquet row 2: field 'reference' must be a string or number, got null"
    ):
        load_rows(path)


def test_not_a_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(DataError, match=r"p\.parquet: not a readable parquet file"):
        load_rows(path)


def test_benchmark_loader_reports_malformed_file(tmp_path: Path) -> None:
    (tmp_path / "gsm8k").mkdir()
    _write_jsonl(tmp_path / "gsm8k" / "test.jsonl", [json.dumps({"question": "q", "answer": "no marker"})])
    with pytest.raises(DataError, match=r"test\.jsonl line 1: field 'answer' is empty"):
        load_benchmark("gsm8k", data_dir=tmp_path)


# --------------------------------------------------------------------------- against the verifier


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_every_reference_verifies_against_itself(benchmarks: dict, name: str) -> None:
    """Each reference is judged equal to itself, both bare and as a completion's boxed final answer."""
    from cooper.verify.pool import is_correct_batch

    refs = [r["reference"] for r in benchmarks[name]]
    boxed = [f"The final answer is $\\boxed{{{ref}}}$." for ref in refs]
    for responses, allowed in ((boxed, set()), (refs, PROSE_REFERENCES)):
        ok = is_correct_batch(responses, refs)
        misses = {r["id"] for r, good in zip(benchmarks[name], ok, strict=True) if not good}
        assert misses <= allowed, sorted(misses)[:20]


# A reference that is a sentence ("f(x)=ax+b, where b is an arbitrary integer, ...") or offers
# alternatives ("A or B") is not taken as a bare answer (an unmarked "5 or 6" is a hedge); it verifies
# only when marked as the final answer (the boxed form above).
PROSE_REFERENCES = {"1965", "Problem_333"}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "floor"), [("gsm8k", 0.99), ("math500", 0.99), ("olympiadbench", 0.0)])
def test_gold_solutions_verify_against_reference(benchmarks: dict, name: str, floor: float) -> None:
    """Share of gold solution texts whose final answer the verifier matches to the reference.

    GSM8K's verifier extracts the ``#### N`` line; MATH500's the last ``\\boxed{}``. OlympiadBench
    solutions rarely mark their answer, so its share is reported, not asserted.
    """
    from cooper.verify.pool import is_correct_batch

    rows = benchmarks[name]
    ok = is_correct_batch([r["solution"] for r in rows], [r["reference"] for r in rows])
    share = sum(ok) / len(ok)
    misses = [(r["id"], r["reference"]) for r, good in zip(rows, ok, strict=True) if not good]
    print(
        f"\n{name}: {share:.4f} of gold solutions verify ({len(misses)} misses); first misses: {misses[:10]}"
    )
    assert share >= floor, misses[:20]


def test_jsonl_line_numbers_ignore_unicode_line_separators(tmp_path: Path) -> None:
    good = json.dumps({"question": "a\u2028b\x85c", "reference": "1"}, ensure_ascii=False)
    path = _write_jsonl(tmp_path / "data.jsonl", [good, good, '{"question": "q"'])
    with pytest.raises(DataError, match=r"line 3: invalid JSON"):
        load_rows(path)
    path = _write_jsonl(tmp_path / "ok.json", [good, good])  # JSON Lines under a .json name
    assert [r["question"] for r in load_rows(path)] == ["a\u2028b\x85c"] * 2
