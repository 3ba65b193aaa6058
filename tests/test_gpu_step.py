"""The GPU recipes, checked on a CPU: ``bench/gpu_step.py --dry-run``, its parameter/FLOP/memory arithmetic,
the accelerate configs in ``configs/accelerate/`` (through accelerate's own loader and launcher), and every
command written in ``docs/scaling.md`` (launcher flags, ``cooper train`` overrides through cooper's config
loader and TRL's ``GRPOConfig``, ``trl vllm-serve`` through TRL's parser).

Nothing here needs or uses a GPU; what only a GPU can show (speed, real memory) is not tested.
``_validate_launch_command`` is private accelerate API: if accelerate changes it, these tests fail loudly.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from helpers_cli import load_script

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench" / "gpu_step.py"
ACCEL_DIR = REPO / "configs" / "accelerate"
ACCEL_CONFIGS = sorted(ACCEL_DIR.glob("*.yaml"))
SCALING_DOC = REPO / "docs" / "scaling.md"
PAPER_CONFIG = "configs/paper_qwen2.5_1.5b.yaml"


gpu_step = load_script(BENCH, "bench_gpu_step")


# -- the benchmark's dry run ------------------------------------------------------------------------------
def test_dry_run_prints_one_json_line_with_finite_positive_values() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--dry-run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = {
        "device",
        "dry_run",
        "static_rm_step_s",
        "cooper_step_s",
        "ratio",
        "phases",
        "gen_tok_s",
        "train_tok_s",
        "peak_mem_gb",
        "peak_mem_source",
        "policy_update_tflops",
        "policy_update_mfu",
        "peak_flops",
    }
    assert expected <= set(report), sorted(expected - set(report))
    assert report["dry_run"] is True and report["device"] == "cpu" and report["fallback"] is None
    for key in ("static_rm_step_s", "cooper_step_s", "ratio", "gen_tok_s", "train_tok_s", "peak_mem_gb"):
        assert math.isfinite(report[key]) and report[key] > 0, (key, report[key])
    assert math.isfinite(report["policy_update_tflops"]) and report["policy_update_tflops"] > 0
    # On a CPU there is no meaningful peak: MFU and the peak are null, memory is the process's peak RSS.
    assert report["policy_update_mfu"] is None and report["peak_flops"] is None
    assert report["peak_mem_source"] == "cpu_peak_rss"
    common = {"generation", "reference_logprobs", "scoring", "verification", "policy_update", "step"}
    assert set(report["phases"]["static_rm"]) == common
    assert set(report["phases"]["cooper"]) == common | {"rm_update"}
    for mode, phases in report["phases"].items():
        for name, seconds in phases.items():
            assert math.isfinite(seconds) and seconds > 0, (mode, name, seconds)
    assert report["rm_updates"] > 0  # the real RMUpdater stepped


# -- arithmetic -----------------------------------------------------------------------------------------
def test_parameter_counts_match_transformers() -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2ForSequenceClassification

    cfg = Qwen2Config(**gpu_step.QWEN25_1_5B)
    with torch.device("meta"):
        lm = Qwen2ForCausalLM(cfg)
        cfg.num_labels = 1
        rm = Qwen2ForSequenceClassification(cfg)
    assert sum(p.numel() for p in lm.parameters()) == gpu_step.causal_lm_params(gpu_step.QWEN25_1_5B)
    assert sum(p.numel() for p in rm.parameters()) == gpu_step.classifier_params(gpu_step.QWEN25_1_5B)
    assert gpu_step.causal_lm_params(gpu_step.QWEN25_1_5B) == 1_543_714_304  # Qwen2.5-1.5B: "1.54B"


def test_activation_formula_against_saved_tensors_on_cpu() -> None:
    """Saved-for-backward bytes of real-width Qwen2.5-1.5B layers under bf16 autocast, measured with
    saved-tensor hooks (1 vs 2 layers, 64 vs 128 tokens): the per-token term is within 5% of the formula the
    memory table uses, and the per-layer constant is the bf16 weight copies autocast keeps (2 B/param)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    def saved_bytes(layers: int, tokens: int) -> int:
        cfg = Qwen2Config(**{**gpu_step.QWEN25_1_5B, "num_hidden_layers": layers, "vocab_size": 256})
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(cfg).train()
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        seen: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        ids = torch.randint(0, 256, (1, tokens))
        with (
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
            torch.autocast("cpu", dtype=torch.bfloat16),
        ):
            model.model(input_ids=ids, attention_mask=torch.ones_like(ids))
        return sum(v for k, v in seen.items() if k not in params)

    s = {(n, t): saved_bytes(n, t) for n in (1, 2) for t in (64, 128)}
    per_token = ((s[2, 128] - s[1, 128]) - (s[2, 64] - s[1, 64])) / 64
    per_layer_const = (s[2, 64] - s[1, 64]) - per_token * 64
    formula = gpu_step.activation_bytes_per_token_layer(gpu_step.QWEN25_1_5B)
    assert abs(per_token - formula) / formula < 0.05, (per_token, formula)
    assert abs(per_layer_const - 2 * gpu_step.layer_params(gpu_step.QWEN25_1_5B)) < 0.01 * per_layer_const


