"""`cooper demo --quick`: every phase runs end to end and the report has the documented shape.

The quick run is a smoke test: it is far too short to show reward hacking, and nothing here asserts that
it does."""

from __future__ import annotations

import json
import random

import pytest

from cooper.demo.task import (
    CHECK_WORD,
    INSTRUCTION,
    ITEMS,
    NUMBER_WORDS,
    add_check,
    exact_check,
    flawed_solution,
    make_problems,
    solution,
)
from cooper.utils.io import read_jsonl
from cooper.verify.pool import is_correct


def test_problems_are_deterministic_and_consistent():
    a, b = make_problems(50, seed=3), make_problems(50, seed=3)
    assert a == b and len({p.id for p in a}) == 50
    for p in a:
        assert int(p.reference) == p.a + p.b - p.c >= 0
        assert str(p.a) in p.question and p.item in p.question


def test_exact_checker_knows_every_surface_form_and_rejects_hedges():
    rng = random.Random(0)
    p = make_problems(1, seed=0)[0]
    r = int(p.reference)
    for final in (str(r), NUMBER_WORDS[r], f"{r} {p.item}"):
        assert exact_check(f"x. The answer is {final}.", p.reference)
    assert not exact_check(f"The answer is {r} {r + 1}.", p.reference)  # a hedge
    assert not exact_check(f"The answer is {r + 1}.", p.reference)
    assert not exact_check("", p.reference)
    for _ in range(20):
        assert exact_check(solution(p, rng), p.reference)
        assert not exact_check(flawed_solution(p, rng), p.reference)
    assert ITEMS  # units exist for the unit surface form


def test_rule_verifier_is_precise_but_misses_the_word_form():
    p = make_problems(1, seed=1)[0]
    r = int(p.reference)
    assert is_correct(f"The answer is {r}.", p.reference)
    assert is_correct(f"The answer is {r} {p.item}.", p.reference)
    assert not is_correct(f"The answer is {NUMBER_WORDS[r]}.", p.reference)  # the miss (exact says yes)
    assert not is_correct(f"The answer is {r + 1}.", p.reference)


def test_check_step_restates_the_solutions_own_numbers_and_changes_no_verdict():
    rng = random.Random(0)
    problems = make_problems(40, seed=2)
    for p in problems:
        s, r = p.a + p.b, p.a + p.b - p.c
        good = solution(p, rng, word_share=0.0, check=True)  # the rule verifier misses number words
        assert f"{CHECK_WORD} {r} + {p.c} = {s}. The answer is" in good
        bad = flawed_solution(p, rng)
        checked = add_check(bad, p)
        if "-" in bad:  # a two-step slip: its own (wrong) result is what gets checked
            assert CHECK_WORD in checked and checked.index(CHECK_WORD) < checked.index("The answer is")
        else:  # stops after one step: nothing to check
            assert checked == bad
        for text in (good, checked):
            assert exact_check(text, p.reference) == (text is good)
            assert is_correct(text, p.reference) == (text is good)
    assert add_check("no steps here. The answer is 3.", problems[0]) == "no steps here. The answer is 3."


def test_corpus_checks_only_correct_solutions_in_the_asked_share():
    from cooper.demo.pipeline import corpus_rows

    problems = make_problems(400, seed=4)
    rows = corpus_rows(problems, random.Random(0), check_share=0.5, skip_share=0.0)
    correct = [r for r in rows if exact_check(r["completion"], r["reference"])]
    wrong = [r for r in rows if not exact_check(r["completion"], r["reference"])]
    assert len(correct) == len(wrong) == len(problems)
    assert not any(CHECK_WORD in r["completion"] for r in wrong)
    assert all(r["completion"].count(" = ") == 2 for r in wrong)  # skip_share 0: every slip has two steps
    share = sum(CHECK_WORD in r["completion"] for r in correct) / len(correct)
    assert 0.4 < share < 0.6
    assert not any(
        CHECK_WORD in r["completion"] for r in corpus_rows(problems[:50], random.Random(0), 0.0, 1.0)
    )


