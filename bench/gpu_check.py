"""One prepared GPU check of cooper: gpu_step.py, a 20-step train at Qwen2.5-0.5B's shape, an eval.

Sized to end well inside 10 minutes on one H200, each step with its own timeout.

Run it through ``bench/gpu_check.sh``, which installs the carried wheels on the GPU machine first:

    bash bench/gpu_check.sh                 # on the GPU machine (about 5-8 minutes)
    bash bench/gpu_check.sh --dry-run       # on a CPU: tiny models, the same code path, about a minute
    python bench/gpu_check.py --dry-run     # the same, where cooper and its dependencies are installed

Steps, in order; each one's JSON is written as soon as it ends, so a run cut short still leaves what it did:

1. ``gpu_step``  ``bench/gpu_step.py`` at its defaults, the paper's shapes, with ``--steps 2`` (2 measured steps
   per mode after 1 warm-up, to fit the budget): its last-line JSON as it is (cooper/static step ratio,
   policy-update MFU, peak memory).
2. ``train``     builds random-init models offline in a child (``--build-models``): the tiny byte-level BPE
   tokenizer of :mod:`cooper.utils.tiny` with a Qwen2.5-0.5B-shaped policy (``Qwen2ForCausalLM``) and reward
   model (a one-logit ``Qwen2ForSequenceClassification`` saved as a VerifyRM); then ``cooper train`` on
   ``configs/data/digits.jsonl``, mode ``cooper``, ``cooper.rm_update.parallel: shard`` (world size 1), bf16,
   20 steps, a checkpoint every 10, and :func:`coin_verifier` as the training verifier, so that the RM is
   updated every step (``--verifier math``: cooper's own, under which a random policy makes no pairs).
   Records wall seconds, steps/s, the peak GPU memory nvidia-smi reports (sampled every second), the last
   metrics.jsonl row's reward/rm/negatives keys, RM pairs and updates over the run, median seconds per phase,
   and whether the checkpoints, ``policy/`` and ``reward_model/`` exist.
3. ``eval``      ``cooper eval`` of the trained policy on the first 16 digit problems: its results.json.

The models' vocabulary is Qwen's 151,936 ids but the test tokenizer has 512 tokens, and an id past them decodes
to nothing. So that completions are text the verifier, the negatives and the RM can work on, the policy samples
only ids the tokenizer has (``grpo.generation_kwargs.suppress_tokens``: the rest of the vocabulary); every
forward, backward and optimizer step still runs over the whole vocabulary. ``cooper eval`` has no such option:
its completions decode to little text, and accuracy 0 is expected (a random policy; this is a systems check).

Without a CUDA device (or with ``--dry-run``) the same code path runs on the CPU: tiny models (vocabulary 640,
past the tokenizer's 512, so the suppression runs too), ``gpu_step.py --dry-run``, a 3-step fp32 ``cooper
train`` and ``cooper eval --limit 4``; ``fallback`` says so when the dry run was not asked for.

Outputs, at most 8 files (the device tool returns 8 from $OUT): ``gpu_check.json`` (everything) and one
``<step>.json`` and ``<step>.log`` per step, in ``--out``, else ``$OUT``, else ``$GPU_CHECK_OUT``, else
``gpu_check_out/``. Models, checkpoints and samples go to ``--work`` (default: a temporary folder, deleted at the
end unless ``--keep-work``). A step that fails is recorded (rc, timeout, the log's tail) and the next runs where
it can. Exit status 1 if any step failed. Last stdout line: one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DIGITS = REPO / "configs" / "data" / "digits.jsonl"
INSTRUCTION = "Answer with the digit."

# Qwen2.5-0.5B(-Instruct)'s config.json: the values that size the model (494,032,768 parameters).
QWEN25_0_5B: dict[str, Any] = {
    "hidden_size": 896,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "intermediate_size": 4864,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
}
# The dry run's shape: the same architecture, tiny, with a vocabulary past the tokenizer's 512 tokens.
TINY: dict[str, Any] = {
    **QWEN25_0_5B,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "vocab_size": 640,
    "max_position_embeddings": 1024,
    "rope_theta": 10000.0,
}
SHAPES = {"qwen2.5-0.5b": QWEN25_0_5B, "tiny": TINY}
STEPS = ("gpu_step", "train", "eval")
# the packages whose versions the report gives (space-separated)
VERSIONS_OF = (
    "torch transformers accelerate trl datasets math-verify latex2sympy2_extended peft tokenizers huggingface-hub "
    "safetensors pyarrow sympy numpy"
)


@dataclass
class Plan:
    """Sizes and time limits of one check: the GPU check (defaults) or the CPU one (:func:`dry_run_plan`)."""

    shape: str = "qwen2.5-0.5b"
    model_dtype: str = "bfloat16"  # as saved; TRL loads the policy in fp32 and trains under bf16 autocast
    gpu_step_args: list[str] = field(default_factory=lambda: ["--steps", "2"])
    train_steps: int = 20
    save_steps: int = 10
    per_device_train_batch_size: int = 16  # completions per step: 2 prompts x 8 rollouts
    num_generations: int = 8
    max_completion_length: int = 128
    rm_max_length: int = 512
    bf16: bool = True
    verifier: str = "coin"  # the training verifier: coin (see coin_verifier) or math (cooper's default)
    eval_limit: int = 16
    eval_n: int = 4
    eval_max_new_tokens: int = 128
    # seconds per step (build: the models of the train step); each is also capped by what --budget-s leaves
    timeouts: dict[str, float] = field(
        default_factory=lambda: {"gpu_step": 170, "build": 60, "train": 210, "eval": 80}
    )


def dry_run_plan() -> Plan:
    return Plan(
        shape="tiny",
        model_dtype="float32",
        gpu_step_args=["--dry-run"],
        train_steps=3,
        save_steps=2,
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=16,
        rm_max_length=128,
        bf16=False,
        eval_limit=4,
        eval_n=2,
        eval_max_new_tokens=16,
        timeouts={"gpu_step": 120, "build": 60, "train": 180, "eval": 90},
    )


def coin_verifier(responses: list[str], references: list[str], **row_fields: Any) -> list[bool]:
    """The training verifier of the check (``reward.verifier: bench/gpu_check.py:coin_verifier``): a fixed half
    of all texts is "correct" (CRC-32 parity), whatever the reference. A random policy's completions almost never
    pass the math verifier, so there would be no verified positives, no pairs and no RM update to check; with
    this one nearly every prompt group has positives and policy negatives, and the RM is updated every step.
    It judges nothing: the check measures systems, not learning."""
    return [zlib.crc32(r.encode("utf-8")) % 2 == 0 for r in responses]


def expected_checkpoints(steps: int, save_steps: int) -> list[int]:
    """The checkpoint steps of a run: every ``save_steps`` and the last step (the Trainer saves at the end)."""
    return sorted(set(range(save_steps, steps + 1, save_steps)) | {steps})


# -- the models (built in a child: `gpu_check.py --build-models DIR`) ---------------------------------------
def model_config(
    shape: dict[str, Any], *, pad_token_id: int, eos_token_id: int, num_labels: int | None = None
):
    """The ``Qwen2Config`` of ``shape`` (such as :data:`QWEN25_0_5B`) with the tokenizer's special ids."""
    from transformers import Qwen2Config

    return Qwen2Config(
        **shape,
        max_window_layers=shape["num_hidden_layers"],
        pad_token_id=pad_token_id,
        bos_token_id=pad_token_id,  # as in Qwen2.5 (and cooper.utils.tiny): no BOS is prepended
        eos_token_id=eos_token_id,
        **({} if num_labels is None else {"num_labels": num_labels}),
    )


