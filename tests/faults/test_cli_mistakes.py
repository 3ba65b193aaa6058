"""Common user mistakes through ``cooper.cli.main``, as a user would make them: each one ends with the
right exit code and one clear message naming the file, flag or value, without a traceback, and writes
nothing when it is an error.

Covered: ``cooper eval``'s default ``--max-new-tokens`` on a small-context model and ``--out`` naming a
file; ``cooper plot`` on a torn, broken or empty ``metrics.jsonl``; data files that start with a UTF-8
BOM; ``cooper verify`` with an empty reference or a bad ``--timeout``; ``cooper demo --help``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.helpers_cli import run_cli

from cooper.utils.tiny import TinyPaths


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


def _run(
    argv: list[str], caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """Exit code and everything the user sees (log, stdout, stderr); argparse errors exit via SystemExit."""
    rc, text = run_cli(argv, caplog, capsys)
    assert "Traceback" not in text
    return rc, text


def _files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


# ------------------------------------------------------------------------------------------- cooper eval


@pytest.mark.usefixtures("one_torch_thread")
def test_eval_default_max_new_tokens_fits_a_small_context(
    tiny_paths: TinyPaths,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's command on the tiny policy (context 1,024): the default 2048 is capped to half the
    context, logged and recorded, and --resume with the same default reuses the samples."""
    out = tmp_path / "eval"
    argv = ["eval", "--model", str(tiny_paths.policy_dir), "--benchmarks", "gsm8k,svamp", "--limit", "1"]
    argv += ["--n", "1", "--out", str(out), "--device", "cpu"]
    rc, text = _run(argv, caplog, capsys)
    assert rc == 0, text
    assert "max_new_tokens 512" in text and "1024" in text
    saved = json.loads((out / "results.json").read_text())
    assert saved["protocol"]["max_new_tokens"] == 512 and saved["status"] == "complete"
    assert all(s["completion_tokens"] <= 512 for s in map(json.loads, (out / "samples.jsonl").open()))
    rc, text = _run([*argv, "--resume"], caplog, capsys)
    assert rc == 0, text
    assert "1 samples reused from samples.jsonl, 0 to generate" in text


