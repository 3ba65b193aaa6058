"""Dirty data through the whole command line: every pipeline that reads rows (``cooper train``,
``train-rm``, ``annotate``, ``eval``) stops on a bad file with exit code 2 and a message naming the file, the
line/row and the field, before any model is loaded or trained, and leaves its output directory empty.

The loaders themselves are unit-tested in ``tests/test_data.py``; here each bad file goes through
``cooper.cli.main`` exactly as a user would run it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.helpers_cli import run_cli

GOOD = {"question": "What is 1+1?", "reference": "2", "completion": "1+1 = \\boxed{2}", "label": 1}


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _rows(*rows: dict) -> list[str]:
    return [json.dumps(r) for r in rows]


def _good(i: int, **change: object) -> dict:
    row = {"id": f"r{i}", **GOOD, **change}
    return {k: v for k, v in row.items() if v is not None}


# name -> (make the file in a directory, text the error must contain besides the file name)
BadFile = Callable[[Path], Path]


def _malformed(d: Path) -> Path:
    return _jsonl(d / "malformed.jsonl", [*_rows(_good(0), _good(1)), '{"id": "r2", "question": "3+4?", '])


def _missing_column(d: Path) -> Path:
    return _jsonl(d / "missing.jsonl", _rows(_good(0), _good(1), _good(2, reference=None)))


def _wrong_type(d: Path) -> Path:
    return _jsonl(d / "wrongtype.jsonl", _rows(_good(0), _good(1, question=["not", "text"])))


def _empty(d: Path) -> Path:
    path = d / "empty.jsonl"
    path.write_text("", encoding="utf-8")
    return path


def _blank_lines_only(d: Path) -> Path:
    return _jsonl(d / "blank.jsonl", ["", "   ", ""])


def _parquet_schema(d: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = d / "schema.parquet"
    pq.write_table(pa.table({"prompt": ["1+1?"], "answer_text": ["2"], "score": [0.5]}), path)
    return path


def _not_parquet(d: Path) -> Path:
    path = d / "garbage.parquet"
    path.write_bytes(b"PAR1 this is not parquet at all \x00\x01")
    return path


def _duplicate_ids(d: Path) -> Path:
    return _jsonl(d / "dups.jsonl", _rows(_good(0), _good(1), _good(0)))


BAD_FILES: dict[str, tuple[BadFile, list[str]]] = {
    "malformed_jsonl_line": (_malformed, ["line 3", "invalid JSON"]),
    "missing_column": (_missing_column, ["line 3", "missing field 'reference'"]),
    "wrong_type": (_wrong_type, ["line 2", "'question'", "must be", "got list"]),
    "empty_file": (_empty, ["file is empty"]),
    "only_blank_lines": (_blank_lines_only, ["file is empty"]),
    "parquet_unexpected_schema": (_parquet_schema, ["missing column 'question'", "prompt"]),
    "not_a_parquet_file": (_not_parquet, ["not a readable parquet file"]),
}


def _train(data: Path, out: Path, tmp: Path) -> list[str]:
    cfg = tmp / "train.yaml"
    cfg.write_text(
        json.dumps(  # JSON is YAML
            {
                "output_dir": str(out),
                "data": {"files": [str(data)]},
                "reward": {"mode": "rule", "rm": None},
                "monitor": {"plot": False},
                "grpo": {"max_steps": 1},
            }
        )
    )
    return ["train", str(cfg)]


def _train_rm(data: Path, out: Path, tmp: Path) -> list[str]:
    return ["train-rm", "--data", str(data), "--out", str(out), "--model", "tiny"]


def _annotate(data: Path, out: Path, tmp: Path) -> list[str]:
    # port 9 (discard) is never reached: the data is checked before the judge's preflight
    args = ["annotate", "--data", str(data), "--out", str(out)]
    return [*args, "--judge-url", "http://127.0.0.1:9/v1", "--judge-model", "fake"]


def _eval(data: Path, out: Path, tmp: Path) -> list[str]:
    # the model directory does not exist: the data must be rejected before the model is even looked at
    return ["eval", "--model", str(tmp / "no-model"), "--data", str(data), "--out", str(out), "--n", "1"]


COMMANDS = {"train": _train, "train-rm": _train_rm, "annotate": _annotate, "eval": _eval}


def _run(argv: list[str], caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    return run_cli(argv, caplog, capsys, level=logging.ERROR)


def _assert_nothing_written(out: Path) -> None:
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else []
    assert left == [], f"output directory holds files after a data error: {left}"


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_file_is_rejected_before_any_work(command, kind, tmp_path, caplog, capsys):
    make, expected = BAD_FILES[kind]
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data = make(data_dir)
    out = tmp_path / "out"
    rc, text = _run(COMMANDS[command](data, out, tmp_path), caplog, capsys)
    assert rc == 2, f"{command} on {kind}: exit code {rc}\n{text}"
    assert str(data) in text, f"the message does not name the file:\n{text}"
    for part in expected:
        assert part in text, f"{command} on {kind}: {part!r} missing from the message:\n{text}"
    assert "Traceback" not in text
    _assert_nothing_written(out)


def test_a_bad_second_file_is_named_and_nothing_is_written(tmp_path, caplog, capsys):
    """The first file is fine; the error must point into the second one, at its own line."""
    good = _jsonl(tmp_path / "good.jsonl", _rows(_good(0), _good(1)))
    bad = _jsonl(tmp_path / "bad.jsonl", _rows(_good(2), _good(3, completion=7.5)))
    out = tmp_path / "out"
    rc, text = _run(["train-rm", "--data", str(good), str(bad), "--out", str(out)], caplog, capsys)
    assert rc == 2
    assert f"{bad} line 2" in text and "'completion'" in text and str(good) not in text
    _assert_nothing_written(out)


def test_renamed_column_is_named_as_the_user_wrote_it(tmp_path, caplog, capsys):
    """With --column problem=question, a missing 'problem' is reported under the user's name."""
    data = _jsonl(
        tmp_path / "renamed.jsonl",
        _rows(
            {"problem": "1+1?", "reference": "2", "completion": "2"}, {"reference": "3", "completion": "3"}
        ),
    )
    out = tmp_path / "out"
    argv = _annotate(data, out, tmp_path) + ["--column", "problem=question"]
    rc, text = _run(argv, caplog, capsys)
    assert rc == 2
    assert f"{data} line 2" in text and "'problem' (read as 'question')" in text
    _assert_nothing_written(out)


@pytest.mark.parametrize("command", ["annotate", "eval"])
def test_duplicate_ids_are_rejected(command, tmp_path, caplog, capsys):
    data = _duplicate_ids(tmp_path)
    out = tmp_path / "out"
    rc, text = _run(COMMANDS[command](data, out, tmp_path), caplog, capsys)
    assert rc == 2, text
    assert "'r0'" in text and ("duplicate" in text or "more than once" in text), text
    if command == "annotate":  # annotate names where both copies are
        assert f"{data} line 3" in text and f"{data} line 1" in text
    _assert_nothing_written(out)


def test_train_rejects_duplicate_ids(tmp_path):
    from cooper.data.rows import DataError
    from cooper.rl.build import load_prompts
    from cooper.rl.config import load_config

    data = _jsonl(tmp_path / "dups.jsonl", _rows(_good(0), _good(1), _good(0, question="What is 5+5?")))
    cfg = load_config(None, [], output_dir=str(tmp_path / "out"), data={"files": [str(data)]})
    with pytest.raises(DataError, match=r"line 3: duplicate id 'r0'"):
        load_prompts(cfg)
