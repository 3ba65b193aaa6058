"""One Cooper step vs one static-RM step at Qwen2.5-1.5B sizes on one GPU, phase by phase.

Random-init models with Qwen2.5-1.5B-Instruct's configuration (no weights are read: the constants below are
its ``config.json``), random prompt ids, the paper's recipe sizes (16 rollouts per prompt, a few prompts;
prompt 512 and response 512 tokens here). One step of each mode, in the order of the algorithm box:

* generation         ``policy.generate`` with ``min_new_tokens = max_new_tokens`` (fixed lengths), sampling at
                     temperature 1; like TRL 1.16's transformers path: no autocast, the policy's own dtype
* reference_logprobs the reference model's per-token log-probs (paper: beta 0.001), bf16 autocast
* scoring            ``VerifyRM.score_logits`` on (prompt + response)-token inputs, ``rm_batch_size`` 32
* verification       decode the rollouts and run ``cooper.verify.is_correct_batch`` (cheap, CPU)
* rm_update          (cooper only) ``cooper.rl.rm_update.RMUpdater.update`` on one pair per prompt group;
                     positives and negatives are random token sequences of the RM input length (as if
                     every group had a verified positive: the most pairs a step can have)
* policy_update      GRPO: one forward+backward per micro-batch through TRL's fused LM head
                     (``trl.trainer.utils.add_fused_lm_head``, what ``GRPOTrainer`` uses), the clipped
                     objective + beta * k3 KL with a token-level mean (TRL's default ``dapo`` normalisation),
                     gradient checkpointing, clip 1.0, AdamW. Written here directly in torch, not through
                     ``GRPOTrainer``, so that each phase can be timed on its own.

``--warmup`` (1) + ``--steps`` (3) steps of ``static_rm``, then of ``cooper``, each mode with only its own RM
in memory; phase times are medians over the measured steps, every phase between ``cuda.synchronize`` calls.
Dtypes follow what ``cooper train`` with TRL 1.16 does on a bf16 GPU: the policy and the reference are
loaded in fp32 (TRL's default for a model path) and run forward/backward under bf16 autocast; the static RM
is bf16; the co-trained RM keeps fp32 master weights and computes under bf16 autocast (``--policy-dtype
bfloat16`` loads policy and reference in bf16 instead).

MFU of the policy update = model FLOPs / time / peak: 6 * (body parameters * all tokens + vocab * hidden *
response tokens) (the fused head projects only response positions on a GPU); attention-score FLOPs and the
recomputation of gradient checkpointing are not counted (model FLOPs, not hardware FLOPs). Peak dense bf16
FLOPs come from the device name (H100/H200 SXM: 989e12), or ``--peak-tflops``. On a CPU, MFU is null
(there is no meaningful peak to divide by) and ``peak_mem_gb`` is the process's peak RSS instead of
``torch.cuda.max_memory_allocated``; ``peak_mem_source`` says which.

    python bench/gpu_step.py                     # on a GPU (without one: the dry run, with "fallback" set)
    python bench/gpu_step.py --dry-run           # tiny models on a CPU in seconds, same code path and keys
    python bench/gpu_step.py --memory-table      # the calculated (not measured) memory table of docs/scaling.md

Last stdout line: one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import statistics
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

from cooper.rm.model import VerifyRM
from cooper.utils.device import is_cuda
from cooper.utils.device import on_gpu as cuda_visible

# Qwen2.5-1.5B-Instruct's config.json (the values that size the model).
QWEN25_1_5B: dict[str, Any] = {
    "hidden_size": 1536,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "intermediate_size": 8960,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
}
# The dry run's model: same architecture, tiny (vocab = the tiny tokenizer's, 512).
TINY: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "vocab_size": 512,
    "tie_word_embeddings": True,
    "max_position_embeddings": 256,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-6,
}

# Dense (no sparsity) bf16 tensor-core peak FLOP/s by device-name substring, from the vendors' data sheets.
# Longest match wins ("H100 PCIe" before "H100").
PEAK_BF16_FLOPS: dict[str, float] = {
    "H200": 989e12,
    "GH200": 989e12,
    "H100": 989e12,  # SXM
    "H100 PCIe": 756e12,
    "H800": 989e12,
    "B200": 2250e12,
    "A100": 312e12,
    "A800": 312e12,
    "L40S": 362e12,
    "L40": 181e12,
    "L4": 121e12,
    "MI300X": 1307e12,
}

log = logging.getLogger("gpu_step")


@dataclass
class Recipe:
    """Sizes of one training step (defaults: the paper's recipe, response 512)."""

    model: dict[str, Any] = field(default_factory=lambda: dict(QWEN25_1_5B))
    prompts: int = 4  # prompt groups per step
    rollouts: int = 16  # completions per prompt (grpo.num_generations)
    prompt_len: int = 512
    response_len: int = 512
    micro_batch: int = 64  # sequences per policy forward/backward (grpo.per_device_train_batch_size)
    rm_batch: int = 32  # reward.rm_batch_size
    beta: float = 0.001
    epsilon: float = 0.2
    learning_rate: float = 1e-6
    rm_learning_rate: float = 1e-5
    gradient_checkpointing: bool = True

    @property
    def rollouts_total(self) -> int:
        return self.prompts * self.rollouts

    @property
    def rm_len(self) -> int:  # RM input: question + reference + completion, taken as prompt + response
        return self.prompt_len + self.response_len


def dry_run_recipe() -> Recipe:
    return Recipe(
        model=dict(TINY), prompts=2, rollouts=4, prompt_len=16, response_len=16, micro_batch=8, rm_batch=8
    )


# -- parameter and FLOP counts (pure functions of the config) ---------------------------------------------
def layer_params(c: dict[str, Any]) -> int:
    """Parameters of one Qwen2 decoder layer: q/k/v with biases, o, SwiGLU MLP, two RMSNorms."""
    h, i = c["hidden_size"], c["intermediate_size"]
    kv = h // c["num_attention_heads"] * c["num_key_value_heads"]
    return (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * i + 2 * h


def causal_lm_params(c: dict[str, Any]) -> int:
    """Qwen2ForCausalLM parameters (a tied LM head is the embedding, counted once)."""
    head = 0 if c["tie_word_embeddings"] else c["vocab_size"] * c["hidden_size"]
    return (
        c["vocab_size"] * c["hidden_size"]
        + c["num_hidden_layers"] * layer_params(c)
        + c["hidden_size"]
        + head
    )


def classifier_params(c: dict[str, Any]) -> int:
    """Qwen2ForSequenceClassification with one logit (VerifyRM): the backbone plus a bias-free h -> 1 head."""
    return (
        c["vocab_size"] * c["hidden_size"] + c["num_hidden_layers"] * layer_params(c) + 2 * c["hidden_size"]
    )


def policy_update_flops(c: dict[str, Any], seqs: int, prompt_len: int, response_len: int) -> float:
    """Model FLOPs of one forward+backward: 6 * body params * all tokens + 6 * V * h * response tokens."""
    head = c["vocab_size"] * c["hidden_size"]
    body = causal_lm_params(c) - head  # the embedding lookup costs no FLOPs; the (tied) head is counted below
    return 6.0 * (body * seqs * (prompt_len + response_len) + head * seqs * response_len)


def peak_flops_for(device_name: str) -> float | None:
    matches = [k for k in PEAK_BF16_FLOPS if k.lower() in device_name.lower()]
    return PEAK_BF16_FLOPS[max(matches, key=len)] if matches else None


# -- the calculated memory table (docs/scaling.md) ----------------------------------------------------------
GIB = 2**30


def activation_bytes_per_token_layer(c: dict[str, Any]) -> int:
    """Saved-for-backward bytes per token per decoder layer: fp32 weights under bf16 autocast, SDPA attention.

    The residual stream is fp32 (fp32 embedding + bf16 branch outputs), so each of the two RMSNorms keeps its
    fp32 input, its fp32 normalised value and the bf16 cast its linear layers save: 2 x (4h + 4h + 2h) = 20h.
    Attention keeps bf16 q (2h), k and v (4kv), k and v repeated to all heads for GQA (4h; transformers
    repeats them when an attention mask is passed) and its output (2h): 8h + 4kv. The SwiGLU MLP keeps gate,
    up, silu(gate) and their product in bf16: 8I. Total 28h + 4kv + 8I (115,712 B for Qwen2.5-1.5B; measured
    on a CPU with saved-tensor hooks: 118,840 B, see tests/test_gpu_step.py).
    """
    h, i = c["hidden_size"], c["intermediate_size"]
    kv = h // c["num_attention_heads"] * c["num_key_value_heads"]
    return 28 * h + 4 * kv + 8 * i


def memory_table(
    c: dict[str, Any] | None = None,
    *,
    prompt_len: int = 512,
    response_len: int = 1024,
    micro_batch: int = 64,
    steps_per_generation: int = 2,
    rm_pairs_per_rank: int = 8,
    rm_len: int = 1024,
    world: int = 8,
) -> dict[str, Any]:
    """Per-GPU memory of a cooper run at the paper's recipe, by calculation (GiB). See docs/scaling.md.

    Bytes per parameter: TRL 1.16 loads the policy (and the reference like it) in fp32 and trains under bf16
    autocast: fp32 weights 4 + fp32 grads 4 + AdamW moments 8, plus the bf16 copies autocast keeps while a
    forward's graph is alive (2). DDP adds its gradient buckets (4, allocated once, kept). DeepSpeed bf16
    keeps bf16 weights (2) and grads (2) and an fp32 master + moments (12) in the optimizer; ZeRO-2 shards
    grads and optimizer, ZeRO-3 also the weights, over ``world`` ranks; TRL runs the reference with DeepSpeed
    too (stage 0 under ZeRO-2, sharded under ZeRO-3). The VerifyRM, whatever the policy's backend: bf16
    weights (2) on every rank in ``static_rm``; in ``cooper`` with ``rm_update.parallel: replicate`` (and on
    one GPU) fp32 weights + AdamW (12) on every rank, fp32 grads (4) and autocast copies (2) during its
    update; with ``shard`` (FSDP2, the column ``cooper, RM shard``) the 12 and the 4 are split over ``world``
    ranks and the bf16 compute copies are those FSDP2 gathers: the root unit (embedding, final norm, head:
    kept gathered between forward and backward) and two decoder layers (one computing, one prefetched).
    """
    c = c or QWEN25_1_5B
    n = causal_lm_params(c)
    n_rm = classifier_params(c)
    h, layers = c["hidden_size"], c["num_hidden_layers"]
    kv = h // c["num_attention_heads"] * c["num_key_value_heads"]
    a_layer = activation_bytes_per_token_layer(c)
    tokens = micro_batch * (prompt_len + response_len)
    resp_tokens = micro_batch * response_len
    fused_head = 4 * c["vocab_size"] * h + 8 * h * resp_tokens  # fp32 head-weight grad + fp32 hidden grads
    act_full = tokens * layers * a_layer + fused_head
    act_ckpt = tokens * layers * 4 * h + tokens * a_layer + fused_head  # fp32 layer inputs + one layer
    rm_act = 2 * rm_pairs_per_rank * rm_len * layers * a_layer  # cooper does not checkpoint the RM
    gen_seqs = micro_batch * steps_per_generation
    kv_per_byte = gen_seqs * (prompt_len + response_len) * layers * 2 * kv  # x bytes per element

    setups = {  # policy state, policy grads, autocast copies, reference, ZeRO-3 gather, KV-cache element bytes
        "1 GPU": (12 * n, 4 * n, 2 * n, 4 * n, 0, 4),
        f"{world} GPU DDP": (16 * n, 4 * n, 2 * n, 4 * n, 0, 4),  # + 4N of gradient buckets, persistent
        f"{world} GPU ZeRO-2": (2 * n + 12 * n / world, 2 * n / world, 0, 2 * n, 0, 2),
        f"{world} GPU ZeRO-3": (14 * n / world, 2 * n / world, 0, 2 * n / world, 2 * n, 2),
    }
    out: dict[str, Any] = {
        "calculated_not_measured": True,
        "unit": "GiB",
        "policy_params": n,
        "rm_params": n_rm,
        "assumptions": {
            "prompt_len": prompt_len,
            "response_len": response_len,
            "micro_batch_seqs": micro_batch,
            "generation_seqs_per_rank": gen_seqs,
            "rm_pairs_per_rank": rm_pairs_per_rank,
            "rm_len": rm_len,
            "world": world,
            "activation_bytes_per_token_layer": a_layer,
        },
        "setups": {},
    }
    rm_root = n_rm - layers * layer_params(c)  # embedding, final norm, score head: FSDP2's root unit
    rm_shard_gathered = 2 * (rm_root + 2 * layer_params(c))  # bf16: the root and two decoder layers
    rm = {  # mode: (RM state kept, RM update: grads + compute copies + activations)
        "static_rm": (2 * n_rm, 0),
        "cooper": (12 * n_rm, 4 * n_rm + 2 * n_rm + rm_act),
        "cooper, RM shard": (12 * n_rm / world, 4 * n_rm / world + rm_shard_gathered + rm_act),
    }
    for name, (pol_state, pol_grads, pol_cast, ref, gather, kv_bytes) in setups.items():
        kv_cache = kv_per_byte * kv_bytes
        for mode, (rm_state, rm_update) in rm.items():
            if mode.endswith("shard") and name == "1 GPU":
                continue  # one rank holds the whole RM either way
            persistent = pol_state + ref + rm_state
            row = {
                "policy weights + AdamW (+ DDP buckets)": pol_state,
                "policy grads": pol_grads,
                "policy autocast bf16 copies": pol_cast,
                "reference": ref,
                "VerifyRM (weights, + AdamW in cooper; sharded)": rm_state,
                "KV cache (generation)": kv_cache,
                "policy activations, checkpointing": act_ckpt,
                "policy activations, no checkpointing": act_full,
                "RM update: grads + casts + activations": rm_update,
                "peak, generation": persistent + kv_cache + gather,
                "peak, policy update (checkpointing)": persistent + pol_grads + pol_cast + act_ckpt,
                "peak, policy update (no checkpointing)": persistent + pol_grads + pol_cast + act_full,
                "peak, RM update": persistent + rm_update,
            }
            row["PEAK (checkpointing)"] = max(
                row["peak, generation"], row["peak, policy update (checkpointing)"], row["peak, RM update"]
            )
            row["PEAK (no checkpointing)"] = max(
                row["peak, generation"], row["peak, policy update (no checkpointing)"], row["peak, RM update"]
            )
            out["setups"][f"{name}, {mode}"] = {k: round(v / GIB, 1) for k, v in row.items()}
    return out


def print_memory_table(table: dict[str, Any]) -> None:
    names = list(table["setups"])
    keys = list(next(iter(table["setups"].values())))
    print("| GiB per GPU | " + " | ".join(names) + " |", file=sys.stderr)
    print("|---" * (len(names) + 1) + "|", file=sys.stderr)
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{table['setups'][n][k]:.1f}" for n in names) + " |", file=sys.stderr)


# -- models ---------------------------------------------------------------------------------------------
def build_policy(recipe: Recipe, device: Any, policy_dtype: Any) -> dict[str, Any]:
    """Tokenizer, policy (fused LM head, gradient checkpointing) and its frozen reference copy."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from cooper.utils.tiny import build_tokenizer

    tok = build_tokenizer()
    cfg = Qwen2Config(**recipe.model, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    cfg.use_cache = False
    torch.manual_seed(0)
    with torch.device(device):
        policy = Qwen2ForCausalLM(cfg).to(policy_dtype)
    ref = copy.deepcopy(policy).eval().requires_grad_(False)
    if recipe.gradient_checkpointing:
        policy.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    add_fused_lm_head(policy, temperature=1.0)
    add_fused_lm_head(ref, temperature=1.0)
    return {"tokenizer": tok, "policy": policy, "ref": ref, "config": cfg}


def build_rm(mode: str, m: dict[str, Any], device: Any) -> Any:
    """The VerifyRM as ``cooper.rl.build.build_reward`` loads it on a bf16 GPU: bf16 weights in ``static_rm``;
    fp32 master weights computing under bf16 autocast in ``cooper``. Same random init in both modes."""
    import torch
    from transformers import Qwen2ForSequenceClassification

    rm_cfg = copy.deepcopy(m["config"])
    rm_cfg.num_labels = 1
    on_gpu = is_cuda(device)
    torch.manual_seed(1)
    with torch.device(device):
        model = Qwen2ForSequenceClassification(rm_cfg).float()
    rm = BenchRM(model.to(torch.bfloat16) if on_gpu and mode == "static_rm" else model, m["tokenizer"])
    if on_gpu and mode == "cooper":
        rm.autocast_dtype = torch.bfloat16
    return rm


class BenchRM(VerifyRM):
    """VerifyRM whose ``encode`` returns pre-made random ids (fixed lengths) keyed by completion text.

    Scoring and the RM update then run VerifyRM's and RMUpdater's own code on inputs of exactly the recipe's
    length; the tokenisation of real text (CPU work) is left out.
    """

    def __init__(self, model: Any, tokenizer: Any) -> None:
        super().__init__(model.eval(), tokenizer, max_length=4096)
        self.ids_by_text: dict[str, list[int]] = {}

    def encode(self, questions: list[str], references: list[str], completions: list[str]) -> list[list[int]]:
        return [self.ids_by_text[c] for c in completions]


# -- one step -------------------------------------------------------------------------------------------
class Timer:
    def __init__(self, device: Any) -> None:
        import torch

        self.sync = torch.cuda.synchronize if is_cuda(device) else (lambda: None)
        self.seconds: dict[str, float] = {}

    def phase(self, name: str) -> Any:
        timer = self

        class _Phase:
            def __enter__(self) -> None:
                timer.sync()
                self.t = time.perf_counter()

            def __exit__(self, *exc: Any) -> None:
                timer.sync()
                timer.seconds[name] = time.perf_counter() - self.t

        return _Phase()


def group_advantages(rewards: Any, group: int) -> Any:
    """(B,) rewards -> (B,) advantages normalised within each consecutive group of ``group`` rollouts."""
    r = rewards.view(-1, group)  # (G, n)
    return ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)).view(-1)


def grpo_loss(logps: Any, old_logps: Any, ref_logps: Any, adv: Any, eps: float, beta: float) -> Any:
    """Per-token clipped surrogate + beta * k3 KL, summed. Shapes: (b, R) log-probs, (b,) advantages."""
    import torch

    ratio = torch.exp(logps - old_logps)
    a = adv.unsqueeze(1)
    surrogate = -torch.min(ratio * a, torch.clamp(ratio, 1 - eps, 1 + eps) * a)
    kl = torch.exp(ref_logps - logps) - (ref_logps - logps) - 1  # k3, >= 0
    return (surrogate + beta * kl).sum()


def run_step(
    mode: str, m: dict[str, Any], rm: Any, opt: Any, updater: Any, recipe: Recipe, device: Any
) -> dict[str, float]:
    """One training step of ``mode`` (static_rm or cooper); returns seconds per phase."""
    import torch

    from cooper.rl.rm_update import Pair
    from cooper.verify.pool import is_correct_batch

    on_gpu = is_cuda(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if on_gpu else nullcontext()
    policy, ref, tok = m["policy"], m["ref"], m["tokenizer"]
    vocab = recipe.model["vocab_size"]
    B, P, R = recipe.rollouts_total, recipe.prompt_len, recipe.response_len  # noqa: N806
    prompts = torch.randint(0, vocab, (recipe.prompts, P), device=device).repeat_interleave(
        recipe.rollouts, 0
    )
    t = Timer(device)
    t_step = time.perf_counter()

    with t.phase("generation"), torch.no_grad():
        policy.eval()
        seqs = policy.generate(
            input_ids=prompts,
            attention_mask=torch.ones_like(prompts),
            do_sample=True,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            max_new_tokens=R,
            min_new_tokens=R,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            use_cache=True,
        )  # (B, P + R)
    assert seqs.shape == (B, P + R), seqs.shape
    labels = seqs.masked_fill(torch.arange(P + R, device=device) < P, -100)  # score response tokens only
    mask = torch.ones_like(seqs)  # as TRL passes it (no padding here: every rollout has the same length)

    with t.phase("reference_logprobs"), torch.no_grad(), autocast:
        ref_logps = torch.cat(
            [
                ref(
                    input_ids=seqs[i : i + recipe.micro_batch],
                    attention_mask=mask[i : i + recipe.micro_batch],
                    labels=labels[i : i + recipe.micro_batch],
                    fused_lm_head=True,
                ).log_probs[:, -R:]
                for i in range(0, B, recipe.micro_batch)
            ]
        ).float()  # (B, R)

    rm_ids = seqs.tolist()  # RM input = prompt + response ids (the template's tags are not added)
    rm.ids_by_text.update((f"rollout-{i}", x) for i, x in enumerate(rm_ids))
    with t.phase("scoring"):
        scores = torch.tensor(rm.score_logits(rm_ids, batch_size=recipe.rm_batch), device=device).sigmoid()

    with t.phase("verification"):
        decoded = tok.batch_decode((seqs[:, P:] % len(tok)).tolist(), skip_special_tokens=True)
        # Real completions end with a final answer, which is all the verifier parses; random text may hold
        # LaTeX fragments that would send sympy on long, unrepresentative parses.
        texts = [f"{d}\nThe answer is \\boxed{{{41 + i % 2}}}." for i, d in enumerate(decoded)]
        correct = is_correct_batch(texts, ["42"] * B)

    if mode == "cooper":
        pairs = []
        for g in range(recipe.prompts):  # one pair per prompt group: a positive and a negative of RM length
            for kind in ("pos", "neg"):
                rm.ids_by_text[f"{kind}-{g}"] = torch.randint(0, vocab, (recipe.rm_len,)).tolist()
            pairs.append(Pair(f"q{g}", "42", f"pos-{g}", f"neg-{g}", "bench"))
        with t.phase("rm_update"):
            updater.update(pairs)

    with t.phase("policy_update"):
        policy.train()
        adv = group_advantages(scores.float(), recipe.rollouts)  # (B,)
        n_tokens = B * R
        opt.zero_grad(set_to_none=True)
        for i in range(0, B, recipe.micro_batch):
            sl = slice(i, i + recipe.micro_batch)
            with autocast:
                out = policy(
                    input_ids=seqs[sl], attention_mask=mask[sl], labels=labels[sl], fused_lm_head=True
                )
            logps = out.log_probs[:, -R:].float()
            loss = grpo_loss(logps, logps.detach(), ref_logps[sl], adv[sl], recipe.epsilon, recipe.beta)
            (loss / n_tokens).backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    t.sync()
    t.seconds["step"] = time.perf_counter() - t_step
    t.seconds["_correct"] = float(sum(correct))
    return t.seconds


# -- main -----------------------------------------------------------------------------------------------
def peak_rss_gb() -> float:
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kb * 1024 / GIB


def measure(recipe: Recipe, *, device: Any, policy_dtype: Any, steps: int, warmup: int) -> dict[str, Any]:
    """``warmup + steps`` steps of ``static_rm``, then of ``cooper``, each mode with only its own RM in
    memory (so each mode's peak is its own); the policy and its optimizer carry over."""
    import gc

    import torch

    from cooper.rl.rm_update import RMUpdateConfig, RMUpdater

    on_gpu = is_cuda(device)
    m = build_policy(recipe, device, policy_dtype)
    opt = torch.optim.AdamW(m["policy"].parameters(), lr=recipe.learning_rate, fused=on_gpu or None)
    runs: dict[str, list[dict[str, float]]] = {}
    peak: dict[str, float] = {}
    rm_updates = 0
    for mode in ("static_rm", "cooper"):
        rm = build_rm(mode, m, device)
        updater = None
        if mode == "cooper":  # the paper's RM optimisation (configs/paper_qwen2.5_1.5b.yaml)
            updater = RMUpdater(
                rm,
                RMUpdateConfig(
                    learning_rate=recipe.rm_learning_rate,
                    warmup_steps=10,
                    max_grad_norm=1.0,
                    mini_batch_size=64,
                ),
            )
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        runs[mode] = []
        for i in range(warmup + steps):
            sec = run_step(mode, m, rm, opt, updater, recipe, device)
            log.info("step %d %s: %s", i, mode, {k: round(v, 4) for k, v in sec.items()})
            if i >= warmup:
                runs[mode].append(sec)
        peak[mode] = torch.cuda.max_memory_allocated() / GIB if on_gpu else 0.0
        rm_params = sum(p.numel() for p in rm.model.parameters())
        rm_updates = updater.updates if updater else rm_updates
        del rm, updater
        gc.collect()
        if on_gpu:
            torch.cuda.empty_cache()

    phases = {
        mode: {k: statistics.median(r[k] for r in rows) for k in rows[0] if not k.startswith("_")}
        for mode, rows in runs.items()
    }
    all_rows = runs["static_rm"] + runs["cooper"]
    gen_s = statistics.median(r["generation"] for r in all_rows)
    upd_s = statistics.median(r["policy_update"] for r in all_rows)
    B = recipe.rollouts_total  # noqa: N806
    flops = policy_update_flops(recipe.model, B, recipe.prompt_len, recipe.response_len)
    return {
        "phases": phases,
        "gen_tok_s": B * recipe.response_len / gen_s,
        "train_tok_s": B * (recipe.prompt_len + recipe.response_len) / upd_s,
        "policy_update_tflops": flops / upd_s / 1e12,
        "peak_mem_gb_by_mode": peak if on_gpu else None,
        "policy_params": sum(p.numel() for p in m["policy"].parameters()),
        "rm_params": rm_params,
        "rm_updates": rm_updates,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="tiny models on CPU, seconds; same code path")
    ap.add_argument("--memory-table", action="store_true", help="print the calculated memory table and exit")
    ap.add_argument("--steps", type=int, default=None, help="measured steps per mode (default 3; dry run 2)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--prompts", type=int, default=None)
    ap.add_argument("--response-len", type=int, default=None)
    ap.add_argument("--micro-batch", type=int, default=None)
    ap.add_argument("--policy-dtype", choices=("float32", "bfloat16"), default="float32")
    ap.add_argument("--no-gradient-checkpointing", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=None, help="override the peak bf16 TFLOP/s for MFU")
    ap.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    ap.add_argument(
        "--cpu-threads", type=int, default=1, help="torch threads on a CPU (tiny models gain nothing)"
    )
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)

    if args.memory_table:
        table = memory_table()
        print_memory_table(table)
        print(json.dumps(table))
        return

    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    fallback = None
    if not args.dry_run and args.device is None and not cuda_visible():
        # `make bench` runs every script on whatever machine it is: without a GPU, say so and run the dry
        # run (the full size on a CPU would take hours); `--device cpu` forces the full size anyway.
        fallback = "no CUDA device: ran the --dry-run configuration instead (not a GPU figure)"
        log.warning("%s", fallback)
        args.dry_run = True
    device = args.device or ("cpu" if args.dry_run else "cuda")
    on_gpu = is_cuda(device)
    if not on_gpu:
        torch.set_num_threads(args.cpu_threads)
    recipe = dry_run_recipe() if args.dry_run else Recipe()
    for name in ("prompts", "response_len", "micro_batch"):
        if getattr(args, name) is not None:
            setattr(recipe, name, getattr(args, name))
    recipe.gradient_checkpointing = not args.no_gradient_checkpointing
    steps = args.steps if args.steps is not None else (2 if args.dry_run else 3)
    dtype = getattr(torch, args.policy_dtype)

    t0 = time.perf_counter()
    r = measure(recipe, device=device, policy_dtype=dtype, steps=steps, warmup=args.warmup)
    device_name = torch.cuda.get_device_name(torch.device(device)) if on_gpu else "cpu"
    peak = args.peak_tflops * 1e12 if args.peak_tflops else (peak_flops_for(device_name) if on_gpu else None)
    s_step, c_step = r["phases"]["static_rm"]["step"], r["phases"]["cooper"]["step"]
    for mode, ph in r["phases"].items():
        print(f"{mode:>10}: " + "  ".join(f"{k} {v:.4f}s" for k, v in ph.items()), file=sys.stderr)
    report = {
        "device": device_name,
        "dry_run": args.dry_run,
        "fallback": fallback,
        "model": "tiny" if args.dry_run else "Qwen2.5-1.5B-config (random init)",
        "policy_params": r["policy_params"],
        "rm_params": r["rm_params"],
        "recipe": {k: v for k, v in asdict(recipe).items() if k != "model"},
        "policy_dtype": args.policy_dtype,
        "steps_measured": steps,
        "static_rm_step_s": round(s_step, 4),
        "cooper_step_s": round(c_step, 4),
        "ratio": round(c_step / s_step, 3),
        "phases": {mode: {k: round(v, 4) for k, v in ph.items()} for mode, ph in r["phases"].items()},
        "gen_tok_s": round(r["gen_tok_s"], 1),
        "train_tok_s": round(r["train_tok_s"], 1),
        "peak_mem_gb": round(max(r["peak_mem_gb_by_mode"].values()) if on_gpu else peak_rss_gb(), 3),
        "peak_mem_source": "cuda_max_memory_allocated" if on_gpu else "cpu_peak_rss",
        "peak_mem_gb_by_mode": (
            {k: round(v, 3) for k, v in r["peak_mem_gb_by_mode"].items()} if on_gpu else None
        ),
        "policy_update_tflops": round(r["policy_update_tflops"], 4),
        "peak_flops": peak,
        "policy_update_mfu": round(r["policy_update_tflops"] * 1e12 / peak, 4) if peak else None,
        "rm_updates": r["rm_updates"],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    if not all(math.isfinite(v) for v in (s_step, c_step, r["gen_tok_s"], r["train_tok_s"])):
        raise SystemExit(f"non-finite timing: {report}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