def test_eval_explicit_max_new_tokens_that_leaves_no_room_is_an_error(
    tiny_paths: TinyPaths,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "eval"
    argv = ["eval", "--model", str(tiny_paths.policy_dir), "--benchmarks", "gsm8k", "--limit", "1"]
    rc, text = _run([*argv, "--max-new-tokens", "1024", "--out", str(out), "--device", "cpu"], caplog, capsys)
    assert rc == 2
    assert "max_new_tokens=1024 leaves no room for a prompt" in text and "1024 tokens" in text
    assert _files_under(out) == []


@pytest.mark.parametrize("where", ["out_is_a_file", "parent_is_a_file"])
def test_eval_out_that_is_a_file_fails_before_the_model_is_loaded(
    where: str,
    tiny_paths: TinyPaths,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import cooper.eval.run

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(cooper.eval.run, "load_engine", no_loading)
    existing = tmp_path / "results.txt"
    existing.write_text("keep me\n")
    out = existing if where == "out_is_a_file" else existing / "eval"
    argv = ["eval", "--model", str(tiny_paths.policy_dir), "--benchmarks", "gsm8k", "--limit", "1"]
    rc, text = _run([*argv, "--out", str(out)], caplog, capsys)
    assert rc == 2, text
    assert "--out" in text and str(out) in text and "is a file" in text
    assert existing.read_text() == "keep me\n" and _files_under(tmp_path) == ["results.txt"]


# ------------------------------------------------------------------------------------------- cooper plot


def _metrics(run: Path, text: str) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    path = run / "metrics.jsonl"
    path.write_text(text, encoding="utf-8")
    return path


def _row(step: int) -> str:
    return json.dumps({"step": step, "reward/rule_accuracy": 0.1 * step, "reward/rm_mean": 0.5}) + "\n"


def test_plot_skips_a_torn_last_line_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _metrics(tmp_path / "run", _row(1) + _row(2) + _row(3) + '{"step": 4, "rew')
    rc, text = _run(["plot", str(tmp_path / "run")], caplog, capsys)
    assert rc == 0, text
    assert f"{path} line 4" in text and "torn" in text
    assert _files_under(tmp_path / "run" / "plots") == ["reward_rm_mean.png", "reward_rule_accuracy.png"]


@pytest.mark.parametrize("torn", ['{"step": 2, "rew\n', '{"step": 2, "rew\n\n  \n'])
def test_plot_bad_line_in_the_middle_is_an_error_naming_file_and_line(
    torn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _metrics(tmp_path / "run", _row(1) + torn + _row(3))
    rc, text = _run(["plot", str(tmp_path / "run")], caplog, capsys)
    assert rc == 2, text
    assert f"{path} line 2: invalid JSON" in text
    assert _files_under(tmp_path / "run") == ["metrics.jsonl"]


@pytest.mark.parametrize("content", ["", "\n  \n\n"])
def test_plot_empty_metrics_is_an_error_naming_the_file(
    content: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _metrics(tmp_path / "run", content)
    rc, text = _run(["plot", str(tmp_path / "run")], caplog, capsys)
    assert rc == 2, text
    assert str(path) in text and "no metrics rows" in text and "wrote 0 plots" not in text
    assert _files_under(tmp_path / "run") == ["metrics.jsonl"]


def test_plot_without_any_plotted_metric_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _metrics(tmp_path / "run", json.dumps({"step": 1, "train/loss": 0.3}) + "\n")
    rc, text = _run(["plot", str(tmp_path / "run")], caplog, capsys)
    assert rc == 0, text
    assert "WARNING" in text and str(path) in text and "none of the plotted metrics" in text
    assert "reward/rule_accuracy" in text
    assert _files_under(tmp_path / "run") == ["metrics.jsonl"]


def test_plot_into_a_run_dir_whose_plots_is_a_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    _metrics(tmp_path / "run", _row(1))
    (tmp_path / "run" / "plots").write_text("not a folder")
    rc, text = _run(["plot", str(tmp_path / "run")], caplog, capsys)
    assert rc == 2, text
    assert str(tmp_path / "run" / "plots") in text and "is a file" in text
    assert (tmp_path / "run" / "plots").read_text() == "not a folder"


# ------------------------------------------------------------------------------------------- UTF-8 BOM


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_a_utf8_bom_is_accepted(suffix: str, tmp_path: Path) -> None:
    from cooper.data.rows import load_rows

    rows = [
        {"id": "a", "question": "1+1?", "reference": "2"},
        {"id": "b", "question": "2+2?", "reference": "4"},
    ]
    text = "".join(json.dumps(r) + "\n" for r in rows) if suffix == ".jsonl" else json.dumps(rows)
    path = tmp_path / f"excel{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    loaded = load_rows(path)
    assert [r["id"] for r in loaded] == ["a", "b"]
    assert list(loaded[0])[0] == "id" and not any(k.startswith("\ufeff") for r in loaded for k in r)


@pytest.mark.usefixtures("one_torch_thread")
def test_eval_reads_a_data_file_with_a_bom(
    tiny_paths: TinyPaths,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "mine.jsonl"
    rows = [{"id": f"q{i}", "question": f"What is {i} + {i}?", "reference": str(2 * i)} for i in range(2)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8-sig")
    assert data.read_bytes().startswith(b"\xef\xbb\xbf")
    out = tmp_path / "out"
    argv = ["eval", "--model", str(tiny_paths.policy_dir), "--data", str(data), "--n", "1"]
    rc, text = _run([*argv, "--max-new-tokens", "4", "--out", str(out), "--device", "cpu"], caplog, capsys)
    assert rc == 0, text
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert sorted(s["problem_id"] for s in samples) == ["q0", "q1"]


# ----------------------------------------------------------------------------------------- cooper verify


@pytest.mark.parametrize("reference", ["", "   ", "\n"])
def test_verify_empty_reference_is_bad_input(
    reference: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, text = _run(["verify", "-r", reference, "-c", "so \\boxed{18}"], caplog, capsys)
    assert rc == 2, text
    assert "--reference" in text and "empty" in text


@pytest.mark.parametrize("timeout", ["nan", "inf", "-inf", "0", "-1", "soon"])
def test_verify_bad_timeout_is_bad_input(
    timeout: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, text = _run(["verify", "-r", "18", "-c", "so \\boxed{18}", f"--timeout={timeout}"], caplog, capsys)
    assert rc == 2, text
    assert "--timeout" in text and repr(timeout) in text and "seconds" in text


NUMBER_FLAGS = [  # (command line without the flag, flag, bad values): numbers checked before any work
    (["train-rm", "--data", "x.jsonl", "--out", "o"], "--lr", ["nan", "inf", "0", "-1e-4"]),
    (["train-rm", "--data", "x.jsonl", "--out", "o"], "--epochs", ["nan", "0"]),
    (["train-rm", "--data", "x.jsonl", "--out", "o"], "--eval-split", ["nan", "1", "-0.1"]),
    (["train-rm", "--data", "x.jsonl", "--out", "o"], "--batch-size", ["0", "two"]),
    (["train-rm", "--data", "x.jsonl", "--out", "o"], "--seed", ["-1"]),
    (["eval", "--model", "m"], "--temperature", ["nan", "-0.5", "inf"]),
    (["eval", "--model", "m"], "--top-p", ["nan", "0", "1.5"]),
    (["eval", "--model", "m"], "--n", ["0"]),
    (["eval", "--model", "m"], "--limit", ["0", "-3"]),
    (["eval", "--model", "m"], "--max-new-tokens", ["0"]),
    (["annotate", "--data", "x.jsonl", "--out", "o"], "--verifier-timeout", ["nan", "0", "-inf"]),
    (["annotate", "--data", "x.jsonl", "--out", "o"], "--temperature", ["nan"]),
    (["annotate", "--data", "x.jsonl", "--out", "o"], "--samples", ["0"]),
]


@pytest.mark.parametrize(
    ("argv", "flag", "value"), [(a, f, v) for a, f, values in NUMBER_FLAGS for v in values]
)
def test_a_number_flag_out_of_range_is_bad_input_before_any_work(
    argv: list[str],
    flag: str,
    value: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """nan, inf, zero or negative where they make no sense: exit 2 naming the flag and the value, and no file
    written (argparse refuses it before the command's module is even imported)."""
    monkeypatch.chdir(tmp_path)
    rc, text = _run([*argv, f"{flag}={value}"], caplog, capsys)
    assert rc == 2, text
    assert flag in text and repr(value) in text, text
    assert list(tmp_path.iterdir()) == []


def test_verify_help_documents_the_exit_codes(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, text = _run(["verify", "--help"], caplog, capsys)
    assert rc == 0
    flat = " ".join(text.split())
    assert "0 = correct" in flat and "1 = wrong" in flat and "2 = bad input" in flat


# ------------------------------------------------------------------------------------------- cooper demo


def test_demo_help_gives_the_quick_runs_real_duration(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, text = _run(["demo", "--help"], caplog, capsys)
    assert rc == 0
    flat = " ".join(text.split())
    assert "few minutes" not in flat and "about 20-30 s on 2 CPU cores" in flat


@pytest.mark.parametrize(
    ("flag", "value", "minimum"),
    [("--first-seed", "-1", 0), ("--seeds", "0", 1), ("--workers", "two", 1)],
)
def test_demo_refuses_bad_counts_before_any_work(
    flag: str,
    value: str,
    minimum: int,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A seed below 0 used to pass the parser and fail in numpy's seeding, minutes into the run."""
    out = tmp_path / "demo"
    rc, text = _run(["demo", "--quick", "--out", str(out), flag, value], caplog, capsys)
    assert rc == 2
    assert flag in text and f"must be a whole number >= {minimum}, got '{value}'" in text
    assert _files_under(out) == []


@pytest.mark.parametrize(
    "case", ["out is a file", "out under a file", "readme missing", "readme without block"]
)
def test_demo_refuses_a_bad_out_or_readme_before_any_work(
    case: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out`` at a file crashed with a traceback; a README without the results block failed only at the end,
    after the whole run. Both are exit 2 naming the flag, before anything is built."""
    a_file = tmp_path / "taken"
    a_file.write_text("mine")
    readme = tmp_path / "README.md"
    readme.write_text("# no results block\n")
    argv, expected = {
        "out is a file": (["--out", a_file], "--out"),
        "out under a file": (["--out", a_file / "sub"], "--out"),
        "readme missing": (["--out", tmp_path / "d", "--readme", tmp_path / "nope.md"], "no such file"),
        "readme without block": (["--out", tmp_path / "d", "--readme", readme], "demo-results:start"),
    }[case]
    rc, text = _run(["demo", "--quick", *map(str, argv)], caplog, capsys)
    assert rc == 2, text
    assert expected in text and "Traceback" not in text, text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "taken"]
    assert a_file.read_text() == "mine" and readme.read_text() == "# no results block\n"
