"""The ``cooper`` command: one subcommand per pipeline stage.

Every subcommand's parser is declared here; its run function is named by ``command_target``
(``"module:function"``, a function ``(args) -> int``) and its module is imported only when that command
runs, so ``cooper --help`` and ``cooper COMMAND --help`` import no pipeline code (nor torch, transformers,
TRL). Defaults shown in the help come from import-free modules (:mod:`cooper.eval.constants`) or light ones
(:func:`cooper.utils.endpoints.add_endpoint_args`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import sys
from collections.abc import Callable

from cooper.data.prompts import DEFAULT_INSTRUCTION
from cooper.eval.constants import DEFAULT_MAX_NEW_TOKENS, DTYPES, ENGINES, PAPER_BENCHMARKS
from cooper.utils.endpoints import add_endpoint_args
from cooper.utils.errors import BAD_INPUT_ERRORS, EXIT_BAD_INPUT

log = logging.getLogger("cooper")

Subparsers = argparse._SubParsersAction
# The built-in verifiers and answer types (cooper.verify.registry / cooper.verify.answers, repeated here so
# that building the parser imports no verifier code)
VERIFIER_HELP = (
    "the rule verifier: math (default), choice, string, or your own batch function module:function or "
    "path/to/file.py:function, called as f(responses, references, **row_fields) -> list[bool]"
)
ANSWER_TYPES = ("numeric", "expression", "choice", "string")


def _add_verifier_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verifier", default="math", metavar="SPEC", help=VERIFIER_HELP)


def _reference_answer(value: str) -> str:
    """``--reference``: any non-blank text (an empty reference would make every response 'wrong')."""
    if not value.strip():
        raise argparse.ArgumentTypeError(f"is empty ({value!r}): give the reference answer, e.g. -r 18")
    return value


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number >= ``minimum``."""

    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            n = minimum - 1
        if n < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {value!r}")
        return n

    return parse


_positive_int = _whole_number(1)


def _finite(
    low: float,
    high: float | None = None,
    *,
    low_inclusive: bool = False,
    high_inclusive: bool = True,
    unit: str = "",
) -> Callable[[str], float]:
    """An argparse ``type``: a finite number (never nan or inf) between ``low`` and ``high``, ends as given."""
    if high is None:
        bounds = f"{'>=' if low_inclusive else '>'} {low:g}"
    else:
        bounds = f"in {'[' if low_inclusive else '('}{low:g}, {high:g}{']' if high_inclusive else ')'}"

    def parse(value: str) -> float:
        try:
            x = float(value)
        except ValueError:
            x = math.nan
        ok = math.isfinite(x)
        ok = ok and (x >= low if low_inclusive else x > low)
        ok = ok and (high is None or (x <= high if high_inclusive else x < high))
        if not ok:
            raise argparse.ArgumentTypeError(f"must be a finite number{unit} {bounds}, got {value!r}")
        return x

    return parse


_timeout_seconds = _finite(0, unit=" of seconds")  # --timeout: seconds > 0
_positive = _finite(0)  # learning rates, epochs
_probability_mass = _finite(0, 1)  # --top-p: (0, 1]
_temperature = _finite(0, low_inclusive=True)  # 0 = greedy
_seed = _whole_number(0)


def _cmd_verify(args: argparse.Namespace) -> int:
    from cooper.verify.pool import explain
    from cooper.verify.registry import check_verifier

    verifier = check_verifier(args.verifier)
    response = args.response
    if response == "-":
        response = sys.stdin.read()
    result = explain(
        response, args.reference, answer_type=args.answer_type, timeout_s=args.timeout, verifier=verifier
    )
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


