"""Tests for cooper.eval.run / cooper.eval.engines: policy evaluation with the paper's protocol, on CPU."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import itertools
import json
import logging
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest
from transformers import AutoTokenizer

from cooper import cli
from cooper.data.benchmarks import BENCHMARKS, load_benchmark
from cooper.data.prompts import DEFAULT_INSTRUCTION
from cooper.eval.constants import PAPER_BENCHMARKS
from cooper.eval.engines import (
    PromptTemplate,
    SamplingSettings,
    TransformersEngine,
    encode_prompts,
    load_engine,
    sample_id,
)
from cooper.eval.metrics import benchmark_metrics, majority_vote, pass_at_k, score_samples
from cooper.eval.run import EvalError, _check_resume, evaluate, render_table
from cooper.utils.batching import length_sorted_batches
from cooper.utils.models import ModelLoadError
from cooper.utils.tiny import TinyPaths
from helpers_data import write_user_verifiers

FAST = dict(n=2, max_new_tokens=16, limit=3)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def policy_dir(tiny_paths: TinyPaths) -> Path:
    return tiny_paths.policy_dir


@pytest.fixture(scope="module")
def engine(policy_dir: Path) -> TransformersEngine:
    return TransformersEngine(policy_dir, device="cpu", batch_size=8)


@pytest.fixture(scope="module")
def sharp_dir(policy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny policy with weights scaled up, so that greedy outputs depend on the prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("sharp")
    model = AutoModelForCausalLM.from_pretrained(policy_dir)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "norm" not in name:
                weight.mul_(10)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(policy_dir).save_pretrained(out)
    return out


# ---------------------------------------------------------------------------------------- metrics maths


def _pass_at_k_brute(n: int, c: int, k: int) -> float:
    """The fraction of k-subsets of n samples (c correct) that hold at least one correct sample."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


def test_pass_at_k_hand_computed() -> None:
    assert pass_at_k(8, 0, 1) == 0.0
    assert pass_at_k(8, 2, 1) == pytest.approx(0.25)
    assert pass_at_k(8, 2, 8) == 1.0
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2)
    for n, c, k in [(6, 1, 3), (6, 3, 2), (7, 0, 4), (7, 7, 1), (5, 4, 5)]:
        assert pass_at_k(n, c, k) == pytest.approx(_pass_at_k_brute(n, c, k))
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


def test_majority_vote_hand_computed() -> None:
    assert majority_vote(["3", "3", "4"], [True, True, False]) is True
    assert majority_vote(["4", "4", "3"], [False, False, True]) is False
    assert majority_vote([None, None, "5"], [False, False, True]) is True  # no answer does not vote
    assert majority_vote([None, None], [False, False]) is False
    assert majority_vote(["a", "b"], [False, True]) is False  # tie: the group seen first wins
    assert majority_vote(["b", "a", "a", "b"], [True, False, False, True]) is True
    assert majority_vote(["x + 1", "x+1", "2"], [True, True, False]) is True  # whitespace ignored
    # Equivalence: 1/2, 0.5 and \frac{1}{2} are one group of 3 and beat two 3s.
    answers = ["3", "\\frac{1}{2}", "0.5", "3", "1/2"]
    verdicts = [False, True, True, False, True]
    assert majority_vote(answers, verdicts) is False  # string grouping only: "3" wins 2 to 1
    halves = {"\\frac{1}{2}", "0.5", "1/2"}
    assert majority_vote(answers, verdicts, lambda a, b: a in halves and b in halves) is True


def test_metrics_with_verifier_equivalence() -> None:
    completions = ["so \\boxed{3}", "\\boxed{\\frac{1}{2}}", "\\boxed{0.5}", "\\boxed{3}", "\\boxed{1/2}"]
    samples = [
        {"problem_id": "p", "sample": k, "completion": c, "reference": "1/2"}
        for k, c in enumerate(completions)
    ]
    samples.append({"problem_id": "q", "sample": 0, "completion": "no idea", "reference": "7"})
    metrics = benchmark_metrics(score_samples(samples))
    assert [s["correct"] for s in samples] == [False, True, True, False, True, False]
    assert metrics["n_problems"] == 2 and metrics["n_samples"] == 6 and metrics["n"] == 1
    assert metrics["mean_accuracy"] == pytest.approx(3 / 6)
    assert metrics["pass@1"] == pytest.approx((3 / 5 + 0) / 2)
    assert metrics["majority_vote_accuracy"] == pytest.approx(0.5)  # p: the 1/2 group (3) beats 3 (2)
    assert metrics["no_answer_rate"] == pytest.approx(1 / 6)