@pytest.mark.slow
def test_quick_demo_writes_the_report(tmp_path):
    from cooper.cli import main

    out = tmp_path / "docs" / "demo"
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nbefore\n<!-- demo-results:start -->\nold\n<!-- demo-results:end -->\nafter\n")
    assert main(["demo", "--quick", "--out", str(out), "--readme", str(readme)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert isinstance(report["seconds"], float) and report["seconds"] > 0
    assert report["seeds"] == [0]
    phases = ["models and task", "SFT warm start", "hybrid annotation", "RM backbone", "RM pre-training"]
    assert list(report["phase_seconds"]) == [*phases, "RL arms", "report"]
    assert all(v >= 0 for v in report["phase_seconds"].values())
    assert sum(report["phase_seconds"].values()) <= report["seconds"] + 1
    for key in ("sft_accuracy", "rm_pretrain_heldout_accuracy"):
        assert 0.0 <= report[key] <= 1.0
    assert set(report["arms"]) == {"rule", "static_rm", "cooper"}
    for arm, m in report["arms"].items():
        for key in ("initial_accuracy", "final_accuracy", "peak_accuracy"):
            assert 0.0 <= m[key] <= 1.0, (arm, key)
        assert m["peak_accuracy"] >= m["final_accuracy"] and m["peak_accuracy"] >= m["initial_accuracy"]
        assert m["steps"] == 3
        for key in ("final_rm_reward", "max_hacking_gap"):
            assert m[key] is None or isinstance(m[key], float)
        assert 0.0 <= m["final_check_share"] <= 1.0
    probe = report["rm_probe"]
    assert probe["problems"] == min(100, report["heldout_problems"])
    for which in ("pretrained", "cooper_final"):
        assert set(probe[which]) == {"correct", "wrong", "wrong_with_check"}
        assert all(0.0 <= v <= 1.0 for v in probe[which].values())
    ann = report["annotation"]
    assert ann["checked_correct"] + ann["checked_wrong"] <= ann["agreements"]
    md = (out / "report.md").read_text()
    assert "| final held-out accuracy |" in md and "## What happened" in md
    for png in ("heldout_accuracy.png", "rm_reward.png", "hacking_gap.png", "rm_pair_accuracy.png"):
        assert (out / png).stat().st_size > 1000
    text = readme.read_text()  # the results block is regenerated from this run, the rest kept
    assert text.startswith("# x\n\nbefore\n<!-- demo-results:start -->\n") and text.endswith(
        "<!-- demo-results:end -->\nafter\n"
    )
    assert "old" not in text and f"| final held-out accuracy | {report['sft_accuracy']:.3f} |" in text
    assert "(docs/demo/heldout_accuracy.png)" in text and report["narrative"] in text

    # `cooper eval` takes the demo's held-out problems and a demo policy (the README's command, smaller)
    held = read_jsonl(out / "work" / "heldout.jsonl")
    assert len(held) == report["heldout_problems"] and set(held[0]) == {"id", "question", "reference"}
    ev = tmp_path / "eval"
    args = ["--model", str(out / "work" / "sft"), "--data", str(out / "work" / "heldout.jsonl")]
    args += ["--instruction", INSTRUCTION, "--n", "2", "--top-p", "1.0", "--max-new-tokens", "40"]
    assert main(["eval", *args, "--limit", "5", "--out", str(ev)]) == 0
    results = json.loads((ev / "results.json").read_text())
    assert results["benchmarks"]["heldout"]["n_samples"] == 10
    assert results["prompt"]["rendered"].endswith(
        f"{{question}}\n{INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n"
    )
    samples = read_jsonl(ev / "samples.jsonl")
    assert {(s["problem_id"], s["reference"]) for s in samples} == {
        (r["id"], r["reference"]) for r in held[:5]
    }


def test_the_arms_give_the_same_numbers_in_this_process_or_in_parallel_workers(tmp_path):
    """With --workers 1 every phase runs in this process; with N > 1 the RL arms (and the RM backbone) run in
    N one-thread worker processes: the report's numbers do not depend on it (each job is seeded)."""
    from cooper.cli import main

    reports = {}
    for workers in (1, 3):
        out = tmp_path / f"w{workers}"
        args = ["demo", "--quick", "--out", str(out), "--workers", str(workers), "--first-seed", "4"]
        assert main(args) == 0
        reports[workers] = json.loads((out / "report.json").read_text())
        assert reports[workers]["workers"] == workers
        assert reports[workers]["seeds"] == [4]  # --first-seed: the unseen-seeds check
        assert (out / "work" / "cooper-4" / "metrics.jsonl").is_file()
    for key in ("arms", "sft_accuracy", "rm_probe", "eval_history", "cooper_gap_after_warmup"):
        assert reports[1][key] == reports[3][key], key


def test_readme_without_markers_is_an_error_and_left_alone(tmp_path):
    from cooper.demo.run import update_readme

    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="demo-results:start"):
        update_readme(readme, {}, "docs/demo")
    assert readme.read_text() == "# no markers\n"


def test_backbone_texts_state_the_reference_whatever_the_working():
    from cooper.demo.pipeline import backbone_texts
    from cooper.rm.template import COMPLETION_CLOSE, REFERENCE_OPEN

    problems = make_problems(60, seed=5)
    texts = backbone_texts(problems, random.Random(0))
    assert len(texts) == len(problems)
    flawed_working = 0
    for p, t in zip(problems, texts, strict=True):
        assert f"{REFERENCE_OPEN}{p.reference}" in t and p.question in t
        assert t.endswith(f"The answer is {p.reference}.{COMPLETION_CLOSE}")
        working = t[: t.rindex("The answer is")]
        flawed_working += f"= {p.reference}. " not in working  # the working does not reach the reference
    assert 0 < flawed_working < len(problems)  # both correct and flawed working occur


def test_backbone_texts_state_number_words_in_the_asked_share():
    from cooper.demo.pipeline import backbone_texts
    from cooper.rm.template import COMPLETION_CLOSE

    problems = make_problems(400, seed=5)
    texts = backbone_texts(problems, random.Random(0), word_share=0.3)
    words = 0
    for p, t in zip(problems, texts, strict=True):
        digits = t.endswith(f"The answer is {p.reference}.{COMPLETION_CLOSE}")
        word = t.endswith(f"The answer is {NUMBER_WORDS[int(p.reference)]}.{COMPLETION_CLOSE}")
        assert digits != word  # the reference, in exactly one of its two forms
        words += word
    assert 0.2 < words / len(problems) < 0.4


def test_demo_tokenizer_knows_the_tasks_words_and_keeps_digits_apart(tmp_path):
    """The demo trains its tokenizer on its own task text: a word of the task is one token (as in a real
    tokenizer), a number is still one token per digit, and every text round-trips."""
    from transformers import AutoTokenizer

    from cooper.demo.pipeline import DemoSettings, build_models, build_task, tokenizer_corpus
    from cooper.utils.tiny import build_tokenizer

    s = DemoSettings.quick()
    train, _ = build_task(s)
    corpus = tokenizer_corpus(train, seed=0)
    assert len(corpus) == 4 * len(train) and any(CHECK_WORD in t for t in corpus)
    tok_dir, policy_dir = build_models(train, s, tmp_path)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    generic = build_tokenizer()
    text = f"{train[0].question} 12 + 7 = 19. The answer is 19."
    ours, theirs = tok.tokenize(text), generic.tokenize(text)
    assert len(ours) < len(theirs)  # the task's words merge; the generic corpus never saw them
    assert "Ġanswer" in ours and [t for t in ours if t.strip("Ġ").isdigit()].count("1") >= 2  # digit by digit
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert AutoTokenizer.from_pretrained(policy_dir).get_vocab() == tok.get_vocab()


def test_sampling_for_evaluation_leaves_the_training_runs_random_numbers_alone(tiny_paths):
    """The periodic evaluation samples inside a training run: it must not move the run's random state (else
    how often the demo evaluates would change what the arms train), and its own samples follow its seed."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cooper.demo.pipeline import generate

    tok = AutoTokenizer.from_pretrained(tiny_paths.tokenizer_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_paths.policy_dir)
    questions = ["What is 2 + 3?", "What is 4 + 4?"]

    torch.manual_seed(7)
    expected_next = torch.rand(3)
    torch.manual_seed(7)
    first = generate(model, tok, questions, temperature=1.0, n=2, max_new_tokens=8, seed=5)
    assert torch.equal(torch.rand(3), expected_next)
    again = generate(model, tok, questions, temperature=1.0, n=2, max_new_tokens=8, seed=5)
    assert again == first and [len(s) for s in first] == [2, 2]


def _report(
    *, sft=0.40, rule=0.50, static_final=0.30, static_peak=0.45, static_gap=0.2, cooper=0.495, gap=0.1
):
    arm = {"final_accuracy": 0.0, "peak_accuracy": 0.0, "max_hacking_gap": None}
    return {
        "sft_accuracy": sft,
        "arms": {
            "rule": {**arm, "final_accuracy": rule, "peak_accuracy": rule},
            "static_rm": {
                **arm,
                "final_accuracy": static_final,
                "peak_accuracy": static_peak,
                "max_hacking_gap": static_gap,
            },
            "cooper": {**arm, "final_accuracy": cooper, "peak_accuracy": cooper, "max_hacking_gap": gap},
        },
        "cooper_gap_after_warmup": gap,
    }


def test_the_demo_effects_are_judged_by_the_issues_criteria():
    from cooper.demo.run import effects

    ok = effects(_report())
    assert ok["all"] and ok["static_rm_fall_points"] == 15.0 and ok["cooper_vs_rule_points"] == -0.5
    # static_rm is hacked by a 10-point fall from its peak, or by a hacking gap of 0.3, either one
    assert effects(_report(static_final=0.36, static_gap=0.3))["static_rm_hacked"]
    assert not effects(_report(static_final=0.36, static_gap=0.29))["static_rm_hacked"]
    assert not effects(_report(gap=0.16))["cooper_cured"] and not effects(_report(gap=None))["cooper_cured"]
    assert effects(_report(cooper=0.45))["cooper_above_sft"]  # exactly 5 points over SFT
    assert not effects(_report(cooper=0.449))["cooper_above_sft"]
    near = effects(_report(cooper=0.489))
    assert not near["cooper_near_rule"] and near["cooper_vs_rule_points"] == -1.1 and not near["all"]


def test_the_demo_bench_judges_a_report(tmp_path):
    """`bench/demo.py --report` (what `make bench` prints for the demo, without re-running it)."""
    import subprocess
    import sys
    from pathlib import Path

    report = _report(static_gap=0.35)
    report.update(seconds=250.0, peak_rss_mb=2000.0, workers=2, seeds=[0, 1, 2], quick=False)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    bench = Path(__file__).resolve().parent.parent / "bench" / "demo.py"
    proc = subprocess.run([sys.executable, str(bench), "--report", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["bench"] == "demo" and result["wall_s"] == 250.0 and result["wall_target_met"]
    assert (
        result["rss_target_met"] and result["effects_met"] and result["effects"]["static_rm_max_gap"] == 0.35
    )
    report["seconds"], report["peak_rss_mb"] = 301.0, 4097.0
    path.write_text(json.dumps(report))
    proc = subprocess.run([sys.executable, str(bench), "--report", str(path)], capture_output=True, text=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["wall_target_met"] is False and result["rss_target_met"] is False
    report.update(seconds=29.0, quick=True)  # the smoke run has its own target, 30 s
    path.write_text(json.dumps(report))
    proc = subprocess.run([sys.executable, str(bench), "--report", str(path)], capture_output=True, text=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["wall_target_s"] == 30.0 and result["wall_target_met"]
