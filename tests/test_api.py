"""The Python API: ``from cooper import ...`` gives a TRL user what they need, and ``examples/trl_script.py``
(plain TRL around cooper's pieces) trains, writes the monitor's metrics and resumes with the RM restored."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

import cooper
from cooper.rm.parallel import sharded_weights
from cooper.utils.state import load_state

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "examples" / "trl_script.py"


def test_every_public_name_resolves_and_import_stays_light():
    for name in cooper.__all__:
        assert getattr(cooper, name) is not None, name
    code = (
        "import sys, cooper; print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_dataset_without_reference_is_a_clear_error():
    reward = cooper.RewardFunction("rule")
    with pytest.raises(ValueError, match=r"'reference' column .*passed \['answer'\]"):
        reward(["q"], ["The answer is 1."], answer=["1"])


def _run_script(monkeypatch: pytest.MonkeyPatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    runpy.run_path(str(SCRIPT), run_name="__main__")


@pytest.mark.slow
def test_the_trl_script_trains_monitors_and_resumes_with_the_rm(tmp_path, monkeypatch):
    """As the README runs it: the script warm-starts its tiny policy, so that verified positives and pairs form."""
    out = tmp_path / "run"
    _run_script(monkeypatch, "--out", str(out), "--steps", "3")

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in (
        "reward/rule_accuracy",
        "reward/rm_mean",
        "reward/hacking_gap",
        "rm/valid_pairs",
        "seconds/step",
    ):
        assert all(key in r for r in rows), key
    assert sum(r["rm/valid_pairs"] for r in rows) > 0, "no pair formed in 3 steps"
    assert any("rm/pair_accuracy" in r for r in rows)
    start = load_file(str(out / "models" / "tiny-v1-seed0" / "rm" / "model.safetensors"))
    trained = load_file(str(out / "reward_model" / "model.safetensors"))
    assert any(not start[k].equal(trained[k]) for k in start), "the RM did not change in 3 Cooper steps"
    saved = load_state(out / "checkpoint-3" / "cooper_rm", "reward")
    saved_rm = sharded_weights(out / "checkpoint-3" / "cooper_rm" / "rm")

    from cooper.rl import callback as callback_mod

    restored: dict = {}
    real = callback_mod.load_reward_state

    def spy(reward, ckpt):
        real(reward, ckpt)
        restored["rm"] = {k: v.detach().clone() for k, v in reward.rm.model.state_dict().items()}
        restored["calls"] = reward.calls

    monkeypatch.setattr(callback_mod, "load_reward_state", spy)
    _run_script(monkeypatch, "--out", str(out), "--steps", "5", "--resume")
    assert restored["calls"] == saved["calls"] == 3
    assert saved_rm.keys() == restored["rm"].keys()
    assert all(restored["rm"][k].equal(saved_rm[k]) for k in saved_rm)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
