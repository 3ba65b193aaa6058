"""The demo's phases: task, SFT warm start, hybrid annotation + RM pre-training, three RL arms, evaluation.

Every phase uses the library's own code paths (``cooper.rl.sft``, ``cooper.annotate``, ``cooper.rm.pretrain``,
``cooper.rl.train``), so the demo is also an end-to-end test of them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from transformers.utils import logging as hf_logging

from cooper.annotate.pipeline import annotate
from cooper.data.prompts import prompt_messages, user_message
from cooper.demo import worker
from cooper.demo.task import (
    CHECK_WORD,
    INSTRUCTION,
    NUMBER_WORDS,
    Problem,
    add_check,
    exact_check,
    flawed_solution,
    lenient_judge,
    make_problems,
    solution,
    worked,
)
from cooper.rl.config import load_config
from cooper.rl.sft import sft_warm_start
from cooper.rl.train import train as rl_train
from cooper.rm.model import VerifyRM
from cooper.rm.pretrain import RMTrainConfig, train_rm
from cooper.rm.template import format_rm_text
from cooper.utils.device import attention_implementation
from cooper.utils.tiny import build_causal_lm, build_tokenizer
from cooper.verify.pool import is_correct_batch

log = logging.getLogger(__name__)

ARMS = ("rule", "static_rm", "cooper")


@dataclass
class DemoSettings:
    """Sizes of the demo; :meth:`quick` is the CI smoke run."""

    problems: int = 1400
    heldout: int = 200
    # 250 steps: with the demo's own tokenizer (build_models) the policy learns faster than on the generic tiny
    # one; measured held-out accuracy 0.16 after 150 steps, 0.20 after 200, 0.42 after 250, 0.57 after 300
    sft_steps: int = 250
    sft_correct_share: float = 0.55
    # share of the correct SFT solutions that carry a verification step ("Check: r + c = s.") before the
    # answer
    sft_check_share: float = 0.1
    # share of the correct SFT solutions whose final answer is a number word ("seven"), which the rule
    # verifier misses (the other correct ones: digits, or digits with the unit)
    sft_word_share: float = 0.1
    eval_samples: int = 4  # held-out samples per problem at temperature 0.7 (the paper's protocol, smaller n)
    annotate_problems: int = 1000
    annotate_samples: int = 2
    # Off-policy worked solutions added to the RM's pre-training data: per problem one correct (half of them
    # with a verification step: the shortcut the static RM is hacked through) and one with an arithmetic slip.
    corpus_problems: int = 1000
    corpus_check_share: float = 0.5  # share of the corpus's correct solutions with a verification step
    corpus_skip_share: float = 0.0  # share of the corpus's wrong solutions that stop after the first step
    # 10 epochs: after 4 the RM had learned the shortcut but hardly to compare the answer with the reference
    # (shortcut_probe with every corpus solution checked: correct 0.18 vs wrong 0.13). After 8 it compared for
    # some reference values only: written correct vs wrong solutions scored 0.9-1.0 vs 0.0-0.05 for 0, 1, 2,
    # 5, 6, 10 and 11, but 0.2-0.45 vs 0.1-0.3 for 3, 4, 7, 8 and 9; after 10, 0.75-0.99 vs 0.0-0.16 for all
    # but 9 (with the number-word backbone below: 0.97-1.0 vs 0.0 for 0-9, but 0.02 vs 0.06 for 10 and 0.85 vs
    # 0.41 for 11, the rarest answers). Fewer epochs at a higher learning rate (5 at 1e-3) or batch 32 did not
    # learn it. Re-measured for issue 19 (the demo's tokenizer, MLP 512, length-grouped batches): 6 epochs at
    # 8e-4 learned to compare on one annotation set (correct 0.92 vs wrong 0.01) but not on two others (0.17
    # vs 0.17, 0.30 vs 0.25), 4 at 1e-3 did not (0.27 vs 0.27); 10 at 5e-4 did (0.87 vs 0.02).
    rm_epochs: float = 10.0
    rm_lr: float = 5e-4
    rm_batch_size: int = 16
    # The RM needs more width than the policy to learn "final answer == reference" (with the default
    # 128-wide, 4-head tiny classifier it only learns the format; measured ROC-AUC 0.71 vs 0.92; again for
    # issue 19 with the number-word backbone: 128 wide, MLP 512, 10 epochs: correct 0.37 vs wrong 0.22).
    rm_hidden: int = 256
    rm_heads: int = 8
    # The MLP's width: 512 (2 x rm_hidden) rather than transformers' usual 4 x, a third less compute in every
    # RM phase. Measured for issue 19 on the same SFT policy: 512 gave held-out accuracy 0.926 and probe
    # 0.87/0.02/0.89 (correct/wrong/wrong with a check step), 1024 gave 0.958 and 0.97/0.01/0.90 in 45% more
    # time, and its stronger shortcut hacked cooper at seed 0 (cooper 0.444 over seeds 0-2, against 0.505)
    rm_intermediate: int = 512
    # RM pre-training batches of rows of similar length (transformers' LengthGroupedSampler): less padding
    rm_group_by_length: bool = True
    # VerifyRM starts from a pretrained LM. The demo's stand-in: a tiny LM trained on RM-template texts whose
    # stated answer is always the reference, so it learns to look the reference up. Trained from random
    # init instead, the RM cannot learn "answer == reference" from pairs within a run (measured held-out
    # pair accuracy 0.78 -> 0.80 after 40 steps of Cooper updates; with this backbone 0.97).
    rm_backbone_steps: int = 300
    # Share of the backbone's texts that state the reference as a number word: the stand-in for a pretrained
    # LM knowing that "seven" is 7. Hybrid annotation drops every correct number-word answer (the rule
    # verifier rejects it, the judge accepts it), so this is the RM's only source for them. With 0.3 (and 10
    # epochs) the RM's GRPO advantages on the SFT policy's own samples correlate 0.89 with the exact checker's
    # (0.84 without it); the cooper arm ended 1.8 and 1.4 points below rule at seeds 0 and 1 and 1.0 above at
    # seed 2 (without it 4.1, 6.0 and 0.3 below).
    rm_backbone_word_share: float = 0.3
    rm_backbone_lr: float = 2e-3
    # 24 steps at 2e-4 (before: 40 at 1.25e-4), for the five-minute budget (issue 19); see docs/demo.md
    rl_steps: int = 24
    rl_prompts_per_step: int = 16
    rl_generations: int = 8
    rl_lr: float = 2e-4
    # 3e-4: with 6e-4 and 1.2e-3 the RM's pair accuracy fell after its first updates (0.86 -> 0.5) and cooper
    # ended at 0.465/0.467 over seeds 0-2; with 3e-4 at 0.505 (2e-4 x 2 epochs: 0.505)
    rm_update_lr: float = 3e-4
    rm_update_epochs: int = 1
    # weight of the pointwise anchor: keeps the RM's P(correct) calibrated, so the hacking gap means something
    rm_update_pointwise: float = 3.0
    negatives_from: str = (
        "first"  # cooper.negatives_from: "each" adds a perturbed positive beside the policy negative
    )
    max_completion_length: int = 40
    # trl.GRPOConfig.scale_rewards, for every arm. "batch", not TRL's default "group": dividing by each
    # group's own std turns an RM's small score differences inside an all-wrong group into full-size
    # advantages (measured with 60 RL steps at seeds 0/1: cooper 0.536/0.465 with "group", 0.551/0.527 with
    # "batch"; rule 0.539/0.544 and 0.539/0.521).
    scale_rewards: str = "batch"
    # held-out evaluation every 8 RL steps, for the accuracy curve and static_rm's peak: it does not change what
    # an arm trains (generate forks the RNG); each costs about 2.6 s on one thread, together about 15% of the
    # RL phase (issue 19)
    eval_every: int = 8
    task_seed: int = 1234
    # The RM backbone and RM pre-training under bf16 autocast over fp32 weights. Off: on this project's 2-core
    # CPU (which has bf16 instructions) it made RM pre-training 1.4 times as fast (105 s instead of 150) and
    # the RM more accurate on held-out rows (0.95 against 0.93), but cooper ended 5.4 points below rule over
    # seeds 0-2 (fp32: 2.2); with the RL arms in bf16 as well, 380 s in all and 4.9 points below; with SFT in
    # bf16 too, SFT reached 0.29 instead of 0.42 and the RM did not learn to compare answers (docs/demo.md)
    bf16: bool = False

    @classmethod
    def quick(cls) -> DemoSettings:
        return cls(
            problems=240,
            heldout=40,
            sft_steps=20,
            annotate_problems=60,
            corpus_problems=60,
            rm_epochs=1.0,
            rm_backbone_steps=10,
            rl_steps=3,
            rl_prompts_per_step=4,
            rl_generations=4,
            eval_every=3,
        )


def problem_rows(problems: list[Problem]) -> list[dict[str, Any]]:
    return [{"id": p.id, "question": p.question, "reference": p.reference} for p in problems]


# -- generation from an in-memory model -------------------------------------------------------------
def generate(
    model: Any,
    tokenizer: Any,
    questions: list[str],
    *,
    temperature: float,
    n: int = 1,
    max_new_tokens: int = 40,
    batch_size: int = 64,
    seed: int = 0,
) -> list[list[str]]:
    """``n`` completions per question (greedy when ``temperature == 0``), through the chat template. Sampling
    draws from its own random state (from ``seed``): an evaluation inside a training run leaves the run's
    random numbers as they were, so how often it evaluates does not change what it trains."""
    prompts = [
        tokenizer.apply_chat_template(
            prompt_messages(q, INSTRUCTION), add_generation_prompt=True, tokenize=False
        )
        for q in questions
    ]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    out: list[list[str]] = [[] for _ in questions]
    gen = torch.Generator().manual_seed(seed)
    rng_devices = [model.device] if model.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=rng_devices):
            for start in range(0, len(prompts), batch_size):
                chunk = prompts[start : start + batch_size]
                enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(
                    model.device
                )
                torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
                with torch.no_grad():
                    ids = model.generate(
                        **enc,
                        max_new_tokens=max_new_tokens,
                        do_sample=temperature > 0,
                        temperature=temperature if temperature > 0 else None,
                        top_p=None,
                        top_k=None,
                        num_return_sequences=n,
                        pad_token_id=tokenizer.pad_token_id,
                    )
                texts = tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
                for j, text in enumerate(texts):
                    out[start + j // n].append(text.strip())
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


def heldout_accuracy(
    model: Any, tokenizer: Any, problems: list[Problem], max_new_tokens: int, n: int = 4, seed: int = 0
) -> dict[str, float]:
    """Average accuracy of ``n`` samples per problem at temperature 0.7, by the exact checker and by the
    rule verifier, and the share of samples with a verification step (the shortcut the demo's RM learns)."""
    samples = generate(
        model,
        tokenizer,
        [p.question for p in problems],
        temperature=0.7,
        n=n,
        max_new_tokens=max_new_tokens,
        seed=seed,
    )
    texts = [t for ts in samples for t in ts]
    refs = [p.reference for p in problems for _ in range(n)]
    exact = sum(exact_check(t, r) for t, r in zip(texts, refs, strict=True)) / len(texts)
    rule = sum(is_correct_batch(texts, refs)) / len(texts)
    check = sum(CHECK_WORD in t for t in texts) / len(texts)
    return {"exact": exact, "rule": rule, "check": check}


def periodic_eval_callback(
    problems: list[Problem], every: int, max_new_tokens: int, n: int, history: list[dict]
) -> TrainerCallback:
    """A TrainerCallback that appends ``{step, exact, rule}`` on held-out problems every ``every`` steps."""

    class PeriodicEval(TrainerCallback):
        def on_step_end(
            self,
            args: Any,
            state: Any,
            control: Any,
            model: Any = None,
            processing_class: Any = None,
            **kw: Any,
        ) -> None:
            if state.global_step % every == 0 or state.global_step == state.max_steps:
                acc = heldout_accuracy(model, processing_class, problems, max_new_tokens, n)
                history.append({"step": state.global_step, **acc})

    return PeriodicEval()


# -- phases -----------------------------------------------------------------------------------------
def tokenizer_corpus(problems: list[Problem], seed: int) -> list[str]:
    """The task's own text for the demo's tokenizer: each problem's question, a correct solution (some with a
    check step or a number word) and a flawed one, and the RM template around them, so that the task's words
    are single tokens as a real tokenizer's would be (numbers stay one token per digit)."""
    rng = random.Random(seed)
    lines = []
    for p in problems:
        good = solution(p, rng, word_share=0.3, check=rng.random() < 0.5)
        bad = flawed_solution(p, rng)
        lines += [p.question, good, bad, format_rm_text(p.question, p.reference, good)]
    return lines


def build_models(train: list[Problem], s: DemoSettings, out: Path) -> tuple[Path, Path]:
    """The demo's tokenizer (the tiny maths corpus plus :func:`tokenizer_corpus` of the training problems) and
    its random-init policy; returns ``(tokenizer_dir, policy_dir)``."""
    tok = build_tokenizer(out / "tokenizer", extra_corpus=tokenizer_corpus(train, s.task_seed + 4))
    return out / "tokenizer", build_causal_lm(out / "policy", tokenizer=tok)


def build_task(s: DemoSettings) -> tuple[list[Problem], list[Problem]]:
    problems = make_problems(s.problems, s.task_seed)
    return problems[s.heldout :], problems[: s.heldout]


def sft_phase(
    base_policy: Path, train: list[Problem], s: DemoSettings, out: Path, callbacks: list[Any] | None = None
) -> Path:
    """Warm start on worked solutions: mostly correct (in varied surface forms), some with a slip."""
    rng = random.Random(s.task_seed)
    examples = [
        {
            "prompt": user_message(p.question, INSTRUCTION),
            "completion": solution(
                p, rng, word_share=s.sft_word_share, check=rng.random() < s.sft_check_share
            )
            if rng.random() < s.sft_correct_share
            else flawed_solution(p, rng),
        }
        for p in train
    ]
    return sft_warm_start(
        base_policy,
        examples,
        out,
        max_steps=s.sft_steps,
        learning_rate=3e-3,
        batch_size=32,
        callbacks=callbacks or (),
    )


def corpus_rows(
    problems: list[Problem], rng: random.Random, check_share: float = 1.0, skip_share: float = 0.5
) -> list[dict[str, Any]]:
    """Written (off-policy) solutions, per problem one correct (with a verification step in a share
    ``check_share``) and one flawed (stopping after the first step in a share ``skip_share``)."""
    rows = []
    for p in problems:
        good = solution(p, rng, check=rng.random() < check_share)
        for k, text in enumerate([good, flawed_solution(p, rng, skip_share=skip_share)]):
            rows.append(
                {
                    "id": f"{p.id}-w{k}",
                    "question": p.question,
                    "reference": p.reference,
                    "completion": text,
                    "source": "corpus",
                }
            )
    return rows


def annotation_phase(sft_dir: Path, train: list[Problem], s: DemoSettings, out: Path) -> tuple[Path, dict]:
    """Sample the SFT policy, add the written corpus (:func:`corpus_rows`), label every row by rule verifier +
    an independent judge, keep agreements."""
    tok = AutoTokenizer.from_pretrained(sft_dir)
    model = AutoModelForCausalLM.from_pretrained(sft_dir)
    probs = train[: s.annotate_problems]
    samples = generate(
        model,
        tok,
        [p.question for p in probs],
        temperature=1.0,
        n=s.annotate_samples,
        max_new_tokens=s.max_completion_length,
        seed=s.task_seed,
    )
    rows = [
        {
            "id": f"{p.id}-s{k}",
            "question": p.question,
            "reference": p.reference,
            "completion": c,
            "source": "sft",
        }
        for p, cs in zip(probs, samples, strict=True)
        for k, c in enumerate(cs)
        if c.strip()  # an empty sample has nothing to label
    ]
    rows += corpus_rows(
        train[: s.corpus_problems], random.Random(s.task_seed + 3), s.corpus_check_share, s.corpus_skip_share
    )
    rng = random.Random(s.task_seed + 1)
    stats = annotate(rows, lambda q, ref, c: lenient_judge(c, ref, rng), out)
    return out / "annotated.jsonl", stats


def backbone_texts(problems: list[Problem], rng: random.Random, word_share: float = 0.0) -> list[str]:
    """RM-template texts (question, reference, worked solution) whose final answer is the reference, with
    correct or flawed working: the only way to predict the answer is to read the reference. In a share
    ``word_share`` the answer is the reference's number word."""
    texts = []
    for p in problems:
        working = solution(p, rng) if rng.random() < 0.5 else flawed_solution(p, rng)
        answer = NUMBER_WORDS[int(p.reference)] if word_share and rng.random() < word_share else p.reference
        stated = working[: working.rindex("The answer is")] + f"The answer is {answer}."
        texts.append(format_rm_text(p.question, p.reference, stated))
    return texts


def build_rm(
    tokenizer_dir: Path,
    train: list[Problem],
    s: DemoSettings,
    out: Path,
    on_step: Callable[[], None] | None = None,
) -> Path:
    """The demo's VerifyRM backbone: a tiny causal LM, wider than the policy (``DemoSettings.rm_hidden``),
    pre-trained on :func:`backbone_texts` with a fresh text for every row it sees. ``cooper train-rm`` puts a
    fresh one-logit head on it. ``on_step`` is called after every step (the demo's progress, in-process).

    A plain PyTorch loop rather than TRL's ``SFTTrainer``, and that is measured, not taste: backbones trained with
    ``SFTTrainer`` on the same texts (two runs, 3 and then 9,600 distinct texts) copied the reference as well
    (0.98-0.99 next-token accuracy) but the RMs built on them leaned on the shortcut and Cooper's pairs could
    not correct them (pair accuracy 0.79-0.81 -> 0.75-0.78 over 30 updates); with this loop the same RM data
    gave an RM they could (0.83 -> 0.89). Why is not understood; see the README's demo section.
    """
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    build_causal_lm(
        out,
        tokenizer=tok,
        hidden_size=s.rm_hidden,
        intermediate_size=s.rm_intermediate,
        num_layers=2,
        num_heads=s.rm_heads,
        num_kv_heads=s.rm_heads,
    )
    model = AutoModelForCausalLM.from_pretrained(out, attn_implementation=attention_implementation(s.bf16))
    model.train()
    steps, batch_size, warmup = s.rm_backbone_steps, 32, 20
    opt = torch.optim.AdamW(model.parameters(), lr=s.rm_backbone_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warmup) * max(0.0, 1.0 - i / steps)
    )
    rng = random.Random(s.task_seed + 2)
    tok.padding_side = "right"
    for step in range(steps):
        texts = [
            t + tok.eos_token
            for t in backbone_texts(rng.sample(train, batch_size), rng, s.rm_backbone_word_share)
        ]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        with torch.autocast(model.device.type, torch.bfloat16, enabled=s.bf16):
            loss = model(**enc, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if on_step is not None:
            on_step()
        if step % 50 == 0 or step == steps - 1:
            log.info("RM backbone LM step %d/%d loss %.3f", step + 1, steps, loss.item())
    model.save_pretrained(out)
    return out


def shortcut_probe(rm_dir: Path, problems: list[Problem]) -> dict[str, float]:
    """Mean RM score of written solutions to ``problems``: correct, wrong (a slip in the second step), and the
    same wrong ones with a verification step. ``wrong_with_check`` far above ``wrong`` is the shortcut."""
    rm = VerifyRM.from_pretrained(rm_dir, max_length=160)
    rng = random.Random(0)
    texts: dict[str, list[str]] = {"correct": [], "wrong": [], "wrong_with_check": []}
    for p in problems:
        s, r = p.a + p.b, p.a + p.b - p.c
        w = r + rng.choice([-1, 1]) if r > 0 else r + 1
        texts["correct"].append(worked(p, s, r, r))
        wrong = worked(p, s, w, w)
        texts["wrong"].append(wrong)
        texts["wrong_with_check"].append(add_check(wrong, p))
    qs, refs = [p.question for p in problems], [p.reference for p in problems]
    return {k: sum(v := rm.score(qs, refs, ts)) / len(v) for k, ts in texts.items()}


def rm_phase(
    annotated: Path, base_rm: Path, s: DemoSettings, out: Path, callbacks: list[Any] | None = None
) -> tuple[Path, dict]:
    cfg = RMTrainConfig(
        data=[str(annotated)],
        out=str(out),
        model=str(base_rm),
        eval_split=0.15,
        epochs=s.rm_epochs,
        learning_rate=s.rm_lr,
        batch_size=s.rm_batch_size,
        max_length=160,
        group_by_length=s.rm_group_by_length,
        save_steps=10_000,
        progress_bar=False,  # the demo's own progress line covers it
        seed=s.task_seed,
        bf16=True if s.bf16 else None,  # None: the library's choice (bf16 on a GPU that has it)
    )
    metrics = train_rm(cfg, callbacks=callbacks or ())
    return out, metrics


def arm_phase(
    arm: str,
    seed: int,
    sft_dir: Path,
    rm_dir: Path,
    train_file: Path,
    held: list[Problem],
    s: DemoSettings,
    out: Path,
) -> dict[str, Any]:
    """One RL arm: ``cooper train`` from the SFT policy and the pre-trained RM, evaluated periodically."""
    cfg = load_config(
        None,
        [],
        output_dir=str(out),
        policy=str(sft_dir),
        seed=seed,
        data={"files": [str(train_file)], "instruction": INSTRUCTION},
        # the rule arm needs no RM (its RM columns in the report are then null), which saves a third of the
        # time
        reward={
            "mode": arm,
            "rm": None if arm == "rule" else str(rm_dir),
            "rm_max_length": 160,
            "rm_batch_size": 64,
        },
        cooper={
            "negatives": ["policy", "perturb"],
            "negatives_from": s.negatives_from,
            "rm_update": {
                "learning_rate": s.rm_update_lr,
                "epochs": s.rm_update_epochs,
                "pointwise_weight": s.rm_update_pointwise,
            },
        },
        monitor={"plot": False},
        grpo={
            "max_steps": s.rl_steps,
            "learning_rate": s.rl_lr,
            "per_device_train_batch_size": s.rl_prompts_per_step * s.rl_generations,
            "num_generations": s.rl_generations,
            "max_completion_length": s.max_completion_length,
            "temperature": 1.0,
            "beta": 0.0,
            "scale_rewards": s.scale_rewards,
            "save_strategy": "no",
            "disable_tqdm": True,
        },
    )
    history: list[dict] = []
    callback = periodic_eval_callback(held, s.eval_every, s.max_completion_length, s.eval_samples, history)
    summary = rl_train(cfg, callbacks=[callback])
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {"arm": arm, "seed": seed, "summary": summary, "eval": history, "metrics": metrics}


# -- independent work in parallel processes ---------------------------------------------------------------
def available_cores() -> int:
    """The cores this process may run on (``taskset`` and container limits included)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def show_progress_bars(show: tuple[bool, bool]) -> tuple[bool, bool]:
    """Turn the progress bars of (transformers, datasets) on or off; returns whether each was on."""
    was_on = hf_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled()
    if show[0]:
        hf_logging.enable_progress_bar()
    else:
        hf_logging.disable_progress_bar()
    if show[1]:
        datasets.enable_progress_bars()
    else:
        datasets.disable_progress_bars()
    return was_on


@contextlib.contextmanager
def quiet_trainers() -> Iterator[None]:
    """Without the trainers' printed log dicts (stdout) and the progress bars of transformers (loading, saving)
    and datasets (tokenizing): the demo's progress line stands for them. ``metrics.jsonl`` and the logs keep
    every value."""
    bars_were_on = show_progress_bars((False, False))
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            yield
    finally:
        show_progress_bars(bars_were_on)


class Workers:
    """``workers`` processes (spawned, one thread each) for independent jobs: the RM backbone beside SFT, then
    the RL arms. With one worker, jobs run in this process when their result is asked for, in order."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self.pool: Any = None
        if self.workers > 1:
            self.pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=worker.init
            )

    def submit(self, fn: Any, *args: Any) -> Any:
        if self.pool is not None:
            return self.pool.submit(fn, *args)
        return _Deferred(fn, args)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


class _Deferred:
    """A job for one worker: run in this process when its result is asked for."""

    def __init__(self, fn: Any, args: tuple[Any, ...]) -> None:
        self.fn, self.args, self._done, self._value = fn, args, False, None

    def done(self) -> bool:
        return self._done

    def result(self, timeout: float | None = None) -> Any:
        if not self._done:
            self._value, self._done = self.fn(*self.args), True
        return self._value


def settings_dict(s: DemoSettings) -> dict[str, Any]:
    return asdict(s)


def elapsed(t0: float) -> float:
    return round(time.perf_counter() - t0, 1)