def _add_verify(sub: Subparsers) -> None:
    p = sub.add_parser(
        "verify",
        help="check one response against a reference with the rule-based verifier",
        description="Rule-based verdict (math-verify under a hardened wrapper, or the --verifier named). "
        "Exit codes: 0 = correct, 1 = wrong, 2 = bad input (an empty --reference, a --timeout that is not a "
        "positive number, an unknown or failing --verifier).",
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
    p.add_argument(
        "--answer-type",
        choices=ANSWER_TYPES,
        help="how to compare (default: inferred from the reference; the choice and string verifiers fix it)",
    )
    _add_verifier_arg(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="print the verdict as one JSON object (correct, answers, references, answer_type, rule, ...)",
    )
    p.set_defaults(func=_cmd_verify)


def _command(sub: Subparsers, name: str, target: str, **kwargs: str) -> argparse.ArgumentParser:
    """Add subcommand ``name`` whose run function ``target`` ("module:function") is imported when it runs."""
    p = sub.add_parser(name, **kwargs)
    p.set_defaults(command_target=target)
    return p


def _add_demo(sub: Subparsers) -> None:
    p = _command(
        sub,
        "demo",
        "cooper.demo.run:run_cli",
        help="reward hacking and its cure, end to end on a CPU (report + plots)",
        description="SFT a tiny policy, pre-train a tiny VerifyRM on hybrid-annotated samples, run the rule, "
        "static_rm and cooper arms, and write DIR/report.md, DIR/report.json and PNG plots.",
    )
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of about 20-30 s on 2 CPU cores (does not show the effect)",
    )
    p.add_argument("--seeds", type=_positive_int, default=3, help="RL seeds per arm (default 3)")
    p.add_argument(
        "--first-seed",
        type=_whole_number(0),  # seeds below 0 fail deep in numpy, minutes into the run
        default=0,
        help="the RL seeds are FIRST_SEED .. FIRST_SEED + SEEDS - 1 (default 0; e.g. 3 to confirm on unseen seeds)",
    )
    p.add_argument(
        "--workers",
        type=_positive_int,
        help="processes for the independent jobs (RL arms x seeds, the RM backbone beside SFT), one thread "
        "each; default: one per available core (taskset counts); the numbers do not depend on it",
    )
    p.add_argument(
        "--readme",
        metavar="PATH",
        help="also rewrite the results block of this README (between the demo-results markers)",
    )


def _add_train_rm(sub: Subparsers) -> None:
    p = _command(
        sub,
        "train-rm",
        "cooper.rm.pretrain:run_cli",
        help="pre-train VerifyRM (pointwise BCE) on labelled (question, reference, completion) rows",
        description="Pointwise VerifyRM pre-training with transformers' Trainer. Rows: "
        "{question, reference, completion, label} in .jsonl/.json/.parquet.",
    )
    p.add_argument("--data", nargs="+", required=True, help="training file(s)")
    p.add_argument("--model", default="tiny", help="local checkpoint dir, or 'tiny' (random-init tiny Qwen2)")
    p.add_argument("--out", required=True, help="output dir: the trained model, metrics.json, checkpoints/")
    p.add_argument("--eval-data", nargs="+", help="held-out file(s) instead of --eval-split")
    p.add_argument(
        "--eval-split",
        type=_finite(0, 1, low_inclusive=True, high_inclusive=False),
        default=0.05,
        help="fraction of --data held out (default 0.05)",
    )
    p.add_argument("--column", action="append", metavar="THEIRS=OURS", help="rename a column, repeatable")
    p.add_argument("--epochs", type=_positive, default=1.0)
    p.add_argument("--lr", type=_positive, default=1e-5, dest="learning_rate")
    p.add_argument("--batch-size", type=_positive_int, default=8)
    p.add_argument("--grad-accum", type=_positive_int, default=1)
    p.add_argument("--max-length", type=_positive_int, default=1024, help="RM input budget in tokens")
    p.add_argument(
        "--group-by-length",
        action="store_true",
        help="batches of rows of similar length: less padding, faster on CPU (another data order)",
    )
    p.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        help="compute in bf16 over fp32 weights (default: on a GPU that supports it). On a CPU with bf16 "
        "instructions it trains faster: the demo's RM in 105 s instead of 150 on 2 cores (bench/cpu_bf16.py)",
    )
    p.add_argument(
        "--save-steps", type=_positive_int, default=200, help="checkpoint (and eval) every N steps"
    )
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--threshold", type=float, default=0.5, help="P(correct) threshold for accuracy/precision")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest checkpoint in OUT (refused if it was made with other run-defining "
        "settings: model, data, columns, eval split, lr, batch, max length, seed)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="delete an earlier run's checkpoints and outputs in OUT first",
    )
    p.add_argument(
        "--skip-invalid", action="store_true", help="skip (and count) invalid rows instead of failing"
    )
    p.add_argument(
        "--trust-remote-code", action="store_true", help="allow custom model code (off by default)"
    )
    p.add_argument("--report-to", default="none", help="transformers logging backend (none, wandb, ...)")