def build_models(out: Path, shape_name: str, dtype_name: str, rm_max_length: int) -> dict[str, Any]:
    """Save ``out/policy`` (a causal LM) and ``out/rm`` (a VerifyRM) of ``shape_name``: random init, offline."""
    import torch
    from transformers import GenerationConfig, Qwen2ForCausalLM, Qwen2ForSequenceClassification

    from cooper.rm.model import VerifyRM
    from cooper.utils.tiny import EOS_TOKEN, PAD_TOKEN, build_tokenizer

    t0 = time.perf_counter()
    tok = build_tokenizer()
    pad, eos = tok.convert_tokens_to_ids(PAD_TOKEN), tok.convert_tokens_to_ids(EOS_TOKEN)
    shape, dtype = SHAPES[shape_name], getattr(torch, dtype_name)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # random init is faster on a GPU
    torch.manual_seed(0)
    with torch.device(device):
        policy = Qwen2ForCausalLM(model_config(shape, pad_token_id=pad, eos_token_id=eos))
    policy.generation_config = GenerationConfig(bos_token_id=pad, eos_token_id=eos, pad_token_id=pad)
    params = {"policy": sum(p.numel() for p in policy.parameters())}
    policy.to(dtype).save_pretrained(out / "policy")
    tok.save_pretrained(out / "policy")
    del policy
    torch.manual_seed(1)
    with torch.device(device):
        rm = Qwen2ForSequenceClassification(
            model_config(shape, pad_token_id=pad, eos_token_id=eos, num_labels=1)
        )
    params["rm"] = sum(p.numel() for p in rm.parameters())
    VerifyRM(rm.to(dtype), tok, max_length=rm_max_length).save_pretrained(out / "rm")
    return {
        "shape": shape_name,
        "dtype": dtype_name,
        "tokenizer_size": len(tok),
        "params": params,
        "seconds": round(time.perf_counter() - t0, 2),
    }


