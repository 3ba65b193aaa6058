"""The ``cooper`` command line: parsers are declared in ``cooper.cli`` and each command's module is imported
only when that command runs, so ``cooper --help`` and ``cooper COMMAND --help`` stay light."""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys

import pytest

from cooper.cli import build_parser, main, resolve_command

HEAVY = ("torch", "transformers", "trl", "datasets", "math_verify")


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _imported_heavy(code: str) -> str:
    """Run ``code`` in a fresh interpreter; the sorted list of the heavy modules it imported, as printed."""
    report = f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run(
        [sys.executable, "-c", f"import sys\n{code}\n{report}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def test_build_parser_imports_nothing_heavy():
    assert _imported_heavy("from cooper.cli import build_parser; build_parser()") == "[]"


@pytest.mark.parametrize(
    "argv", [["--help"], ["train", "--help"], ["eval", "--help"], ["annotate", "--help"]]
)
def test_help_imports_nothing_heavy(argv):
    code = (
        "import contextlib, io\nfrom cooper.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    try:\n        main({argv!r})\n    except SystemExit as e:\n        assert e.code == 0, e.code"
    )
    assert _imported_heavy(code) == "[]"


def test_every_subcommand_is_listed():
    assert list(_subcommands()) == [
        "verify",
        "demo",
        "train-rm",
        "eval-rm",
        "train",
        "plot",
        "eval",
        "annotate",
    ]


@pytest.mark.parametrize("command", [None, *_subcommands()])
def test_every_help_exits_0(command, capsys):
    argv = ["--help"] if command is None else [command, "--help"]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    assert "usage: cooper" in capsys.readouterr().out


@pytest.mark.parametrize("command", [c for c in _subcommands() if c != "verify"])
def test_every_command_target_resolves_to_a_run_function(command):
    parser = _subcommands()[command]
    target = parser.get_default("command_target")
    assert isinstance(target, str) and ":" in target, target
    func = resolve_command(target)
    assert callable(func), target
    assert list(inspect.signature(func).parameters) == ["args"], target


def test_train_accepts_overrides_and_others_do_not(capsys):
    assert _subcommands()["train"].get_default("accepts_overrides") is True
    with pytest.raises(SystemExit) as e:
        main(["eval", "--model", "m", "--grpo.max_steps", "3"])
    assert e.value.code == 2
    assert "unrecognized arguments: --grpo.max_steps 3" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


def test_bad_input_errors_share_one_base_and_keep_their_builtin_ones():
    """cooper.cli.main maps BadInput to exit 2; each error still is what existing except clauses catch."""
    from cooper.data.rows import DataError
    from cooper.eval.run import EvalError
    from cooper.rl.config import ConfigError
    from cooper.utils.endpoints import EndpointError
    from cooper.utils.errors import BAD_INPUT_ERRORS, EXIT_BAD_INPUT, BadInput
    from cooper.utils.models import ModelDirError, ModelLoadError
    from cooper.verify.registry import VerifierError

    assert EXIT_BAD_INPUT == 2 and BadInput in BAD_INPUT_ERRORS
    for error, builtin in [
        (DataError, ValueError),
        (ConfigError, ValueError),
        (EvalError, ValueError),
        (ModelLoadError, RuntimeError),
        (ModelDirError, FileNotFoundError),
        (EndpointError, RuntimeError),
        (VerifierError, ValueError),
    ]:
        assert issubclass(error, BadInput) and issubclass(error, builtin), error
