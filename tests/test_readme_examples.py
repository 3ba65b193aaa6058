"""Every ``cooper ...`` command in the README's bash blocks runs as written.

The commands are read from README.md itself, in order (later ones use what earlier ones wrote, as a reader
running them would), from a fresh working directory that holds only ``configs/`` and the input files the
examples name. Only their size is changed: each kind of command gets flags that make it small (appended, so
they win over the README's values). The judge URL points at a local fake judge. A new example whose input
file this test does not know fails here, so the README cannot gain a command nobody ran.

The commands under "Reproduce the paper (GPU)" need a 1.5B model downloaded beforehand; they must get as far
as the missing model directory and stop there with exit 2 (so their config and flags are valid).
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from tests.helpers_endpoint import FakeEndpoint, Reply, chat_body

from cooper.cli import main

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
GPU_SECTION = "Reproduce the paper (GPU)"
# flags appended to make each kind of command small
SMALL = {
    "train": ["--grpo.max_steps", "2", "--grpo.save_steps", "2", "--monitor.plot", "false"],
    "eval": ["--limit", "2"],
    "train-rm": [],
    "eval-rm": [],
    "annotate": [],
    "verify": [],
    "plot": [],
}
ROWS = [("What is 2+3?", "5"), ("What is 4*4?", "16"), ("What is 10-7?", "3"), ("What is 9/3?", "3")]


def readme_commands(text: str) -> list[tuple[str, list[str]]]:
    """``(section heading, argv)`` of each ``cooper`` command in the README's bash blocks, in order;
    backslash continuations joined and ``#`` comments dropped."""
    found: list[tuple[str, list[str]]] = []
    heading, in_block, pending = "", False, ""
    for line in text.splitlines():
        if line.startswith("```"):
            in_block = line.strip() == "```bash" and not in_block
            continue
        if not in_block:
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        argv = shlex.split(pending, comments=True)
        pending = ""
        if argv and argv[0] == "cooper":
            found.append((heading, argv[1:]))
    return found


def _inputs(cwd: Path) -> dict[str, Any]:
    """The input files the README's examples name, made small."""
    good = [
        {"question": q, "reference_answer": a, "completion": f"So it is \\boxed{{{a}}}.", "label": 1}
        for q, a in ROWS
    ]
    bad = [
        {"question": q, "reference_answer": a, "completion": "So it is \\boxed{7}.", "label": 0}
        for q, a in ROWS
    ]
    return {
        "annotated.jsonl": good + bad,
        "verifybench.jsonl": [
            {
                "question": r["question"],
                "answer": r["reference_answer"],
                "completion": r["completion"],
                "gold_correct": r["label"],
            }
            for r in good + bad
        ],
        "rows.jsonl": [{"question": q, "reference": a, "completion": f"The answer is {a}."} for q, a in ROWS],
    }


def readme_python_files(text: str) -> dict[str, str]:
    """The README's ``python`` blocks that open with ``# name.py`` (a file the examples use), by name."""
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)
    return {m.group(1): b for b in blocks if (m := re.match(r"# ([\w/]+\.py)\b", b))}


def _judge(n: int, body: dict[str, Any]) -> Reply:
    return Reply(body=chat_body("The answers match.\nFinal verdict: Yes"))


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``cooper demo --quick`` output, for the README's commands on the demo's models."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    return out


def test_the_readme_has_examples_for_every_pipeline_command():
    text = README.read_text(encoding="utf-8")
    kinds = {argv[0] for _, argv in readme_commands(text)}
    assert {"verify", "train-rm", "eval-rm", "annotate", "train", "eval"} <= kinds
    # the user-verifier example is a command that runs, with the file it names
    verifiers = [a for _, argv in readme_commands(text) for a in argv if a.endswith(".py:check")]
    assert verifiers and verifiers[0].split(":")[0] in readme_python_files(text)


@pytest.mark.slow
def test_every_readme_example_runs_as_written(tmp_path, monkeypatch, caplog, capsys, quick_demo):
    cwd = tmp_path / "work"
    cwd.mkdir()
    (cwd / "configs").symlink_to(REPO / "configs")
    known = _inputs(cwd)
    for name, code in readme_python_files(README.read_text(encoding="utf-8")).items():
        (cwd / name).write_text(code, encoding="utf-8")  # my_verifier.py
    monkeypatch.chdir(cwd)
    commands = readme_commands(README.read_text(encoding="utf-8"))
    with FakeEndpoint(_judge) as judge:
        for heading, argv in commands:
            argv = [a.replace("http://127.0.0.1:8000/v1", judge.url) for a in argv]
            argv = [a.replace("docs/demo/", f"{quick_demo}/") for a in argv]
            for flag in ("--data", "--eval-data"):  # the example's input files, made here
                for name in argv[argv.index(flag) + 1 :] if flag in argv else []:
                    if name.startswith("-"):
                        break
                    if not Path(name).exists():
                        assert name in known, (
                            f"README example `cooper {' '.join(argv)}` reads {name}, unknown here"
                        )
                        Path(name).write_text(
                            "".join(json.dumps(r) + "\n" for r in known[name]), encoding="utf-8"
                        )
            full = [*argv, *SMALL[argv[0]]]
            caplog.clear()
            with caplog.at_level(logging.INFO):
                rc = main(full)
            text = caplog.text + "".join(capsys.readouterr())
            shown = "cooper " + " ".join(argv)
            if heading == GPU_SECTION:
                assert rc == 2, f"{shown}: exit {rc}\n{text[-3000:]}"
                assert re.search(
                    r"directory not found: .*(models/Qwen2\.5-1\.5B-Instruct|runs/paper_cooper/policy)", text
                ), f"{shown} stopped for another reason than the model it needs:\n{text[-3000:]}"
            else:
                assert rc == 0, f"{shown}: exit {rc}\n{text[-3000:]}"
    assert any(h == GPU_SECTION for h, _ in commands)