# -- running a step -----------------------------------------------------------------------------------------
class GpuMemorySampler:
    """The largest total ``memory.used`` (MiB) nvidia-smi reports while a step runs, read every ``every_s``;
    ``None`` where there is no nvidia-smi (a CPU machine)."""

    def __init__(self, every_s: float = 1.0) -> None:
        self.every_s, self.exe = every_s, shutil.which("nvidia-smi")
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def read(self) -> int | None:
        if self.exe is None:
            return None
        query = [self.exe, "--query-gpu=memory.used", "--format=csv,noheader,nounits"]
        try:
            return sum(
                int(x)
                for x in subprocess.run(query, capture_output=True, text=True, timeout=10).stdout.split()
            )
        except (OSError, subprocess.SubprocessError, ValueError):
            return None

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            if (v := self.read()) is not None:
                self.samples.append(v)

    def __enter__(self) -> GpuMemorySampler:
        self.before = self.read()
        if self.exe is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    def result(self) -> dict[str, Any]:
        peak = max(self.samples) if self.samples else None
        return {
            "gpu_mem_used_before_mib": self.before,
            "gpu_mem_used_max_mib": peak,
            "gpu_mem_samples": len(self.samples),
        }


def run_command(cmd: list[str], log_path: Path, timeout_s: float, env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd`` in its own process group, its output appended to ``log_path``; past ``timeout_s`` end the
    whole group (TERM, then KILL). Returns rc, seconds, timed_out and, when it failed, the log's tail."""
    if timeout_s < 1:
        return {
            "rc": None,
            "seconds": 0.0,
            "timed_out": True,
            "timeout_s": round(timeout_s, 1),
            "log_tail": "not started: no time left in --budget-s",
        }
    t0 = time.perf_counter()
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                try:
                    os.killpg(proc.pid, sig)
                    proc.wait(timeout=grace)
                    break
                except ProcessLookupError:
                    break
                except subprocess.TimeoutExpired:
                    continue
    rc = proc.returncode
    result: dict[str, Any] = {
        "rc": rc,
        "seconds": round(time.perf_counter() - t0, 2),
        "timed_out": timed_out,
        "timeout_s": round(timeout_s, 1),
    }
    if rc != 0 or timed_out:
        result["log_tail"] = log_tail(log_path)
    return result


def log_tail(path: Path, chars: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - chars))
            return f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"(no log: {e})"


