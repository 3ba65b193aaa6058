"""`cooper train` end to end on CPU with tiny models: each mode trains, Cooper's RM moves and the static
one does not, the monitor writes every step, checkpoints carry the RM, resume continues without gaps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig

from cooper.data.rows import DataError
from cooper.rl.build import load_prompts
from cooper.rl.checkpoint import latest_checkpoint
from cooper.rl.config import load_config, parse_overrides
from cooper.rl.train import train
from cooper.rm.parallel import sharded_weights
from cooper.utils.state import load_state
from helpers_data import DIGITS, DIGITS_INSTRUCTION
from helpers_precision import TrainingSetup, computed_dtypes, linear_outputs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models(tiny_paths, digits_policy):
    """A tiny policy warm-started (SFT) to answer 'The answer is D.' and a tiny random RM."""
    return {"policy": str(digits_policy), "rm": str(tiny_paths.rm_dir)}


def _weights(path: str | Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(path) / "model.safetensors"))


def _changed(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("mode", ["rule", "static_rm", "cooper"])
def test_each_mode_trains(models, tmp_path, mode, monkeypatch, digits_train_config):
    seen_kwargs: dict = {}
    from cooper.rl import reward as rewards

    real_call = rewards.RewardFunction.__call__

    def spy(self, prompts, completions, **kw):
        seen_kwargs.update(kw)
        return real_call(self, prompts, completions, **kw)

    monkeypatch.setattr(rewards.RewardFunction, "__call__", spy)
    summary = train(digits_train_config(tmp_path, mode))
    assert summary["steps"] == 3
    # TRL's reward-callable contract we rely on: dataset columns and the metric logger come through
    for key in ("reference", "question", "id", "log_metric"):
        assert key in seen_kwargs, f"TRL no longer passes {key!r} to reward functions"
    assert _changed(_weights(models["policy"]), _weights(tmp_path / "policy"))

    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in (
        "reward/rule_accuracy",
        "seconds/generation",
        "seconds/verification",
        "seconds/policy_update",
    ):
        assert all(key in r for r in rows), key
    # TRL's own logged values join each step's row (logging_steps is 1), beside cooper's, not instead of them
    for key in ("train/loss", "train/entropy", "train/grad_norm", "train/completions/mean_length"):
        assert all(isinstance(r.get(key), float) for r in rows), key
    assert not any(k.startswith("train/reward/") for r in rows for k in r)  # cooper's keys are not repeated
    if mode != "rule":
        assert all("reward/rm_mean" in r and "reward/hacking_gap" in r for r in rows)
        r = rows[-1]
        assert r["reward/hacking_gap"] == pytest.approx(r["reward/rm_mean"] - r["reward/rule_accuracy"])
    if mode == "cooper":
        assert all("rm/valid_pairs" in r for r in rows)
        assert sum(r["rm/valid_pairs"] for r in rows) > 0, "no pair formed in 3 steps"
        assert any("rm/pair_accuracy" in r for r in rows)
        assert _changed(_weights(models["rm"]), _weights(tmp_path / "reward_model"))
    else:
        assert not (tmp_path / "reward_model").exists()


def test_static_rm_stays_frozen(models, tmp_path, digits_train_config):
    from cooper.rl import train as train_mod

    captured = {}
    real = train_mod.build_reward

    def keep(cfg, rm_dir, **kw):
        captured["reward"] = real(cfg, rm_dir, **kw)
        return captured["reward"]

    train_mod.build_reward = keep
    try:
        train(digits_train_config(tmp_path, "static_rm"))
    finally:
        train_mod.build_reward = real
    after = {k: v.detach().cpu() for k, v in captured["reward"].rm.model.state_dict().items()}
    before = _weights(models["rm"])
    assert not _changed({k: before[k] for k in before}, {k: after[k] for k in before})


def test_bf16_on_a_cpu_computes_the_policy_and_the_rm_in_bf16(models, tmp_path, digits_train_config):
    """``grpo.bf16: true`` on a CPU: the policy and the co-trained RM compute under bf16 autocast with eager
    attention, over fp32 weights that train and are saved in fp32."""
    from cooper.rl.build import grpo_config

    cfg = digits_train_config(tmp_path, "cooper", max_steps=2, bf16=True)
    assert grpo_config(cfg).model_init_kwargs == {"attn_implementation": "eager"}
    with linear_outputs() as outputs:
        summary = train(cfg)
    assert summary["steps"] == 2
    vocab = AutoConfig.from_pretrained(models["policy"]).vocab_size
    assert (vocab, torch.bfloat16) in outputs  # the policy's head
    assert (1, torch.bfloat16) in outputs  # the RM's score head
    for name in ("policy", "reward_model"):
        saved = _weights(tmp_path / name)
        assert {t.dtype for t in saved.values()} == {torch.float32}, name
    assert _changed(_weights(models["rm"]), _weights(tmp_path / "reward_model"))


def test_grpo_config_keeps_a_users_attention_choice(tmp_path, digits_train_config):
    from cooper.rl.build import grpo_config

    chosen = {"attn_implementation": "sdpa", "dtype": "float32"}
    assert (
        grpo_config(digits_train_config(tmp_path, bf16=True, model_init_kwargs=chosen)).model_init_kwargs
        == chosen
    )
    assert grpo_config(digits_train_config(tmp_path)).model_init_kwargs is None  # fp32: transformers' default


def test_resume_continues_with_the_saved_rm(models, tmp_path, digits_train_config):
    first = train(digits_train_config(tmp_path, "cooper", max_steps=2, save_steps=2))
    assert first["steps"] == 2
    ckpt = latest_checkpoint(tmp_path)
    assert ckpt is not None and ckpt.name == "checkpoint-2"
    saved_rm = sharded_weights(ckpt / "cooper_rm" / "rm")  # torch.distributed.checkpoint, no pickle
    assert "updater" in load_state(ckpt / "cooper_rm", "reward")  # the RM's scheduler and counters: JSON

    # a torn checkpoint (no completion marker) must be skipped
    torn = tmp_path / "checkpoint-3"
    torn.mkdir()
    (torn / "trainer_state.json").write_text("{}")
    assert latest_checkpoint(tmp_path) == ckpt

    from cooper.rl import callback as callback_mod

    loaded = {}
    real_load = callback_mod.load_reward_state

    def spy(reward, path):
        real_load(reward, path)
        loaded.update({k: v.detach().clone() for k, v in reward.rm.model.state_dict().items()})

    callback_mod.load_reward_state = spy
    try:
        second = train(digits_train_config(tmp_path, "cooper", max_steps=4, save_steps=2), resume=True)
    finally:
        callback_mod.load_reward_state = real_load
    assert second["steps"] == 4
    assert not _changed(saved_rm, {k: loaded[k] for k in saved_rm})
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_prompts_without_reference_fail_before_training(tmp_path, models, digits_train_config):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "Repeat 3."}) + "\n")
    cfg = digits_train_config(tmp_path / "out", "rule")
    cfg.data.files = [str(bad)]
    with pytest.raises(DataError, match="line 1: missing field 'reference'"):
        load_prompts(cfg)
    with pytest.raises(DataError):
        train(cfg)
    assert not (tmp_path / "out" / "config.json").exists()


def test_bad_reward_models_fail_at_start_up(tmp_path, models):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from cooper.rm.model import VerifyRM

    two_labels = AutoModelForSequenceClassification.from_config(
        AutoConfig.from_pretrained(models["rm"], num_labels=2)
    )
    with pytest.raises(ValueError, match="num_labels"):
        VerifyRM(two_labels, AutoTokenizer.from_pretrained(models["rm"]))
    tok = AutoTokenizer.from_pretrained(models["rm"])
    tok.pad_token = None
    with pytest.raises(ValueError, match="pad token"):
        VerifyRM(AutoModelForSequenceClassification.from_pretrained(models["rm"]), tok)


def test_config_errors_and_overrides(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(
        f"output_dir: {tmp_path}/o\ndata: {{files: [{DIGITS}]}}\nreward: {{mode: rule, rm: null}}\n"
    )
    cfg = load_config(
        cfg_file, parse_overrides(["--grpo.max_steps", "7", "--reward.mode=static_rm", "--reward.rm", "x"])
    )
    assert cfg.grpo == {"max_steps": 7} and cfg.reward.mode == "static_rm" and cfg.reward.rm == "x"
    with pytest.raises(ValueError, match="unknown key"):
        load_config(cfg_file, parse_overrides(["--reward.moed", "rule"]))
    with pytest.raises(ValueError, match="reward.mode"):
        load_config(cfg_file, parse_overrides(["--reward.mode", "magic"]))
    with pytest.raises(ValueError, match="needs reward.rm"):
        load_config(cfg_file, parse_overrides(["--reward.mode", "cooper"]))
    with pytest.raises(ValueError, match="assistant"):
        load_config(cfg_file, parse_overrides(["--cooper.negatives", "[assistant]"]))
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")


def test_cli_train_and_plot(models, tmp_path, capsys):
    from cooper.cli import main

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(
        "\n".join(
            [
                f"output_dir: {tmp_path / 'run'}",
                f"policy: {models['policy']}",
                f"data: {{files: [{DIGITS}], limit: 8, instruction: '{DIGITS_INSTRUCTION}'}}",
                f"reward: {{mode: cooper, rm: {models['rm']}, rm_max_length: 128}}",
                "grpo: {per_device_train_batch_size: 8, num_generations: 4, max_completion_length: 8}",
            ]
        )
    )
    assert main(["train", str(cfg_file), "--grpo.max_steps", "2"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 2
    pngs = sorted(p.name for p in (tmp_path / "run" / "plots").glob("*.png"))
    assert "reward_hacking_gap.png" in pngs and "reward_rule_accuracy.png" in pngs
    assert main(["plot", str(tmp_path / "run")]) == 0
    assert main(["train", str(cfg_file), "--reward.mode", "nonsense"]) == 2


def test_negatives_from_each_source_gives_one_pair_per_source(
    models, tmp_path, monkeypatch, digits_train_config
):
    from cooper.rl.rm_update import RMUpdater

    seen: list[list] = []
    real_update = RMUpdater.update

    def spy(self, pairs):
        seen.append(list(pairs))
        return real_update(self, pairs)

    monkeypatch.setattr(RMUpdater, "update", spy)
    cfg = digits_train_config(tmp_path, "cooper")
    cfg.cooper.negatives, cfg.cooper.negatives_from = ["policy", "perturb"], "each"
    train(cfg)
    by_positive: dict = {}
    for step, pairs in enumerate(seen):
        for p in pairs:
            by_positive.setdefault((step, p.question, p.positive), []).append(p.source)
    assert any(sorted(s) == ["perturb", "policy"] for s in by_positive.values()), by_positive
    assert all(len(s) == len(set(s)) for s in by_positive.values())  # at most one pair per source
    with pytest.raises(ValueError, match="negatives_from must be first or each"):
        load_config(
            None,
            parse_overrides(["--cooper.negatives_from", "all"]),
            output_dir=str(tmp_path),
            data={"files": [str(DIGITS)]},
        )


def test_trl_logs_join_only_the_steps_trl_logs(tmp_path, digits_train_config, monkeypatch):
    """With grpo.logging_steps 2, every step still has its row, in order; TRL's values are on the logged steps."""
    from cooper.rl.callback import CooperCallback

    logged: list[int] = []
    real_on_log = CooperCallback.on_log

    def spy(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            logged.append(state.global_step)
        return real_on_log(self, args, state, control, logs=logs, **kw)

    monkeypatch.setattr(CooperCallback, "on_log", spy)
    train(digits_train_config(tmp_path, "rule", logging_steps=2))
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert 2 in logged and 1 not in logged
    assert [("train/loss" in r) for r in rows] == [r["step"] in logged for r in rows]


@pytest.mark.parametrize("bf16", [True, None])
def test_sft_warm_start_in_bf16_on_a_cpu(bf16, tiny_paths, tmp_path):
    """``sft_warm_start(bf16=True)`` on a CPU: the policy computes in bf16 with eager attention and is saved in
    fp32; by default (``bf16=None``) a CPU trains in fp32."""
    from cooper.rl.sft import sft_warm_start

    examples = [{"prompt": f"Digit {d}?", "completion": f"The answer is {d}."} for d in range(10)]
    setup = TrainingSetup()
    with linear_outputs() as outputs:
        out = sft_warm_start(
            tiny_paths.policy_dir, examples, tmp_path / "sft", max_steps=2, callbacks=[setup], bf16=bf16
        )
    assert setup.bf16 is bool(bf16)
    assert (setup.attention == "eager") is bool(bf16)
    assert (torch.bfloat16 in computed_dtypes(outputs)) is bool(bf16)
    assert {t.dtype for t in _weights(out).values()} == {torch.float32}