def test_majority_vote_groups_whole_answer_sets() -> None:
    # a multi-answer problem: the two complete answer sets outvote the one partial answer
    completions = ["\\boxed{2}", "\\boxed{1} and \\boxed{2}", "\\boxed{2} and \\boxed{1}"]
    samples = [
        {"problem_id": "p", "sample": k, "completion": c, "reference": "1, 2"}
        for k, c in enumerate(completions)
    ]
    metrics = benchmark_metrics(score_samples(samples, fields=[{"is_multiple_answer": True}] * 3))
    assert [s["correct"] for s in samples] == [False, True, True]
    assert [s["extracted_answer"] for s in samples] == ["2", "1, 2", "2, 1"]
    assert metrics["mean_accuracy"] == pytest.approx(2 / 3)
    assert metrics["majority_vote_accuracy"] == 1.0  # "1, 2" and "2, 1" are one group by equivalence


@pytest.mark.parametrize("bench", PAPER_BENCHMARKS)
def test_scoring_fixed_completions(bench: str) -> None:
    row = load_benchmark(bench, limit=1)[0]
    ref = row["reference"]
    completions = [
        f"Working through it step by step, the result follows. The final answer is \\boxed{{{ref}}}.",
        "Working through it, I get \\boxed{987654321}.",
        "I am not sure how to solve this problem.",
    ]
    samples = [
        {"problem_id": row["id"], "sample": k, "completion": c, "reference": ref}
        for k, c in enumerate(completions)
    ]
    score_samples(samples)
    assert [s["correct"] for s in samples] == [True, False, False], ref
    assert samples[1]["extracted_answer"] == "987654321"
    assert samples[2]["extracted_answer"] is None
    metrics = benchmark_metrics(samples)
    assert metrics["mean_accuracy"] == pytest.approx(1 / 3)
    assert metrics["pass@n"] == 1.0 and metrics["n"] == 3
    assert metrics["majority_vote_accuracy"] == 1.0  # 1-1 tie between the two answers: the first wins


def test_render_table_shape() -> None:
    r = {"n_problems": 2, "n_samples": 4, "n": 2, "mean_accuracy": 0.5, "pass@1": 0.5, "pass@n": 1.0}
    r |= {"majority_vote_accuracy": 0.5, "truncated_prompts": 1}
    table = render_table("m", {"gsm8k": r, "svamp": {**r, "mean_accuracy": 0.25}})
    lines = table.splitlines()
    assert lines[0] == "| Model | gsm8k | svamp | Average |"
    assert lines[2] == "| m | 50.0 | 25.0 | 37.5 |"


# ------------------------------------------------------------------------------------------ generation


def test_length_sorted_batches() -> None:
    assert length_sorted_batches([3, 9, 1, 9, 5], 2) == [[1, 3], [4, 0], [2]]
    with pytest.raises(ValueError):
        length_sorted_batches([1], 0)


def _texts_in_input_order(
    eng: TransformersEngine, prompts: list[list[int]], keys: list[str], settings: SamplingSettings
) -> list[str]:
    """Every prompt's completion text, put back in the prompts' order from the engine's batch order."""
    got = {
        pos: c.text for ps, cs in eng.generate(prompts, keys, settings) for pos, c in zip(ps, cs, strict=True)
    }
    return [got[i] for i in range(len(prompts))]