def last_json_line(path: Path) -> dict[str, Any] | None:
    """The last line of ``path`` that is a JSON object (a bench script's result), or None."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            obj = json.loads(line) if line.lstrip().startswith("{") else None
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def flags(options: dict[str, Any]) -> list[str]:
    """``{"--flag": value}`` as command-line words."""
    return [str(w) for pair in options.items() for w in pair]


def disk_free_gib(path: Path) -> float:
    return round(shutil.disk_usage(path).free / 2**30, 1)


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# -- the steps ----------------------------------------------------------------------------------------------
def environment(env: dict[str, str]) -> dict[str, Any]:
    """Package versions and the device as torch sees it (asked in a child: the driver holds no CUDA context)."""
    versions = {}
    for name in VERSIONS_OF.split():
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    probe = (
        "import json, torch; c = torch.cuda.is_available(); print(json.dumps({'cuda': c, "
        "'device': torch.cuda.get_device_name(0) if c else 'cpu', 'bf16': bool(c and torch.cuda.is_bf16_supported()), "
        "'gpu_mem_total_gib': round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if c else None, "
        "'torch_cuda': torch.version.cuda}))"
    )
    try:
        p = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
        )
        device = json.loads(p.stdout.splitlines()[-1]) if p.returncode == 0 else {"error": p.stderr[-2000:]}
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as e:
        device = {"cuda": False, "error": f"{type(e).__name__}: {e}"}
    return {"python": sys.version.split()[0], "executable": sys.executable, "versions": versions, **device}


def step_gpu_step(plan: Plan, out: Path, env: dict[str, str], left: Callable[[str], float]) -> dict[str, Any]:
    log = out / "gpu_step.log"
    cmd = [sys.executable, str(REPO / "bench" / "gpu_step.py"), *plan.gpu_step_args]
    r = run_command(cmd, log, left("gpu_step"), env)
    result = last_json_line(log) if r["rc"] == 0 else None
    return {"ok": r["rc"] == 0 and result is not None, "command": cmd[1:], **r, "result": result}


def train_config(plan: Plan, models: Path, run_dir: Path, tokenizer_size: int) -> dict[str, Any]:
    """The ``cooper train`` config of the check (written as JSON, which YAML reads)."""
    vocab = SHAPES[plan.shape]["vocab_size"]
    grpo: dict[str, Any] = {
        "max_steps": plan.train_steps,
        "learning_rate": 1.0e-6,
        "per_device_train_batch_size": plan.per_device_train_batch_size,
        "num_generations": plan.num_generations,
        "max_completion_length": plan.max_completion_length,
        "temperature": 1.0,
        "beta": 0.001,  # the paper's KL, so TRL's reference model runs too
        "bf16": plan.bf16,
        "gradient_checkpointing": True,
        "save_steps": plan.save_steps,
        "logging_steps": 1,
        "report_to": "none",
    }
    if vocab > tokenizer_size:  # sample only ids the tokenizer can decode (see the module docstring)
        grpo["generation_kwargs"] = json.dumps({"suppress_tokens": list(range(tokenizer_size, vocab))})
    return {
        "output_dir": str(run_dir),
        "policy": str(models / "policy"),
        "seed": 0,
        "data": {"files": [str(DIGITS)], "instruction": INSTRUCTION},
        "reward": {
            "mode": "cooper",
            "rm": str(models / "rm"),
            "rm_max_length": plan.rm_max_length,
            "verifier": f"{Path(__file__).resolve()}:coin_verifier"
            if plan.verifier == "coin"
            else plan.verifier,
        },
        "cooper": {
            "negatives": ["perturb", "policy"],
            "rm_update": {
                "learning_rate": 1.0e-5,
                "warmup_steps": 2,
                "max_grad_norm": 1.0,
                "parallel": "shard",
            },
        },
        "monitor": {"plot": False},
        "grpo": grpo,
    }


def summarise_run(run_dir: Path, plan: Plan) -> dict[str, Any]:
    """What the run wrote: metrics.jsonl's rows, summary.json, the checkpoints, policy/ and reward_model/."""
    metrics, rows = run_dir / "metrics.jsonl", []
    for line in metrics.read_text(encoding="utf-8").splitlines() if metrics.is_file() else []:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    last = rows[-1] if rows else {}
    timed = rows[1:] or rows  # the first step is a warm-up
    phases = sorted({k for r in rows for k in r if k.startswith("seconds/")})
    checkpoints = {
        d.name: (d / "cooper_rm" / "COMPLETE").is_file() for d in sorted(run_dir.glob("checkpoint-*"))
    }
    first = next(iter(sorted(run_dir.glob("checkpoint-*"))), None)
    summary = run_dir / "summary.json"
    train_keys = (
        "train/loss",
        "train/grad_norm",
        "train/kl",
        "train/entropy",
        "train/completions/mean_length",
    )
    return {
        "metrics_rows": len(rows),
        "steps": last.get("step"),
        "last_metrics": {
            k: v for k, v in last.items() if k.startswith(("reward/", "rm/", "negatives/", "totals/"))
        },
        "last_train_metrics": {k: last[k] for k in train_keys if k in last},
        "rm_valid_pairs_total": sum(r.get("rm/valid_pairs", 0.0) for r in rows),
        "rm_updates": sum(
            1 for r in rows if r.get("rm/valid_pairs", 0.0) > 0 and not r.get("rm/skipped_update")
        ),
        "rule_accuracy_mean": statistics.fmean(r.get("reward/rule_accuracy", 0.0) for r in rows)
        if rows
        else None,
        "phase_seconds_median": {
            p: round(statistics.median(r.get(p, 0.0) for r in timed), 4) for p in phases
        },
        "checkpoints": checkpoints,
        "expected_checkpoints": [
            f"checkpoint-{s}" for s in expected_checkpoints(plan.train_steps, plan.save_steps)
        ],
        "checkpoint_gib": round(sum(f.stat().st_size for f in first.rglob("*") if f.is_file()) / 2**30, 3)
        if first
        else None,
        "policy_saved": (run_dir / "policy" / "config.json").is_file(),
        "reward_model_saved": (run_dir / "reward_model" / "config.json").is_file(),
        "summary": json.loads(summary.read_text(encoding="utf-8")) if summary.is_file() else None,
    }