def _add_eval_rm(sub: Subparsers) -> None:
    p = _command(
        sub,
        "eval-rm",
        "cooper.rm.evaluate:run_cli",
        help="evaluate a reward model against the rule verifier on labelled completions",
        description="Accuracy/precision/recall of the RM, the rule verifier, 'rule OR RM' and 'rule AND RM', "
        "overall and per answer_type. Rows: VerifyBench {question, answer, completion, gold_correct, "
        "answer_type?} or {question, reference, completion, label}.",
    )
    p.add_argument("--model", required=True, help="reward model directory (from cooper train-rm)")
    p.add_argument("--data", nargs="+", required=True, help="labelled file(s): .jsonl/.json/.parquet")
    p.add_argument(
        "--threshold", type=float, default=0.5, help="P(correct) threshold for the RM (default 0.5)"
    )
    p.add_argument("--column", action="append", metavar="THEIRS=OURS", help="rename a column, repeatable")
    p.add_argument("--batch-size", type=_positive_int, default=16)
    p.add_argument("--out", default=None, help="write OUT.json and OUT.md (default: print only)")
    p.add_argument(
        "--skip-invalid", action="store_true", help="skip (and count) invalid rows instead of failing"
    )
    p.add_argument("--trust-remote-code", action="store_true")
    _add_verifier_arg(p)


def _add_train(sub: Subparsers) -> None:
    p = _command(
        sub,
        "train",
        "cooper.rl.train:run_cli",
        help="GRPO on TRL with a rule, static-RM or Cooper (co-trained RM) reward",
        description="Train a policy with TRL's GRPOTrainer. CONFIG is YAML (see configs/); override any key "
        "with --section.key value, e.g. --reward.mode static_rm --grpo.max_steps 20. The rule verifier is "
        "reward.verifier: math (default), choice, string or your own module:function / file.py:function.",
    )
    p.add_argument("config", help="YAML config file")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in output_dir from its newest complete checkpoint (refused if the checkpoint "
        "was made with other run-defining settings; a finished run is left as it is)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="delete an earlier run's checkpoints and outputs in output_dir and start again",
    )
    p.set_defaults(accepts_overrides=True)

    q = _command(
        sub, "plot", "cooper.rl.plots:run_plot", help="render a training run's metrics.jsonl to PNG plots"
    )
    q.add_argument("run_dir", help="the output_dir of a cooper train run")


def _add_eval(sub: Subparsers) -> None:
    p = _command(
        sub,
        "eval",
        "cooper.eval.run:run_cli",
        help="evaluate a policy on maths benchmarks (paper protocol: 8 samples, T=0.7, top-p 0.95)",
        description="Sample completions from a policy, score them with the rule verifier and report average "
        "accuracy over all samples (the paper's metric), pass@1, pass@n and majority-vote accuracy. "
        "Writes results.md, results.json and samples.jsonl to --out.",
    )
    p.add_argument("--model", required=True, help="a saved transformers model directory (with config.json)")
    p.add_argument(
        "--benchmarks", help=f"comma-separated (default: {','.join(PAPER_BENCHMARKS)}, or none with --data)"
    )
    p.add_argument(
        "--data", nargs="+", default=[], metavar="FILE", help="jsonl/json/parquet files to evaluate"
    )
    p.add_argument(
        "--columns", nargs="+", metavar="THEIR=OURS", help="rename --data columns: problem=question"
    )
    p.add_argument("--n", type=_positive_int, default=8, help="samples per problem (default 8)")
    p.add_argument("--temperature", type=_temperature, default=0.7, help="0 = greedy (default 0.7)")
    p.add_argument("--top-p", type=_probability_mass, default=0.95, help="nucleus sampling (default 0.95)")
    p.add_argument(
        "--max-new-tokens",
        type=_positive_int,
        help=f"per completion (default {DEFAULT_MAX_NEW_TOKENS}, capped at half the model's context)",
    )
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--limit", type=_positive_int, help="first N problems of each benchmark")
    p.add_argument(
        "--batch-size", type=_positive_int, help="sequences per generate call (default: CPU 32, GPU 64)"
    )
    p.add_argument("--out", default="runs/eval", help="output directory (default runs/eval)")
    p.add_argument("--resume", action="store_true", help="reuse the samples already in OUT/samples.jsonl")
    p.add_argument("--instruction", default=DEFAULT_INSTRUCTION, help="appended to each question (user turn)")
    p.add_argument("--system", help="optional system message")
    p.add_argument("--engine", choices=ENGINES, default="auto", help="auto: vLLM if installed and on a GPU")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (transformers engine)")
    p.add_argument("--dtype", choices=DTYPES, default="auto", help="auto: bf16/fp16 on GPU, fp32 on CPU")
    p.add_argument("--trust-remote-code", action="store_true", help="run model code from the model dir")
    p.add_argument("--name", help="model name in the table (default: the directory name)")
    _add_verifier_arg(p)