def test_sorted_generation_restores_order(sharp_dir: Path) -> None:
    rows = load_benchmark("gsm8k", limit=10) + load_benchmark("olympiadbench", limit=2)
    settings = SamplingSettings(n=1, temperature=0, max_new_tokens=8)
    outputs = {}
    for sort, batch_size in [(True, 4), (False, 4), (False, 1)]:
        eng = TransformersEngine(sharp_dir, device="cpu", batch_size=batch_size, sort_by_length=sort)
        prompts = encode_prompts(eng.tokenizer, [r["question"] for r in rows], PromptTemplate(), None)
        widths: list[list[int]] = []
        original = eng._batch

        def spy(p, s, seed, widths=widths, original=original):  # type: ignore[no-untyped-def]
            widths.append([len(x) for x in p])
            return original(p, s, seed)

        eng._batch = spy  # type: ignore[method-assign]
        keys = [str(i) for i in range(len(rows))]
        outputs[(sort, batch_size)] = _texts_in_input_order(eng, [p.ids for p in prompts], keys, settings)
        if sort:  # longest first: every batch is no longer than the one before
            assert [max(w) for w in widths] == sorted((max(w) for w in widths), reverse=True)
    assert outputs[(True, 4)] == outputs[(False, 4)] == outputs[(False, 1)]
    assert len(set(outputs[(False, 1)])) > 1  # the check means something: outputs differ by prompt


def test_sampling_is_reproducible(engine: TransformersEngine) -> None:
    import torch

    prompts = encode_prompts(engine.tokenizer, ["What is 2 + 3?"] * 3, PromptTemplate(), None)
    keys = ["a/0", "a/1", "a/2"]
    settings = SamplingSettings(n=1, max_new_tokens=12, seed=7)
    state = torch.get_rng_state()
    one = [c.text for _, cs in engine.generate([p.ids for p in prompts], keys, settings) for c in cs]
    assert torch.equal(torch.get_rng_state(), state)  # sampling leaves the caller's global RNG alone
    two = [c.text for _, cs in engine.generate([p.ids for p in prompts], keys, settings) for c in cs]
    assert one == two and len(set(one)) > 1


def test_sampling_with_a_one_token_nucleus_is_greedy(sharp_dir: Path) -> None:
    eng = TransformersEngine(sharp_dir, device="cpu", batch_size=4)
    rows = load_benchmark("gsm8k", limit=6)
    prompts = [
        p.ids for p in encode_prompts(eng.tokenizer, [r["question"] for r in rows], PromptTemplate(), None)
    ]
    keys = [str(i) for i in range(len(rows))]

    def texts(settings: SamplingSettings) -> list[str]:
        return _texts_in_input_order(eng, prompts, keys, settings)

    greedy = texts(SamplingSettings(n=1, temperature=0, max_new_tokens=10))
    assert texts(SamplingSettings(n=1, temperature=0.7, top_p=1e-9, max_new_tokens=10, seed=5)) == greedy
    assert texts(SamplingSettings(n=1, temperature=1.0, top_p=1.0, max_new_tokens=10, seed=5)) != greedy


def test_the_models_own_generation_config_changes_nothing(sharp_dir: Path, tmp_path: Path) -> None:
    """A Qwen-style generation_config.json (sampling on, top_k 20, top_p 0.8, repetition penalty 1.05), and
    logits processors other models set (no-repeat n-grams, a minimum length, suppressed or biased tokens),
    must not leak into the protocol: greedy and sampled outputs equal those of the same weights without it."""
    import shutil

    qwenlike = tmp_path / "qwenlike"
    shutil.copytree(sharp_dir, qwenlike)
    config = json.loads((qwenlike / "generation_config.json").read_text())
    config.update(do_sample=True, temperature=0.9, top_p=0.8, top_k=20, repetition_penalty=1.05)
    config.update(
        no_repeat_ngram_size=2, min_new_tokens=24, suppress_tokens=[5, 6], sequence_bias=[[[7], 3.0]]
    )
    (qwenlike / "generation_config.json").write_text(json.dumps(config))
    questions = ["What is 2 + 3?", "Ann has 4 eggs and buys 5 more. How many now?"]
    outputs = []
    for path in (sharp_dir, qwenlike):
        eng = TransformersEngine(path, device="cpu", batch_size=2)
        prompts = [p.ids for p in encode_prompts(eng.tokenizer, questions, PromptTemplate(), None)]
        for settings in (
            SamplingSettings(n=1, temperature=0, max_new_tokens=24),
            SamplingSettings(n=1, max_new_tokens=24, seed=3),
        ):
            outputs.append([c.text for _, cs in eng.generate(prompts, ["a", "b"], settings) for c in cs])
    assert outputs[:2] == outputs[2:]
    assert outputs[0] != outputs[1]  # the sampled run is not greedy