def step_train(
    plan: Plan, out: Path, work: Path, env: dict[str, str], left: Callable[[str], float]
) -> dict[str, Any]:
    log, models, run_dir = out / "train.log", work / "models", work / "train"
    shape = {"--shape": plan.shape, "--model-dtype": plan.model_dtype, "--rm-max-length": plan.rm_max_length}
    build_cmd = [sys.executable, str(Path(__file__).resolve()), "--build-models", str(models), *flags(shape)]
    build = run_command(build_cmd, log, left("build"), env)
    built = last_json_line(log) if build["rc"] == 0 else None
    if built is None:
        return {"ok": False, "error": "building the models failed", "build": build}

    cfg = train_config(plan, models, run_dir, built["tokenizer_size"])
    cfg_path = work / "train_config.yaml"
    cfg_path.write_text(json.dumps(cfg, indent=1), encoding="utf-8")
    with GpuMemorySampler() as mem:
        r = run_command([sys.executable, "-m", "cooper.cli", "train", str(cfg_path)], log, left("train"), env)
    run = {**summarise_run(run_dir, plan), "disk_free_after_gib": disk_free_gib(work)}
    steps, wall, loop_s = run["steps"], r["seconds"], (run["summary"] or {}).get("seconds")
    checks = {
        "steps_as_requested": steps == plan.train_steps,
        "checkpoints_complete": all(run["checkpoints"].get(c) for c in run["expected_checkpoints"]),
        "policy_saved": run["policy_saved"],
        "reward_model_saved": run["reward_model_saved"],
        "metrics_finite": bool(run["last_metrics"]) and all(map(finite, run["last_metrics"].values())),
    }
    if "generation_kwargs" in cfg["grpo"]:  # 151,424 ids: said in words
        vocab = SHAPES[plan.shape]["vocab_size"]
        cfg["grpo"]["generation_kwargs"] = f"suppress_tokens: ids {built['tokenizer_size']}..{vocab - 1}"
    return {
        "ok": r["rc"] == 0 and all(checks.values()),
        **r,
        "checks": checks,
        "wall_s": wall,
        "train_loop_s": round(loop_s, 2) if finite(loop_s) else None,
        "steps_per_s": round(steps / loop_s, 4) if finite(loop_s) and loop_s > 0 and steps else None,
        "steps_per_s_wall": round(steps / wall, 4) if steps and wall else None,
        **mem.result(),
        **run,
        "build": {**build, "result": built},
        "config": cfg,
    }


