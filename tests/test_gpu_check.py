"""The prepared GPU check (``bench/gpu_check.sh``, driving ``bench/gpu_check.py``), tested on a CPU.

* its dry run end to end (slow): every step succeeds and the JSON it writes has every expected key with sane
  values (finite timings, the requested steps, complete checkpoints, the reward model, the eval's results);
* the Qwen2.5-0.5B shape it builds has the published parameter count (on the meta device: no memory);
* the wheels it carries to the GPU machine are the versions tested here (``constraints.txt``, the venv);
* a failing step is recorded (rc, the log's tail) and makes the exit status 1; a step past its timeout has
  its whole process group ended.

What only a GPU shows (speed, memory, bf16, FSDP2 on CUDA) is not tested here.

    .venv/bin/python -m pytest -q tests/test_gpu_check.py              # all (the dry run takes ~30-60 s)
    .venv/bin/python -m pytest -q tests/test_gpu_check.py -m "not slow"
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers_cli import load_script

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "bench" / "gpu_check.sh"
DRIVER = REPO / "bench" / "gpu_check.py"


gpu_check = load_script(DRIVER, "bench_gpu_check")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "GPU_CHECK_OUT")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", GPU_CHECK_SITE=str(tmp_path / "site"))
    env["PYTHON"] = sys.executable  # gpu_check.sh runs the interpreter the tests run under
    return env


def _is_finite_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# -- the dry run, end to end ------------------------------------------------------------------------------
@pytest.mark.slow
def test_dry_run_writes_every_figure_and_succeeds(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "--out", str(out)],
        cwd=REPO,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:] + proc.stdout[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == json.loads((out / "gpu_check.json").read_text())
    files = sorted(p.name for p in out.iterdir())
    steps = ("gpu_step", "train", "eval")
    assert files == sorted(["gpu_check.json", *(f"{s}.{ext}" for s in steps for ext in ("json", "log"))])
    assert len(files) <= 8  # what the device tool returns from $OUT
    assert report["ok"] is True and report["failed"] == [] and report["dry_run"] is True
    assert report["fallback"] is None
    assert set(steps) == set(report["steps"])
    assert all(step["ok"] is True for step in report["steps"].values())
    assert _is_finite_number(report["wall_s"]) and report["wall_s"] > 0
    env = report["environment"]
    assert env["cuda"] is False and env["device"] == "cpu"
    for name in ("torch", "transformers", "trl", "datasets", "math-verify"):
        assert env["versions"][name], name
    plan = report["plan"]

    # 1. the GPU step benchmark's own JSON, as it printed it
    step = report["steps"]["gpu_step"]
    assert step["rc"] == 0 and step["timed_out"] is False
    bench = step["result"]
    assert bench["dry_run"] is True and bench["steps_measured"] >= 1
    for key in ("static_rm_step_s", "cooper_step_s", "ratio", "gen_tok_s", "train_tok_s", "peak_mem_gb"):
        assert _is_finite_number(bench[key]) and bench[key] > 0, key
    assert "policy_update_mfu" in bench and bench["rm_updates"] > 0
    assert json.loads((out / "gpu_step.json").read_text()) == step

    # 2. cooper train: the requested steps, its checkpoints, the final policy and reward model
    train = report["steps"]["train"]
    assert train["rc"] == 0 and train["timed_out"] is False
    assert all(train["checks"].values()), train["checks"]
    assert train["steps"] == plan["train_steps"] == train["metrics_rows"] == train["summary"]["steps"]
    assert train["expected_checkpoints"] == ["checkpoint-2", "checkpoint-3"]
    assert train["checkpoints"] == {"checkpoint-2": True, "checkpoint-3": True}
    assert train["policy_saved"] and train["reward_model_saved"]
    for key in ("wall_s", "train_loop_s", "steps_per_s", "steps_per_s_wall", "checkpoint_gib"):
        assert _is_finite_number(train[key]) and train[key] > 0, key
    assert train["gpu_mem_used_max_mib"] is None  # no nvidia-smi here
    last = train["last_metrics"]
    assert 0.0 <= last["reward/rule_accuracy"] <= 1.0 and 0.0 < last["reward/rm_mean"] < 1.0
    assert last["rm/groups"] == plan["per_device_train_batch_size"] / plan["num_generations"]
    assert all(_is_finite_number(v) for v in last.values())
    # the coin verifier passes half the completions: pairs, hence RM updates (through FSDP2 where it lands)
    assert 1 <= train["rm_updates"] <= train["steps"] and train["rm_valid_pairs_total"] >= train["rm_updates"]
    assert 0.0 < train["rule_accuracy_mean"] < 1.0
    assert {"seconds/generation", "seconds/scoring", "seconds/rm_update", "seconds/step"} <= set(
        train["phase_seconds_median"]
    )
    assert all(_is_finite_number(v) and v >= 0 for v in train["phase_seconds_median"].values())
    built = train["build"]["result"]
    assert built["shape"] == "tiny" and built["tokenizer_size"] == 512
    assert (
        built["params"]["rm"] == built["params"]["policy"] + gpu_check.TINY["hidden_size"]
    )  # + the score head
    cfg = train["config"]
    assert cfg["reward"]["mode"] == "cooper" and cfg["cooper"]["rm_update"]["parallel"] == "shard"
    assert cfg["reward"]["verifier"] == f"{DRIVER}:coin_verifier"
    assert cfg["grpo"]["generation_kwargs"] == "suppress_tokens: ids 512..639"
    assert not Path(cfg["output_dir"]).exists()  # the temporary work folder is gone

    # 3. cooper eval of the trained policy
    ev = report["steps"]["eval"]
    assert ev["rc"] == 0
    digits = ev["results"]["benchmarks"]["digits"]
    assert (
        digits["n_problems"] == plan["eval_limit"]
        and digits["n_samples"] == plan["eval_limit"] * plan["eval_n"]
    )
    assert 0.0 <= digits["mean_accuracy"] <= 1.0 and ev["results"]["status"] == "complete"


# -- the models it builds ----------------------------------------------------------------------------------
def test_the_qwen25_05b_shape_has_its_published_parameter_count() -> None:
    import torch
    from transformers import Qwen2ForCausalLM, Qwen2ForSequenceClassification

    shape = gpu_check.QWEN25_0_5B
    config = gpu_check.model_config(shape, pad_token_id=0, eos_token_id=2)
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size) == (896, 24, 4864)
    assert (config.num_attention_heads, config.num_key_value_heads, config.vocab_size) == (14, 2, 151936)
    assert config.tie_word_embeddings and config.max_position_embeddings == 32768
    assert config.rope_parameters["rope_theta"] == 1e6 and config.rms_norm_eps == 1e-6
    with torch.device("meta"):
        policy = Qwen2ForCausalLM(config)
        rm = Qwen2ForSequenceClassification(
            gpu_check.model_config(shape, pad_token_id=0, eos_token_id=2, num_labels=1)
        )
    assert sum(p.numel() for p in policy.parameters()) == 494_032_768  # Qwen2.5-0.5B
    assert sum(p.numel() for p in rm.parameters()) == 494_032_768 + 896  # + the one-logit head, no LM head


def test_the_coin_verifier_passes_a_fixed_half_of_the_texts() -> None:
    texts = [f"completion {i}" for i in range(2000)]
    verdicts = gpu_check.coin_verifier(texts, ["6"] * len(texts), id=list(range(len(texts))))
    assert verdicts == gpu_check.coin_verifier(texts, ["7"] * len(texts))  # the reference plays no part
    assert all(isinstance(v, bool) for v in verdicts) and 900 < sum(verdicts) < 1100


def test_checkpoints_expected_every_save_steps_and_at_the_end() -> None:
    assert gpu_check.expected_checkpoints(20, 10) == [10, 20]
    assert gpu_check.expected_checkpoints(3, 2) == [2, 3]
    assert gpu_check.expected_checkpoints(5, 10) == [5]


def test_the_gpu_plan_fits_the_ten_minute_call() -> None:
    plan = gpu_check.Plan()
    assert sum(plan.timeouts.values()) <= 540 <= 600 - 40  # 40 s left for the wheels and the probe
    assert plan.per_device_train_batch_size % plan.num_generations == 0
    assert plan.train_steps == 20 and plan.save_steps == 10 and plan.bf16


# -- the wheels carried to the GPU machine -----------------------------------------------------------------
def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(text: str) -> dict[str, str]:
    return {_norm(m[1]): m[2] for m in re.finditer(r"^\s*\"?([A-Za-z0-9_.\-]+)==([^\s\"#]+)", text, re.M)}


def test_carried_wheels_are_the_versions_tested_here() -> None:
    script = SCRIPT.read_text()
    arrays = re.findall(r"^(CORE_WHEELS|WHEELS)=\(\n(.*?)^\)", script, re.M | re.S)
    assert [name for name, _ in arrays] == ["CORE_WHEELS", "WHEELS"]
    wheels = {**_pins(arrays[0][1]), **_pins(arrays[1][1])}
    assert {"trl", "datasets", "math-verify", "transformers"} <= set(_pins(arrays[0][1]))
    assert {"latex2sympy2-extended", "antlr4-python3-runtime", "dill", "multiprocess"} <= set(wheels)
    constraints = _pins((REPO / "constraints.txt").read_text())
    for name, version in wheels.items():
        if name in constraints:
            assert version == constraints[name], (
                f"{name}: carried {version}, constraints.txt {constraints[name]}"
            )
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # peft: an optional extra, not in the development venv
        assert version == installed, f"{name}: carried {version}, tested here with {installed}"


# -- failures are recorded -----------------------------------------------------------------------------------
def test_a_failing_step_is_recorded_and_the_exit_status_says_so(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            str(DRIVER),
            "--dry-run",
            "--out",
            str(out),
            "--skip",
            "train,eval",
            "--gpu-step-args=--no-such-flag",
        ],
        cwd=REPO,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["ok"] is False and report["failed"] == ["gpu_step"]
    step = report["steps"]["gpu_step"]
    assert step["ok"] is False and step["rc"] == 2 and "--no-such-flag" in step["log_tail"]
    assert report["steps"]["train"] == {"ok": None, "skipped": "--skip"}
    assert report["steps"]["eval"]["ok"] is None
    assert json.loads((out / "gpu_step.json").read_text()) == step
    assert json.loads((out / "gpu_check.json").read_text()) == report


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state  # a zombie has ended


def test_a_step_past_its_timeout_has_its_process_group_ended(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    cmd = ["bash", "-c", f"sleep 60 & echo $! > {pid_file}; wait"]
    t0 = time.perf_counter()
    r = gpu_check.run_command(cmd, tmp_path / "log", 1.5, dict(os.environ))
    assert time.perf_counter() - t0 < 30
    assert r["timed_out"] is True and r["rc"] != 0 and "log_tail" in r
    child = int(pid_file.read_text())
    deadline = time.time() + 10
    while _alive(child) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(child)