def test_memory_table_is_consistent() -> None:
    t = gpu_step.memory_table()
    assert t["calculated_not_measured"] is True
    rows = t["setups"]
    for name, r in rows.items():
        assert r["PEAK (checkpointing)"] >= r["peak, generation"] > 0, name
        assert r["PEAK (no checkpointing)"] >= r["PEAK (checkpointing)"], name
        assert r["policy activations, no checkpointing"] > 5 * r["policy activations, checkpointing"], name
    # A replicated RM is the same on every backend (ZeRO-3 shards only the policy and the reference); a sharded
    # one (FSDP2 over the 8 ranks) holds an eighth of its weights and AdamW state on each.
    key = "VerifyRM (weights, + AdamW in cooper; sharded)"
    rm = {r[key] for n, r in rows.items() if n.endswith("cooper")}
    assert len(rm) == 1
    sharded = {r[key] for n, r in rows.items() if n.endswith("RM shard")}
    assert len(sharded) == 1 and sharded.pop() == pytest.approx(rm.pop() / 8, abs=0.1)
    for backend in ("DDP", "ZeRO-2", "ZeRO-3"):
        full, shard = rows[f"8 GPU {backend}, cooper"], rows[f"8 GPU {backend}, cooper, RM shard"]
        assert shard["PEAK (checkpointing)"] < full["PEAK (checkpointing)"], backend
    zero3, ddp = rows["8 GPU ZeRO-3, cooper"], rows["8 GPU DDP, cooper"]
    key = "policy weights + AdamW (+ DDP buckets)"
    assert zero3[key] < ddp[key] / 5
    assert zero3["RM update: grads + casts + activations"] == ddp["RM update: grads + casts + activations"]


def test_scaling_doc_memory_table_matches_the_code() -> None:
    """docs/scaling.md's table is `bench/gpu_step.py --memory-table`, not typed in by hand."""
    t = gpu_step.memory_table()
    names = list(t["setups"])
    doc_rows = {}
    for line in SCALING_DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if len(cells) == len(names) + 1:
            doc_rows[cells[0]] = cells[1:]
    for key in t["setups"][names[0]]:
        assert doc_rows[key] == [f"{t['setups'][n][key]:.1f}" for n in names], key


def test_peak_flops_lookup_and_mfu_flops() -> None:
    assert gpu_step.peak_flops_for("NVIDIA H200") == 989e12
    assert gpu_step.peak_flops_for("NVIDIA H100 80GB HBM3") == 989e12
    assert gpu_step.peak_flops_for("NVIDIA H100 PCIe") == 756e12
    assert gpu_step.peak_flops_for("NVIDIA A100-SXM4-80GB") == 312e12
    assert gpu_step.peak_flops_for("cpu") is None
    c = gpu_step.QWEN25_1_5B
    n, head = gpu_step.causal_lm_params(c), c["vocab_size"] * c["hidden_size"]
    assert gpu_step.policy_update_flops(c, 2, 3, 5) == 6 * ((n - head) * 2 * 8 + head * 2 * 5)