def test_first_token_frequencies_follow_the_model(sharp_dir: Path) -> None:
    """1,024 one-token samples of one prompt at T=1, top-p=1: each token's share is within 4 standard
    errors of the model's own probability for it."""
    import torch

    eng = TransformersEngine(sharp_dir, device="cpu", batch_size=256)
    ids = encode_prompts(eng.tokenizer, ["What is 2 + 3?"], PromptTemplate(), None)[0].ids
    n = 1024
    settings = SamplingSettings(n=1, temperature=1.0, top_p=1.0, max_new_tokens=1, seed=0)
    counts: dict[str, int] = {}
    for _, completions in eng.generate([ids] * n, [f"q/{k}" for k in range(n)], settings):
        for c in completions:
            counts[c.text] = counts.get(c.text, 0) + 1
    with torch.no_grad():
        probs = eng.model(torch.tensor([ids])).logits[0, -1].softmax(-1)
    # A completion of one token is known by its text: only tokens whose text no other token has count
    # (byte pieces of a character all decode to U+FFFD).
    texts = [eng.tokenizer.decode([t], skip_special_tokens=True) for t in range(len(probs))]
    unique = [
        t for t in range(len(probs)) if texts[t] and texts.count(texts[t]) == 1 and t not in eng.eos_ids
    ]
    checked = sorted(unique, key=lambda t: -probs[t].item())[:5]
    assert probs[checked[0]] > 0.05  # the sharpened model has likely tokens to count
    for token in checked:
        p, share = probs[token].item(), counts.get(texts[token], 0) / n
        assert abs(share - p) <= 4 * (p * (1 - p) / n) ** 0.5 + 1e-3, (texts[token], share, p)


def test_over_long_prompt_is_truncated_from_the_left(engine: TransformersEngine, tmp_path: Path) -> None:
    question = "Count the apples in this long story. " * 300 + "What is the final number?"
    full = encode_prompts(engine.tokenizer, [question], PromptTemplate(), None)[0]
    assert full.original_tokens > engine.max_context
    cut = encode_prompts(engine.tokenizer, [question], PromptTemplate(), 100)[0]
    assert cut.truncated and cut.ids == full.ids[-100:] and cut.text.endswith("<|im_start|>assistant\n")
    rows = {
        "long": [
            {"id": "x", "question": question, "reference": "3"},
            {"id": "y", "question": "1+1?", "reference": "2"},
        ]
    }
    results = evaluate(
        engine.model.name_or_path, rows, engine=engine, n=1, max_new_tokens=16, out_dir=tmp_path
    )
    assert results["benchmarks"]["long"]["truncated_prompts"] == 1
    samples = {
        s["problem_id"]: s for s in map(json.loads, (tmp_path / "samples.jsonl").read_text().splitlines())
    }
    assert samples["x"]["prompt_truncated"] and not samples["y"]["prompt_truncated"]


# -------------------------------------------------------------------------------------------- pipeline


