"""The ``cooper`` command: one subcommand per pipeline stage.

Each pipeline module defines ``register(subparsers)``, which adds its parser and sets ``func``; the
modules keep their heavy imports inside functions, so ``cooper --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import sys

log = logging.getLogger("cooper")

# Modules that add subcommands, in the order `cooper --help` lists them.
SUBCOMMAND_MODULES: list[str] = [
    "cooper.demo.run",
    "cooper.rm_train",
    "cooper.train",
    "cooper.evaluate",
    "cooper.annotate",
]


def _reference_answer(value: str) -> str:
    """``--reference``: any non-blank text (an empty reference would make every response 'wrong')."""
    if not value.strip():
        raise argparse.ArgumentTypeError(f"is empty ({value!r}): give the reference answer, e.g. -r 18")
    return value


def _timeout_seconds(value: str) -> float:
    """``--timeout``: a finite number of seconds > 0."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {value!r}")
    return seconds


def _cmd_verify(args: argparse.Namespace) -> int:
    from cooper.verify import explain

    response = args.response
    if response == "-":
        response = sys.stdin.read()
    result = explain(response, args.reference, timeout_s=args.timeout)
    if args.json:
        print(json.dumps(result))
    else:
        verdict = "CORRECT" if result["correct"] else "WRONG"
        print(f"verdict:            {verdict}")
        print(f"extracted answer:   {result['extracted_answer']!r}")
        print(f"reference answer:   {result['reference_answer']!r}")
        if result.get("note"):
            print(f"note:               {result['note']}")
    return 0 if result["correct"] else 1


def _register_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="check one response against a reference with the rule-based verifier",
        description="Rule-based verdict (math-verify under a hardened wrapper). Exit codes: 0 = correct, "
        "1 = wrong, 2 = bad input (an empty --reference, a --timeout that is not a positive number).",
    )
    p.add_argument(
        "--reference",
        "-r",
        required=True,
        type=_reference_answer,
        help="reference answer, e.g. '18' or '\\frac{1}{3}'",
    )
    p.add_argument("--response", "-c", required=True, help="the completion text, or '-' to read stdin")
    p.add_argument(
        "--timeout", type=_timeout_seconds, default=5.0, help="seconds (> 0) before the verdict is False"
    )
    p.add_argument("--json", action="store_true", help="print the verdict as one JSON object")
    p.set_defaults(func=_cmd_verify)


def build_parser() -> argparse.ArgumentParser:
    from cooper import __version__

    parser = argparse.ArgumentParser(
        prog="cooper",
        description="Cooper: GRPO with a reward model that is co-optimised with the policy.",
    )
    parser.add_argument("--version", action="version", version=f"cooper {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _register_verify(sub)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from cooper.data import DataError

    try:
        return int(args.func(args) or 0)
    except (DataError, FileNotFoundError, ValueError) as e:  # bad input: say what and where, no traceback
        if args.verbose:
            raise
        log.error("%s: %s", type(e).__name__, e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