def test_group_advantages_and_grpo_loss() -> None:
    import torch

    adv = gpu_step.group_advantages(torch.tensor([1.0, 0.0, 0.5, 0.5, 2.0, 2.0, 2.0, 2.0]), 4)
    assert torch.allclose(adv.view(2, 4).mean(1), torch.zeros(2), atol=1e-6)
    assert torch.equal(adv[4:], torch.zeros(4))  # a group with equal rewards has no signal
    logps = torch.randn(2, 3)
    # ratio 1 and reference = policy: the loss is -sum(advantage) over tokens, the KL term is 0
    loss = gpu_step.grpo_loss(logps, logps, logps, torch.tensor([1.0, -2.0]), eps=0.2, beta=0.1)
    assert torch.isclose(loss, torch.tensor(3.0))


# -- accelerate configs ---------------------------------------------------------------------------------
EXPECTED = {  # file: (distributed type, processes, machines)
    "single_gpu.yaml": ("NO", 1, 1),
    "ddp_8gpu.yaml": ("MULTI_GPU", 8, 1),
    "zero2_8gpu.yaml": ("DEEPSPEED", 8, 1),
    "zero3_8gpu.yaml": ("DEEPSPEED", 8, 1),
    "fsdp_8gpu.yaml": ("FSDP", 8, 1),
    "ddp_2node.yaml": ("MULTI_GPU", 16, 2),
    "zero3_2node.yaml": ("DEEPSPEED", 16, 2),
}


def test_every_expected_accelerate_config_exists() -> None:
    assert sorted(p.name for p in ACCEL_CONFIGS) == sorted(EXPECTED)