def test_every_benchmark_runs(engine: TransformersEngine, policy_dir: Path, tmp_path: Path) -> None:
    names = list(BENCHMARKS)
    results = evaluate(policy_dir, names, engine=engine, out_dir=tmp_path, **FAST)
    assert list(results["benchmarks"]) == names
    for name in names:
        r = results["benchmarks"][name]
        assert r["n_problems"] == 3 and r["n_samples"] == 6 and r["n"] == 2
        for key in ("mean_accuracy", "pass@1", "pass@n", "majority_vote_accuracy"):
            assert 0.0 <= r[key] <= 1.0
        assert r["tokens_generated"] > 0 and r["seconds"] > 0 and r["truncated_prompts"] == 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["status"] == "complete" and saved["engine"] == "transformers" and saved["seed"] == 0
    assert saved["protocol"]["n"] == 2 and saved["protocol"]["temperature"] == 0.7
    assert saved["prompt"]["instruction"] == DEFAULT_INSTRUCTION
    assert "{question}" in saved["prompt"]["rendered"] and DEFAULT_INSTRUCTION in saved["prompt"]["rendered"]
    md = (tmp_path / "results.md").read_text().splitlines()
    assert md[0] == "| Model | " + " | ".join(names) + " | Average |"
    assert md[2].startswith(f"| {policy_dir.name} | ")
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == len({s["id"] for s in samples}) == 6 * len(names)
    keys = {
        "id",
        "benchmark",
        "problem_id",
        "prompt",
        "completion",
        "extracted_answer",
        "reference",
        "correct",
    }
    assert all(keys <= set(s) for s in samples)
    assert samples[0]["id"] == f"{samples[0]['benchmark']}/{samples[0]['problem_id']}/{samples[0]['sample']}"


def test_resume_skips_finished_samples(engine: TransformersEngine, policy_dir: Path, tmp_path: Path) -> None:
    generated: list[int] = []
    original = engine.generate

    def counting(prompts, keys, settings):  # type: ignore[no-untyped-def]
        generated.append(len(prompts))
        return original(prompts, keys, settings)

    engine.generate = counting  # type: ignore[method-assign]
    try:
        kw = dict(engine=engine, out_dir=tmp_path, max_new_tokens=8, limit=2)
        evaluate(policy_dir, ["gsm8k", "svamp"], n=2, **kw)
        assert generated == [4, 4]
        evaluate(policy_dir, ["gsm8k", "svamp"], n=2, resume=True, **kw)
        assert generated[2:] == [0, 0]
        results = evaluate(policy_dir, ["gsm8k", "svamp"], n=3, resume=True, **kw)  # one more sample each
        assert generated[4:] == [2, 2]
        assert results["benchmarks"]["gsm8k"]["n_samples"] == 6 and results["benchmarks"]["gsm8k"]["n"] == 3
        assert len((tmp_path / "samples.jsonl").read_text().splitlines()) == 12
        with pytest.raises(EvalError, match="temperature"):
            evaluate(policy_dir, ["gsm8k"], n=2, resume=True, temperature=1.0, **kw)
    finally:
        del engine.generate