def _add_annotate(sub: Subparsers) -> None:
    p = _command(
        sub,
        "annotate",
        "cooper.annotate.pipeline:run_cli",
        help="hybrid annotation: rule verifier + LLM judge, keep the rows where they agree",
        description=(
            "Label completions with the rule verifier and a reference-based LLM judge (any OpenAI-compatible "
            "endpoint) and keep the rows where both agree: OUT/annotated.jsonl ({id, question, reference, "
            "completion, label, source}, ready for `cooper train-rm`), OUT/disagreements.jsonl, OUT/stats.json. "
            "Resumable: a rerun into the same OUT skips ids already judged; OUT/run.json records the input "
            "files (path, sha256) and settings, and a rerun with another input is refused. Exit codes: 0 done; "
            "2 bad input, unusable endpoint or an OUT made from another input (reported before anything is "
            "written); 3 rows left unjudged: some after endpoint failures (rerun to retry them), or all "
            "because the judge never gave a verdict (check the judge, rerun with --retry-abstentions)."
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
    p.add_argument(
        "--verifier-timeout", type=_timeout_seconds, default=5.0, help="seconds per rule-verifier verdict"
    )
    _add_verifier_arg(p)
    add_endpoint_args(p, "judge", "judge endpoint (OpenAI-compatible)")
    g = p.add_argument_group("generation (rows without completions)")
    g.add_argument(
        "--generator", metavar="MODEL_DIR", help="local model directory to sample completions from"
    )
    g.add_argument("--samples", type=_positive_int, default=4, metavar="K", help="completions per row")
    g.add_argument("--temperature", type=_temperature, default=0.7)
    g.add_argument("--top-p", type=_probability_mass, default=0.95)
    g.add_argument("--max-new-tokens", type=_positive_int, default=512)
    g.add_argument("--batch-size", type=_positive_int, default=8, help="prompts per generate() call")
    g.add_argument("--seed", type=_seed, default=0)
    g.add_argument("--trust-remote-code", action="store_true", help="allow custom model code from MODEL_DIR")


def build_parser() -> argparse.ArgumentParser:
    """The ``cooper`` parser with every subcommand, in the order ``cooper --help`` lists them."""
    from cooper._version import __version__

    parser = argparse.ArgumentParser(
        prog="cooper",
        description="Cooper: GRPO with a reward model that is co-optimised with the policy.",
    )
    parser.add_argument("--version", action="version", version=f"cooper {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_verify, _add_demo, _add_train_rm, _add_eval_rm, _add_train, _add_eval, _add_annotate):
        add(sub)
    return parser


def resolve_command(target: str) -> Callable[[argparse.Namespace], int]:
    """``"package.module:function"`` -> the function (importing its module)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


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
    func = getattr(args, "func", None)
    if func is None and getattr(args, "command_target", None):
        func = resolve_command(args.command_target)
    if func is None:
        parser.print_help()
        return 0
    try:
        return int(func(args) or 0)
    except BAD_INPUT_ERRORS as e:  # bad input: say what and where in one line; the traceback with -v
        log.error("%s: %s", type(e).__name__, e, exc_info=args.verbose)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