def _launch(argv: list[str]) -> tuple[object, dict[str, str]]:
    """Run accelerate's own launcher up to the point where it would start processes: the parsed launch
    arguments and the environment the workers would get."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    parser = launch_command_parser()
    args = parser.parse_args(argv)
    args, defaults, mp_from_config = _validate_launch_command(args)
    args.main_process_port = 0  # a free port: the check must not depend on what runs on this machine
    env: dict[str, str] = {}
    if args.use_deepspeed:
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)  # as launch_command does
        _, env = prepare_deepspeed_cmd_env(args)
    elif args.multi_gpu or args.use_fsdp:
        env = prepare_multi_gpu_env(args)
    return args, env


@pytest.mark.parametrize("path", ACCEL_CONFIGS, ids=lambda p: p.name)
def test_accelerate_config_loads_and_launches(path: Path) -> None:
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    cfg = load_config_from_file(str(path))  # accelerate's loader: unknown top-level keys raise
    assert isinstance(cfg, ClusterConfig)
    dist_type, procs, machines = EXPECTED[path.name]
    assert (cfg.distributed_type.value, cfg.num_processes, cfg.num_machines) == (dist_type, procs, machines)
    assert cfg.mixed_precision == "bf16"
    # Nested keys are copied onto launcher arguments without a check; a misspelt one would be ignored.
    dests = {a.dest for a in launch_command_parser()._actions}
    for section in ("deepspeed_config", "fsdp_config"):
        for key in getattr(cfg, section):
            arg = key if section != "fsdp_config" or key.startswith("fsdp") else f"fsdp_{key}"
            assert arg in dests, f"{path.name}: {section}.{key} is not an accelerate launch option"

    args, env = _launch(["--config_file", str(path), "-m", "cooper.cli", "train", PAPER_CONFIG])
    assert args.module and args.training_script == "cooper.cli"
    assert args.training_script_args == ["train", PAPER_CONFIG]
    assert args.num_processes == procs and args.mixed_precision == "bf16"
    if dist_type == "DEEPSPEED":
        stage = cfg.deepspeed_config["zero_stage"]
        assert env["ACCELERATE_USE_DEEPSPEED"] == "true"
        assert env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == str(stage)
        assert cfg.deepspeed_config["deepspeed_multinode_launcher"] == "standard"  # torchrun: no hostfile
    if dist_type == "FSDP":
        assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
        assert env["FSDP_RESHARD_AFTER_FORWARD"] == "true"  # full shard
        assert env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"
        assert env["FSDP_TRANSFORMER_CLS_TO_WRAP"] == "Qwen2DecoderLayer"
        assert env["FSDP_CPU_RAM_EFFICIENT_LOADING"] == "false"  # see the comment in fsdp_8gpu.yaml
        from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer  # the class exists

        assert Qwen2DecoderLayer.__name__ == env["FSDP_TRANSFORMER_CLS_TO_WRAP"]
    if machines > 1:
        assert cfg.main_process_ip == "10.0.0.1"  # the documented placeholder
        assert args.nproc_per_node == "8" and args.nnodes == "2" and args.node_rank == 0


@pytest.mark.parametrize("name", ["ddp_2node.yaml", "zero3_2node.yaml"])
def test_two_node_placeholders_are_overridden_on_the_command_line(name: str) -> None:
    args, _ = _launch(
        [
            "--config_file",
            str(ACCEL_DIR / name),
            "--machine_rank",
            "1",
            "--main_process_ip",
            "192.0.2.7",
            "-m",
            "cooper.cli",
            "train",
            PAPER_CONFIG,
        ]
    )
    assert args.node_rank == 1 and args.rdzv_endpoint.startswith("192.0.2.7:")


# -- the commands in docs/scaling.md ----------------------------------------------------------------------
DOC_VARS = {"NODE0_IP": "192.0.2.1"}


def _doc_commands() -> list[list[str]]:
    """Every command line in the doc's ```bash blocks (continuations joined, comments and VAR=x prefixes
    dropped, $VARS substituted)."""
    text = SCALING_DOC.read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for name, value in DOC_VARS.items():
                line = line.replace(f"${name}", value)
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                words = words[1:]
            if words:
                out.append(words)
    return out


def _check_cooper_train(argv: list[str]) -> None:
    """``train CONFIG --k v ...``: cooper's loader and TRL's GRPOConfig accept it."""
    from cooper.rl.build import grpo_config
    from cooper.rl.config import load_config, parse_overrides

    assert argv[0] == "train", argv
    cfg = load_config(REPO / argv[1], parse_overrides(argv[2:]))
    grpo = grpo_config(cfg)  # TRL's GRPOConfig: unknown or misspelt grpo.* keys raise here
    for key, value in parse_overrides(argv[2:]):
        if key.startswith("grpo."):
            assert getattr(grpo, key.removeprefix("grpo.")) == value, key


def test_scaling_doc_commands_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the documented paths are relative to the repository root
    commands = _doc_commands()
    seen = {"accelerate": 0, "cooper": 0, "trl": 0}
    configs_used = set()
    for words in commands:
        if words[:2] == ["accelerate", "launch"]:
            args, _ = _launch(words[2:])
            assert args.module and args.training_script == "cooper.cli", words
            _check_cooper_train(list(args.training_script_args))
            configs_used.add(Path(args.config_file).name)
            seen["accelerate"] += 1
        elif words[:2] == ["cooper", "train"]:
            _check_cooper_train(words[1:])
            seen["cooper"] += 1
        elif words[:2] == ["trl", "vllm-serve"]:
            from trl.scripts.vllm_serve import build_command, make_parser

            script_args, extra = make_parser(prog="trl vllm-serve").parse_args_and_config(
                args=words[2:], return_remaining_strings=True
            )
            assert "serve" in build_command(script_args, extra)
            seen["trl"] += 1
    assert seen["accelerate"] >= len(ACCEL_CONFIGS) and seen["cooper"] >= 1 and seen["trl"] >= 1, seen
    assert configs_used == {p.name for p in ACCEL_CONFIGS}  # every config has a documented command
