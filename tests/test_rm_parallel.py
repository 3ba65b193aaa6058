"""The RM's layouts across processes (cooper.rm.parallel) on one process: which layout each setting means,
what FSDP2 cannot wrap, and sharded checkpoints that do not fit the model. The multi-process proofs are in
tests/test_multiprocess.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cooper.rl.config import load_config, parse_overrides
from cooper.rl.rm_update import Pair, RMUpdateConfig, RMUpdater
from cooper.rm.model import VerifyRM
from cooper.rm.parallel import (
    ParallelError,
    decoder_layers,
    resolve_parallel,
    save_sharded,
    sharded_weights,
)
from cooper.utils.tiny import build_sequence_classifier
from helpers_data import DIGITS


@pytest.mark.parametrize(
    ("parallel", "world", "layout"),
    [
        ("auto", 1, "none"),
        ("auto", 4, "shard"),
        ("replicate", 1, "none"),
        ("replicate", 2, "replicate"),
        ("shard", 1, "shard"),
        ("shard", 2, "shard"),
    ],
)
def test_each_setting_means_one_layout(parallel: str, world: int, layout: str) -> None:
    assert resolve_parallel(parallel, world) == layout


def test_an_unknown_setting_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="parallel must be one of auto, replicate, shard, got 'zero3'"):
        RMUpdateConfig(parallel="zero3")
    config = tmp_path / "c.yaml"
    config.write_text(f"output_dir: o\ndata: {{files: [{DIGITS}]}}\n")
    with pytest.raises(ValueError, match="parallel"):
        load_config(config, parse_overrides(["--cooper.rm_update.parallel", "zero3"]))


def test_a_model_without_decoder_layers_is_refused_naming_it() -> None:
    class Flat(torch.nn.Module):
        _no_split_modules = ["Block"]

        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)

    with pytest.raises(
        ParallelError, match="cannot wrap the reward model Flat: .*'Block'.*parallel: replicate"
    ):
        decoder_layers(Flat())
    with pytest.raises(ParallelError, match="_no_split_modules is empty"):
        decoder_layers(torch.nn.Linear(4, 1))


def _pairs() -> list[Pair]:
    return [
        Pair(f"What is {i} + 1?", str(i + 1), f"The answer is {i + 1}.", f"The answer is {i}.", "t")
        for i in range(3)
    ]


def test_a_sharded_checkpoint_round_trips_exactly_on_one_process(tiny_paths, tmp_path: Path) -> None:
    """Weights and AdamW state saved with DCP load back bitwise: the next update is the same."""
    rm = VerifyRM.from_pretrained(tiny_paths.rm_dir, dtype=torch.float32, max_length=128, device="cpu")
    updater = RMUpdater(rm, RMUpdateConfig(learning_rate=1e-3))
    updater.update(_pairs())
    updater.save_sharded(tmp_path / "ckpt")
    saved = sharded_weights(tmp_path / "ckpt")
    assert all(torch.equal(saved[k], v) for k, v in rm.model.state_dict().items())
    updater.update(_pairs())
    expected = {k: v.clone() for k, v in rm.model.state_dict().items()}

    fresh = VerifyRM.from_pretrained(tiny_paths.rm_dir, dtype=torch.float32, max_length=128, device="cpu")
    other = RMUpdater(fresh, RMUpdateConfig(learning_rate=1e-3))
    other.load_sharded(tmp_path / "ckpt")
    other.update(_pairs())
    assert all(torch.equal(fresh.model.state_dict()[k], v) for k, v in expected.items())


def test_a_checkpoint_of_another_architecture_is_refused_naming_the_key(tiny_paths, tmp_path: Path) -> None:
    small = VerifyRM.from_pretrained(
        build_sequence_classifier(tmp_path / "one-layer", num_layers=1),
        dtype=torch.float32,
        max_length=128,
        device="cpu",
        new_head=True,
    )
    save_sharded(small.model, torch.optim.AdamW(small.model.parameters()), tmp_path / "small")
    rm = VerifyRM.from_pretrained(tiny_paths.rm_dir, dtype=torch.float32, max_length=128, device="cpu")
    updater = RMUpdater(rm)
    with pytest.raises(ParallelError, match=r"another architecture: it lacks model\.layers\.1\."):
        updater.load_sharded(tmp_path / "small")
    save_sharded(rm.model, torch.optim.AdamW(rm.model.parameters()), tmp_path / "two-layers")
    with pytest.raises(
        ParallelError, match=r"another architecture: it has model\.layers\.1\..*which this model lacks"
    ):
        RMUpdater(small).load_sharded(tmp_path / "two-layers")

    wide = VerifyRM.from_pretrained(
        build_sequence_classifier(tmp_path / "wide", hidden_size=64, num_heads=4),
        dtype=torch.float32,
        max_length=128,
        device="cpu",
        new_head=True,
    )
    save_sharded(wide.model, torch.optim.AdamW(wide.model.parameters()), tmp_path / "wide-ckpt")
    with pytest.raises(
        ParallelError, match=r"another architecture: .* has shape \[\d+, 64\] there and \[\d+, 128\] here"
    ):
        updater.load_sharded(tmp_path / "wide-ckpt")


def test_the_rm_loads_outside_a_zero3_registration(tiny_paths, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a ZeRO-3 policy config transformers would partition every model it builds; the RM is built with
    that registration set aside (and it is restored after), so it holds its real weights."""
    from transformers.integrations import deepspeed as hf_deepspeed

    from cooper.rl import build
    from cooper.rm.parallel import outside_zero3

    class Zero3:
        config: dict = {"zero_optimization": {"stage": 3}}

        def is_zero3(self) -> bool:
            return True

    registered = Zero3()
    hf_deepspeed.set_hf_deepspeed_config(registered)  # what TrainingArguments(deepspeed=...) does
    try:
        assert hf_deepspeed.is_deepspeed_zero3_enabled()
        with outside_zero3():
            assert not hf_deepspeed.is_deepspeed_zero3_enabled()
        assert hf_deepspeed.is_deepspeed_zero3_enabled()

        seen = []
        real = VerifyRM.from_pretrained.__func__

        def spy(cls, *args, **kwargs):
            seen.append(hf_deepspeed.is_deepspeed_zero3_enabled())
            return real(cls, *args, **kwargs)

        monkeypatch.setattr(VerifyRM, "from_pretrained", classmethod(spy))
        cfg = load_config(None, output_dir="o", data={"files": [str(DIGITS)]}, reward={"mode": "static_rm"})
        build.build_reward(cfg, str(tiny_paths.rm_dir))
        assert seen == [False]
        assert hf_deepspeed.is_deepspeed_zero3_enabled()
    finally:
        hf_deepspeed.unset_hf_deepspeed_config()