def step_eval(
    plan: Plan, out: Path, work: Path, env: dict[str, str], left: Callable[[str], float], device: str
) -> dict[str, Any]:
    eval_dir = work / "eval"
    options = {
        "--model": work / "train" / "policy",
        "--data": DIGITS,
        "--instruction": INSTRUCTION,
        "--limit": plan.eval_limit,
        "--n": plan.eval_n,
        "--max-new-tokens": plan.eval_max_new_tokens,
        "--engine": "transformers",
        "--device": device,
        "--out": eval_dir,
        "--name": "gpu_check",
    }
    cmd = [sys.executable, "-m", "cooper.cli", "eval", *flags(options)]
    with GpuMemorySampler() as mem:
        r = run_command(cmd, out / "eval.log", left("eval"), env)
    path = eval_dir / "results.json"
    results = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    if results is not None:
        results.pop("table", None)  # the same figures, as text
    return {
        "ok": r["rc"] == 0 and results is not None,
        "command": cmd[2:],
        **r,
        **mem.result(),
        "results": results,
    }


# -- main ---------------------------------------------------------------------------------------------------
def out_dir(arg: str | None) -> Path:
    path = Path(arg or os.environ.get("OUT") or os.environ.get("GPU_CHECK_OUT") or REPO / "gpu_check_out")
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def child_env() -> dict[str, str]:
    """The children's environment: the repository's src/ first on PYTHONPATH (it is not pip-installed on the
    GPU machine), offline, unbuffered."""
    env = dict(os.environ)
    src = str(REPO / "src")
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != src]
    env["PYTHONPATH"] = os.pathsep.join([src, *rest])
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.setdefault(key, "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--dry-run", action="store_true", help="tiny models on a CPU, about a minute; same code path"
    )
    ap.add_argument("--out", help="JSON and logs (default: $OUT, else $GPU_CHECK_OUT, else gpu_check_out/)")
    ap.add_argument("--work", help="models, checkpoints, eval samples (default: a temporary folder)")
    ap.add_argument(
        "--keep-work", action="store_true", help="keep the work folder (default: deleted at the end)"
    )
    ap.add_argument(
        "--budget-s",
        type=float,
        default=540.0,
        help="all steps together (default 540); each step's timeout is also capped by what is left",
    )
    ap.add_argument("--train-steps", type=int, help="cooper train steps (default 20; dry run 3)")
    ap.add_argument(
        "--gpu-step-args", help="bench/gpu_step.py's arguments (default '--steps 2'; dry run '--dry-run')"
    )
    ap.add_argument(
        "--verifier",
        choices=("coin", "math"),
        default="coin",
        help="cooper train's verifier: coin (half the completions pass, so the RM is updated every step; "
        "default) or math (a random policy then gets no positives, hence no RM update)",
    )
    ap.add_argument("--skip", default="", help="comma-separated steps not to run: gpu_step, train, eval")
    # the child that builds the models
    ap.add_argument("--build-models", metavar="DIR", help=argparse.SUPPRESS)
    ap.add_argument("--shape", default="qwen2.5-0.5b", choices=sorted(SHAPES), help=argparse.SUPPRESS)
    ap.add_argument("--model-dtype", default="bfloat16", help=argparse.SUPPRESS)
    ap.add_argument("--rm-max-length", type=int, default=512, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if unknown := sorted(args.skip - set(STEPS)):
        ap.error(f"--skip: unknown step(s) {', '.join(unknown)}; the steps are {', '.join(STEPS)}")
    return args


def main() -> int:
    args = parse_args()
    if args.build_models:
        built = build_models(Path(args.build_models), args.shape, args.model_dtype, args.rm_max_length)
        print(json.dumps(built))
        return 0

    t0 = time.perf_counter()
    out = out_dir(args.out)
    for step in STEPS:  # no file of an earlier check may pass for this one's
        for name in (f"{step}.json", f"{step}.log", "gpu_check.json"):
            (out / name).unlink(missing_ok=True)
    env = child_env()
    report: dict[str, Any] = {"environment": environment(env)}
    on_gpu = bool(report["environment"].get("cuda"))
    fallback = None
    if not args.dry_run and not on_gpu:
        fallback = "no CUDA device: ran the --dry-run configuration instead (not a GPU figure)"
        print(f"gpu_check: {fallback}", file=sys.stderr)
    dry = args.dry_run or not on_gpu
    plan = dry_run_plan() if dry else Plan()
    if args.train_steps is not None:
        plan.train_steps = args.train_steps
    if args.gpu_step_args is not None:
        plan.gpu_step_args = args.gpu_step_args.split()
    plan.verifier = args.verifier
    report.update({"dry_run": dry, "fallback": fallback, "out": str(out), "plan": asdict(plan), "steps": {}})

    work = Path(args.work).resolve() if args.work else Path(tempfile.mkdtemp(prefix="cooper-gpu-check-"))
    if args.work:  # an earlier check's run there: cooper train refuses a used output_dir
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    report["environment"]["work_disk_free_gib"] = disk_free_gib(work)  # a 0.5B checkpoint: ~11 GiB

    def left(name: str) -> float:
        return min(plan.timeouts[name], args.budget_s - (time.perf_counter() - t0))

    def record(name: str, result: dict[str, Any]) -> None:
        report["steps"][name] = result
        write_json(out / f"{name}.json", result)
        write_json(out / "gpu_check.json", report)
        state = {True: "ok", False: "FAILED", None: "not run"}[result["ok"]]
        print(f"gpu_check: {name} {state} ({result.get('seconds', 0)} s)", file=sys.stderr)

    try:
        for step in STEPS:
            if step in args.skip:
                record(step, {"ok": None, "skipped": "--skip"})
            elif step == "gpu_step":
                record(step, step_gpu_step(plan, out, env, left))
            elif step == "train":
                record(step, step_train(plan, out, work, env, left))
            elif not (work / "train" / "policy" / "config.json").is_file():
                record(
                    step, {"ok": None, "skipped": "no trained policy (the train step failed or did not run)"}
                )
            else:
                record(step, step_eval(plan, out, work, env, left, "cuda" if on_gpu and not dry else "cpu"))
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    report["failed"] = [name for name, s in report["steps"].items() if s["ok"] is False]
    report["ok"] = not report["failed"]
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    write_json(out / "gpu_check.json", report)
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