def test_custom_instruction_and_data_file_via_cli(
    policy_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "mine.jsonl"
    data.write_text(
        "".join(json.dumps({"problem": f"What is {i} + {i}?", "answer": 2 * i}) + "\n" for i in range(3))
    )
    out = tmp_path / "out"
    argv = [
        "eval",
        "--model",
        str(policy_dir),
        "--data",
        str(data),
        "--columns",
        "problem=question",
        "answer=reference",
    ]
    argv += [
        "--n",
        "2",
        "--max-new-tokens",
        "8",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--instruction",
        "Answer:",
    ]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == "| Model | mine | Average |"
    saved = json.loads((out / "results.json").read_text())
    assert saved["prompt"]["instruction"] == "Answer:" and saved["benchmarks"]["mine"]["n_samples"] == 6
    assert (out / "results.md").read_text() == printed
    sample = json.loads((out / "samples.jsonl").read_text().splitlines()[0])
    assert sample["prompt"].endswith("?\nAnswer:<|im_end|>\n<|im_start|>assistant\n") and sample[
        "reference"
    ] in {"0", "2", "4"}


# ------------------------------------------------------------------------------------------- verifiers


def _fixed_completions(text: str):
    """A stand-in for ``generate_samples`` whose every completion is ``text``."""

    def generate(bench, rows, prompts, todo, engine, settings):  # type: ignore[no-untyped-def]
        if todo:
            yield [
                dict(
                    id=sample_id(bench, str(rows[i]["id"]), k), benchmark=bench, problem_id=str(rows[i]["id"])
                )
                | dict(sample=k, prompt="p", completion=text, reference=rows[i]["reference"])
                | dict(completion_tokens=1, finish_reason="stop", prompt_truncated=False)
                for i, k in todo
            ]

    return generate


def test_the_verifier_scores_with_each_problems_row_fields(
    engine: TransformersEngine, policy_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cooper.eval import run as eval_run

    monkeypatch.setattr(eval_run, "generate_samples", _fixed_completions("so \\boxed{1000}"))
    rows = {
        "mine": [
            {"id": "a", "question": "q", "reference": "10^3", "answer_type": "string"},
            {"id": "b", "question": "q", "reference": "10^3"},
            {"id": "c", "question": "q", "reference": "10^3", "is_multiple_answer": False},
        ]
    }
    kw = dict(engine=engine, n=1, max_new_tokens=4)

    def accuracy(out: str, **more) -> float:  # type: ignore[no-untyped-def]
        results = evaluate(policy_dir, rows, out_dir=tmp_path / out, **kw, **more)
        saved = json.loads((tmp_path / out / "results.json").read_text())
        assert saved["protocol"]["verifier"] == more.get("verifier", "math")
        return results["benchmarks"]["mine"]["mean_accuracy"]

    # math reads row a's answer_type: as a string, 1000 is not "10^3"; as maths (b, c) it is
    assert accuracy("math") == pytest.approx(2 / 3)
    assert accuracy("string", verifier="string") == 0.0  # the string verifier compares all three as strings
    spec = f"{write_user_verifiers(tmp_path)}:typed"  # correct exactly where answer_type is integer or string
    assert accuracy("mine", verifier=spec) == pytest.approx(1 / 3)

    # another verifier is another run: --resume refuses to mix their samples
    with pytest.raises(EvalError, match="verifier differs"):
        evaluate(policy_dir, rows, out_dir=tmp_path / "math", resume=True, verifier=spec, **kw)
    # results.json written before the verifier was a choice named the math verifier's function
    old = {"model": "m", "protocol": {"verifier": "cooper.verify.is_correct_batch"}}
    _check_resume(old, {"model": "m", "protocol": {"verifier": "math"}})
    with pytest.raises(EvalError, match="verifier"):
        _check_resume(old, {"model": "m", "protocol": {"verifier": "string"}})


def test_eval_command_with_a_user_verifier_and_an_unknown_one(
    policy_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "mine.jsonl"
    data.write_text(
        "".join(
            json.dumps({"question": f"{i} + {i}?", "reference": 2 * i, "verdict": "yes"}) + "\n"
            for i in range(3)
        )
    )
    spec = f"{write_user_verifiers(tmp_path)}:check"  # follows the data's verdict column
    out = tmp_path / "out"
    argv = ["eval", "--model", str(policy_dir), "--data", str(data), "--verifier", spec, "--out", str(out)]
    assert cli.main([*argv, "--n", "2", "--max-new-tokens", "4", "--device", "cpu"]) == 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["protocol"]["verifier"] == spec and saved["benchmarks"]["mine"]["mean_accuracy"] == 1.0
    assert "| mine |" in capsys.readouterr().out

    with caplog.at_level(logging.ERROR):
        argv = ["eval", "--model", str(tmp_path / "no-model"), "--benchmarks", "gsm8k", "--verifier", "nope"]
        assert cli.main(argv) == 2
    assert "unknown verifier 'nope'" in caplog.text and "no-model" not in caplog.text


# ------------------------------------------------------------------------------------------- bad input


def test_unknown_benchmark_lists_valid_names(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(EvalError, match="valid names: .*gsm8k.*svamp"):
        evaluate(tmp_path / "no-model", ["gsm8k", "nope"])  # the name is checked before the model
    with caplog.at_level(logging.ERROR):
        assert cli.main(["eval", "--model", str(tmp_path), "--benchmarks", "nope"]) == 2
    assert "unknown benchmark(s) nope; valid names:" in caplog.text


def test_missing_or_broken_model_dir(policy_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        evaluate(tmp_path / "missing", ["gsm8k"], limit=1)
    with pytest.raises(ModelLoadError, match="no config.json"):
        evaluate(tmp_path, ["gsm8k"], limit=1)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((policy_dir / "config.json").read_text())
    with pytest.raises(
        ModelLoadError, match="has a config.json but no weights"
    ):  # the check every loader makes
        evaluate(broken, ["gsm8k"], limit=1, device="cpu")
    (broken / "model.safetensors").write_bytes((policy_dir / "model.safetensors").read_bytes())
    with pytest.raises(ModelLoadError, match="could not load the tokenizer"):
        evaluate(broken, ["gsm8k"], limit=1, device="cpu")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (broken / name).write_text((policy_dir / name).read_text())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="could not load the model"):
        evaluate(broken, ["gsm8k"], limit=1, device="cpu")


def test_bad_settings(engine: TransformersEngine, policy_dir: Path) -> None:
    with pytest.raises(EvalError, match="top_p"):
        evaluate(policy_dir, ["gsm8k"], top_p=0.0, engine=engine)
    with pytest.raises(EvalError, match="no room for a prompt"):
        evaluate(policy_dir, ["gsm8k"], limit=1, max_new_tokens=5000, engine=engine)
    assert cli.main(["eval", "--model", str(policy_dir), "--data", "x.jsonl", "--columns", "problem"]) == 2


def test_rows_without_required_fields(engine: TransformersEngine, policy_dir: Path) -> None:
    with pytest.raises(
        EvalError,
        match=r"benchmark 'mine' row 0 \(id 'a'\): field 'reference' is missing \(has keys \['id', 'question'\]\)",
    ):
        evaluate(policy_dir, {"mine": [{"id": "a", "question": "1+1?"}]}, engine=engine)


# ------------------------------------------------------------------------------------------------ vLLM


def test_vllm_engine_missing_is_a_clear_error(policy_dir: Path) -> None:
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    with pytest.raises(ModelLoadError, match="vLLM is not installed"):
        evaluate(policy_dir, ["gsm8k"], limit=1, engine="vllm")
    assert load_engine(policy_dir, engine="auto", device="cpu").name == "transformers"


def test_vllm_engine_wiring_with_a_fake_vllm(
    policy_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The vLLM path against a stand-in with vLLM's documented API (the real one needs a GPU)."""
    calls: list[dict] = []

    class SamplingParams:
        def __init__(self, **kw: object) -> None:
            self.__dict__.update(kw)

    class LLM:
        def __init__(self, **kw: object) -> None:
            calls.append({"init": kw})

        def generate(self, prompts: list[dict], sampling_params: list, use_tqdm: bool) -> list:
            calls.append({"prompts": prompts, "params": sampling_params})
            out = SimpleNamespace(text="so \\boxed{2}", token_ids=[1, 2, 3], finish_reason="stop")
            return [SimpleNamespace(outputs=[out]) for _ in prompts]

    fake = types.ModuleType("vllm")
    fake.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    fake.LLM, fake.SamplingParams = LLM, SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", fake)
    rows = {
        "t": [
            {"id": "a", "question": "1+1?", "reference": "2"},
            {"id": "b", "question": "3-1?", "reference": "2"},
        ]
    }
    results = evaluate(policy_dir, rows, engine="vllm", n=2, max_new_tokens=7, seed=3, out_dir=tmp_path)
    assert results["engine"] == "vllm" and results["benchmarks"]["t"]["mean_accuracy"] == 1.0
    assert calls[0]["init"]["model"] == str(policy_dir) and calls[0]["init"]["seed"] == 3
    params = calls[1]["params"]
    assert len(calls[1]["prompts"]) == len(params) == 4
    assert (
        {p.n for p in params} == {1}
        and {p.max_tokens for p in params} == {7}
        and {p.top_p for p in params} == {0.95}
    )
    assert len({p.seed for p in params}) == 4  # every sample its own seed
    tok = AutoTokenizer.from_pretrained(policy_dir)
    expected = encode_prompts(tok, ["1+1?"], PromptTemplate(), None)[0].ids
    assert calls[1]["prompts"][0]["prompt_token_ids"] == expected
