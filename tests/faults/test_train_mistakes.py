"""User mistakes around ``cooper train``, ``train-rm`` and ``eval-rm``: configs, model directories, output
directories and ``--resume``. Each case runs through ``cooper.cli.main`` (or the function it calls) as a user
would, and checks the exit code, that the message names what is wrong, and that nothing was written.

A resume must never continue a different run: a checkpoint records the run-defining settings that made it,
and ``--resume`` compares them; a fresh run into a directory that holds a run stops unless ``--overwrite``.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import yaml
from tests.helpers_cli import run_cli
from tests.helpers_data import DIGITS, DIGITS_INSTRUCTION

from cooper.rl.config import ConfigError, load_config, parse_overrides

GOOD_ROW = {"question": "What is 1+1?", "reference": "2", "completion": "1+1 = \\boxed{2}", "label": 1}


def _run(argv: list, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    return run_cli(argv, caplog, capsys)


def _files(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else []


@pytest.fixture
def config_file(tmp_path: Path, tiny_paths, digits_policy):
    """``make(**changes)`` writes a YAML config for a 2-step run on the digits task and returns its path; a
    change ``"reward.mode": "rule"`` sets one key, a value ``None`` deletes it."""

    def make(name: str = "c.yaml", **changes: object) -> Path:
        tree = {
            "output_dir": str(tmp_path / "run"),
            "policy": str(digits_policy),
            "data": {"files": [str(DIGITS)], "limit": 8, "instruction": DIGITS_INSTRUCTION},
            "reward": {"mode": "cooper", "rm": str(tiny_paths.rm_dir), "rm_max_length": 128},
            "monitor": {"plot": False},
            "grpo": {
                "max_steps": 2,
                "save_steps": 2,
                "per_device_train_batch_size": 8,
                "num_generations": 4,
                "max_completion_length": 8,
                "beta": 0.0,
            },
        }
        for dotted, value in changes.items():
            *parents, last = dotted.split(".")
            node = tree
            for k in parents:
                node = node.setdefault(k, {})
            if value is None:
                node.pop(last, None)
            else:
                node[last] = value
        path = tmp_path / name
        path.write_text(yaml.safe_dump(tree), encoding="utf-8")
        return path

    return make


# -- --resume never continues a different run -------------------------------------------------------------
def test_resume_refuses_a_checkpoint_of_a_different_run(config_file, digits_policy, tmp_path, caplog, capsys):
    """The bug: a static_rm run's checkpoint was resumed by a rule run, which went on at its step."""
    run = tmp_path / "run"
    rc, text = _run(["train", config_file(**{"reward.mode": "static_rm"})], caplog, capsys)
    assert rc == 0, text
    assert (run / "checkpoint-2" / "cooper_rm" / "run.json").is_file()
    metrics_before = (run / "metrics.jsonl").read_text()

    rule = config_file("rule.yaml", **{"reward.mode": "rule", "grpo.max_steps": 4})
    rc, text = _run(["train", rule, "--resume"], caplog, capsys)
    assert rc == 2, text
    assert "belongs to a different run" in text and "reward.mode" in text and "'static_rm'" in text
    assert "Traceback" not in text
    assert (run / "metrics.jsonl").read_text() == metrics_before  # nothing was trained or truncated
    assert not (run / "checkpoint-4").exists()

    # a grpo key that changes the batch is run-defining too, compared by its effective value
    rc, text = _run(
        ["train", config_file(**{"reward.mode": "static_rm"}), "--resume", "--grpo.num_generations", "8"],
        caplog,
        capsys,
    )
    assert rc == 2 and "grpo.num_generations" in text, text

    # the same policy written with a trailing slash is the same run: it resumes
    slash = config_file(
        "slash.yaml", **{"reward.mode": "static_rm", "policy": f"{digits_policy}/", "grpo.max_steps": 3}
    )
    rc, text = _run(["train", slash, "--resume", "--grpo.save_steps", "3"], caplog, capsys)
    assert rc == 0, text
    assert (run / "checkpoint-3").is_dir()


def test_resume_refuses_a_checkpoint_that_records_no_config(config_file, tmp_path, caplog, capsys):
    rc, text = _run(["train", config_file()], caplog, capsys)
    assert rc == 0, text
    (tmp_path / "run" / "checkpoint-2" / "cooper_rm" / "run.json").unlink()  # as an older cooper wrote it
    rc, text = _run(["train", config_file(**{"grpo.max_steps": 3}), "--resume"], caplog, capsys)
    assert rc == 2 and "does not record the config" in text, text


def test_a_fresh_run_into_a_used_output_dir_stops_unless_overwrite(config_file, tmp_path, caplog, capsys):
    run = tmp_path / "run"
    cfg = config_file(**{"reward.mode": "rule"})
    assert _run(["train", cfg], caplog, capsys)[0] == 0
    before = _files(run)
    rc, text = _run(["train", cfg], caplog, capsys)
    assert rc == 2, text
    assert "already holds a run" in text and "checkpoint-2" in text and "--overwrite" in text
    assert _files(run) == before

    keep = run / "notes.txt"  # not the run's: --overwrite leaves it
    keep.write_text("mine")
    rc, text = _run(
        ["train", cfg, "--overwrite", "--grpo.max_steps", "1", "--grpo.save_steps", "1"], caplog, capsys
    )
    assert rc == 0, text
    assert not (run / "checkpoint-2").exists() and (run / "checkpoint-1").is_dir()
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1] and keep.read_text() == "mine"
    assert _run(["train", cfg, "--resume", "--overwrite"], caplog, capsys)[0] == 2  # one or the other


def test_resuming_a_finished_run_changes_nothing(config_file, tmp_path, caplog, capsys):
    """The bug: a 5-step run resumed with max_steps 5 trained a 6th step and wrote checkpoint-6."""
    run = tmp_path / "run"
    cfg = config_file()
    assert _run(["train", cfg], caplog, capsys)[0] == 0
    snapshot = {p: (run / p).stat().st_mtime_ns for p in _files(run) if (run / p).is_file()}
    rc, text = _run(["train", cfg, "--resume"], caplog, capsys)
    assert rc == 0, text
    assert "already finished at step 2" in text
    assert json.loads(text.strip().splitlines()[-1])["steps"] == 2
    assert {p: (run / p).stat().st_mtime_ns for p in _files(run) if (run / p).is_file()} == snapshot
    assert not (run / "checkpoint-3").exists()

    # a longer max_steps is not the end: the same run goes on from its checkpoint
    rc, text = _run(
        ["train", cfg, "--resume", "--grpo.max_steps", "3", "--grpo.save_steps", "3"], caplog, capsys
    )
    assert rc == 0, text
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


# -- reward models ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["static_rm", "cooper"])
def test_a_causal_lm_as_reward_model_is_refused_in_train(
    mode, config_file, digits_policy, tmp_path, caplog, capsys
):
    cfg = config_file(**{"reward.mode": mode, "reward.rm": str(digits_policy)})
    rc, text = _run(["train", cfg], caplog, capsys)
    assert rc == 2, text
    assert "not a reward model" in text and "cooper train-rm" in text and "Traceback" not in text
    assert _files(tmp_path / "run") == []


def test_a_causal_lm_as_reward_model_is_refused_in_eval_rm(digits_policy, tmp_path, caplog, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(GOOD_ROW) + "\n")
    rc, text = _run(
        ["eval-rm", "--model", digits_policy, "--data", data, "--out", tmp_path / "e"], caplog, capsys
    )
    assert rc == 2 and "not a reward model" in text, text
    assert not list(tmp_path.glob("e*"))


def test_rule_mode_neither_loads_nor_warns_about_a_named_rm(
    config_file, tmp_path, monkeypatch, caplog, capsys
):
    """In mode rule the verifier pays the policy: a named RM is not loaded, so no RM metric and no
    hacking warning can describe a reward the policy never saw."""
    from cooper.rm.model import VerifyRM

    def fail(*a, **k):
        raise AssertionError("mode rule loaded the reward model")

    monkeypatch.setattr(VerifyRM, "from_pretrained", fail)
    cfg = config_file(**{"reward.mode": "rule", "monitor.patience": 1, "monitor.hacking_gap_threshold": -1.0})
    rc, text = _run(["train", cfg], caplog, capsys)
    assert rc == 0, text
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert not any("reward/rm_mean" in r or "reward/hacking_gap" in r for r in rows)
    assert "reward hacking" not in text and "is not loaded" in text


def test_rule_mode_in_the_python_api_does_not_score_a_given_rm(tiny_paths, caplog):
    """As the CLI: RewardFunction("rule", rm=...) says the RM is not used, and reports no RM metric."""
    from cooper.rl.reward import RewardFunction
    from cooper.rm.model import VerifyRM

    rm = VerifyRM.from_pretrained(tiny_paths.rm_dir, device="cpu", max_length=128)
    with caplog.at_level(logging.WARNING):
        reward = RewardFunction("rule", rm=rm)
    assert reward.rm is None and "the reward model given is not used" in caplog.text
    assert reward(["q", "q"], ["The answer is 2.", "The answer is 3."], reference=["2", "2"]) == [1.0, 0.0]
    assert not any(k.startswith(("reward/rm_mean", "reward/hacking_gap")) for k in reward.last.metrics)


def test_the_monitor_warns_only_of_a_reward_the_policy_is_paid_by(caplog):
    from types import SimpleNamespace

    from cooper.rl.callback import CooperCallback
    from cooper.rl.config import MonitorConfig

    for mode, warns in (("rule", False), ("static_rm", True), ("cooper", True)):
        reward = SimpleNamespace(mode=mode, calls=0)
        cb = CooperCallback(reward, monitor=MonitorConfig(hacking_gap_threshold=0.3, patience=2))
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            for step in (1, 2, 3):
                cb._monitor({"step": step, "reward/hacking_gap": 0.9})
        assert ("the RM reward the policy is paid by" in caplog.text) == warns, mode


# -- config values --------------------------------------------------------------------------------------
def test_numbers_in_yaml_and_overrides_get_their_fields_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        f"output_dir: {tmp_path / 'o'}\ndata: {{files: [{DIGITS}]}}\nreward: {{mode: rule}}\n"
        "cooper: {rm_update: {learning_rate: 1e-4}}\n"
        "grpo: {learning_rate: 1e-4, max_steps: '5', beta: 0}\n"
    )
    cfg = load_config(path, parse_overrides(["--monitor.hacking_gap_threshold", "2e-1"]))
    assert cfg.grpo["learning_rate"] == 1e-4 and isinstance(cfg.grpo["learning_rate"], float)
    assert cfg.grpo["max_steps"] == 5 and isinstance(cfg.grpo["max_steps"], int)
    assert cfg.cooper.rm_update.learning_rate == 1e-4
    assert cfg.monitor.hacking_gap_threshold == 0.2
    cfg = load_config(path, parse_overrides(["--grpo.learning_rate", "3e-5"]))
    assert cfg.grpo["learning_rate"] == 3e-5


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (["--grpo.max_steps", "abc"], "grpo.max_steps = 'abc' is not an integer"),
        (["--grpo.learning_rate", "fast"], "grpo.learning_rate = 'fast' is not a number"),
        (["--monitor.patience", "five"], "monitor.patience = 'five' is not an integer"),
        (["--monitor.patience", "0"], "monitor.patience must be >= 1"),
        (["--reward.rm_batch_size", "2.5"], "reward.rm_batch_size = 2.5 is not an integer"),
        (["--reward.verifier_timeout_s", ".nan"], "verifier_timeout_s must be a positive number"),
        (["--cooper.rm_update.learning_rate", "1e-3x"], "cooper.rm_update.learning_rate = '1e-3x'"),
        (["--data.limit", "[1]"], "data.limit = [1] is not an integer or null"),
        # values GRPOConfig takes but torch or TRL would fail on later, after writing files
        (["--grpo.learning_rate", "nan"], "grpo.learning_rate = nan: must be a finite number"),
        (["--grpo.learning_rate", "inf"], "grpo.learning_rate = inf: must be a finite number"),
        (["--grpo.learning_rate", "-1"], "grpo.learning_rate = -1: must be >= 0"),
        (["--grpo.temperature", "0"], "grpo.temperature = 0: must be > 0"),
        (["--grpo.max_steps", "0"], "grpo.max_steps = 0: must be > 0"),
        (["--grpo.loss_type", "foo"], "grpo.loss_type = 'foo': TRL supports grpo, dr_grpo, dapo"),
        (["--cooperr.positive", "first"], "unknown key 'cooperr' in the top level; did you mean 'cooper'?"),
        (["--reward.moed", "rule"], "unknown key 'moed' in section 'reward'; did you mean 'mode'?"),
        (
            ["--grpo.learnig_rate", "1e-3"],
            "unknown key 'learnig_rate' in section 'grpo'; did you mean 'learning_rate'?",
        ),
    ],
)
def test_bad_config_values_name_the_key_and_value(override, expected, config_file, tmp_path, caplog, capsys):
    rc, text = _run(["train", config_file(), *override], caplog, capsys)
    assert rc == 2, text
    assert expected in text, text
    assert "Traceback" not in text
    assert _files(tmp_path / "run") == []


def test_unknown_key_in_a_file_names_the_file_and_section(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text(
        f"output_dir: o\ndata: {{files: [{DIGITS}]}}\ncooper:\n  rm_update: {{learning_rat: 1.0}}\n"
    )
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value)
    assert "unknown key 'learning_rat' in section 'cooper.rm_update'; did you mean 'learning_rate'?" in str(
        e.value
    )


def test_a_yaml_syntax_error_is_one_line_with_file_line_and_column(tmp_path, caplog, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("output_dir: o\ndata:\n  files: [a.jsonl\nreward: {mode: rule}\n")
    rc, text = _run(["train", path], caplog, capsys)
    assert rc == 2
    assert f"{path}:4:" in text and "YAML syntax error" in text, text
    assert "Traceback" not in text and "<unicode string>" not in text


def test_relative_input_paths_are_read_against_the_config_files_folder(tmp_path, monkeypatch):
    """`cooper train /abs/path/configs/x.yaml` works from any directory; output_dir stays cwd-relative."""
    conf = tmp_path / "project" / "configs"
    (conf / "data").mkdir(parents=True)
    shutil.copy(DIGITS, conf / "data" / "digits.jsonl")
    (conf / "x.yaml").write_text(
        "output_dir: runs/x\npolicy: ../models/p\ndata: {files: [data/digits.jsonl]}\n"
        "reward: {mode: static_rm, rm: tiny}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(conf / "x.yaml", parse_overrides(["--data.data_dir", "mine"]))
    assert cfg.data.files == [str(conf / "data" / "digits.jsonl")]
    assert cfg.policy == str(tmp_path / "project" / "models" / "p")
    assert cfg.reward.rm == "tiny"  # the offline tiny model is not a path
    assert cfg.output_dir == "runs/x" and cfg.data.data_dir == "mine"  # relative to where the command runs
    from cooper.rl.build import load_prompts

    assert len(load_prompts(cfg)) > 0


def test_the_shipped_configs_load_from_another_directory(tmp_path, monkeypatch):
    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(tmp_path)
    cfg = load_config(repo / "configs" / "tiny_cpu.yaml")
    assert Path(cfg.data.files[0]).is_file()
    assert isinstance(cfg.grpo["learning_rate"], float)
    paper = load_config(repo / "configs" / "paper_qwen2.5_1.5b.yaml")
    assert paper.policy == str(repo / "models" / "Qwen2.5-1.5B-Instruct")


# -- paths and model directories: checked before anything is loaded or written ------------------------------
def _weightless_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for f in dst.glob("*.safetensors"):
        f.unlink()
    return dst


def test_train_checks_models_before_writing_anything(config_file, tiny_paths, tmp_path, caplog, capsys):
    """The tiny policy is built into OUT/tiny-base; a bad RM must be found before that happens."""
    cases = {
        "missing rm": {"policy": "tiny", "reward.rm": str(tmp_path / "nope")},
        "weightless rm": {
            "policy": "tiny",
            "reward.rm": str(_weightless_copy(tiny_paths.rm_dir, tmp_path / "w")),
        },
        "weightless policy": {"policy": str(_weightless_copy(tiny_paths.policy_dir, tmp_path / "wp"))},
    }
    for name, change in cases.items():
        rc, text = _run(["train", config_file(**change)], caplog, capsys)
        assert rc == 2, (name, text)
        assert "Traceback" not in text, name
        if "weightless" in name:
            assert "no weights (no *.safetensors file)" in text, (name, text)
        assert _files(tmp_path / "run") == [], name


@pytest.mark.parametrize("command", ["train", "train-rm", "eval-rm"])
def test_a_weightless_model_dir_is_one_clear_error(
    command, tiny_paths, config_file, tmp_path, caplog, capsys
):
    model = _weightless_copy(tiny_paths.rm_dir, tmp_path / "weightless")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(GOOD_ROW) + "\n" + json.dumps({**GOOD_ROW, "label": 0}) + "\n")
    argv = {
        "train": ["train", config_file(**{"reward.rm": str(model)})],
        "train-rm": ["train-rm", "--data", data, "--model", model, "--out", tmp_path / "run"],
        "eval-rm": ["eval-rm", "--data", data, "--model", model, "--out", tmp_path / "run" / "e"],
    }[command]
    rc, text = _run(argv, caplog, capsys)
    assert rc == 2, text
    assert f"{model}' has a config.json but no weights" in text, text
    assert "Traceback" not in text and "OSError" not in text
    assert _files(tmp_path / "run") == []


@pytest.mark.parametrize("command", ["train", "train-rm", "eval-rm"])
def test_an_output_path_that_is_a_file_fails_before_loading(
    command, config_file, tiny_paths, tmp_path, monkeypatch, caplog, capsys
):
    from cooper.rm.model import VerifyRM

    def fail(*a, **k):
        raise AssertionError("a model was loaded before the output path was checked")

    monkeypatch.setattr(VerifyRM, "from_pretrained", fail)
    taken = tmp_path / "taken"
    taken.write_text("a file")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(GOOD_ROW) + "\n")
    argv = {
        "train": ["train", config_file(output_dir=str(taken))],
        "train-rm": ["train-rm", "--data", data, "--out", taken],
        "eval-rm": ["eval-rm", "--data", data, "--model", tiny_paths.rm_dir, "--out", taken / "eval"],
    }[command]
    rc, text = _run(argv, caplog, capsys)
    assert rc == 2, text
    assert "it is a file" in text and str(taken) in text, text
    assert taken.read_text() == "a file"


# -- train-rm and eval-rm arguments and data ---------------------------------------------------------------
@pytest.mark.parametrize("threshold", ["5", "0", "1", "-0.5", "nan"])
def test_eval_rm_threshold_must_be_a_probability(threshold, tiny_paths, tmp_path, caplog, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(GOOD_ROW) + "\n")
    argv = ["eval-rm", "--data", data, "--model", tiny_paths.rm_dir, f"--threshold={threshold}"]
    rc, text = _run([*argv, "--out", tmp_path / "e"], caplog, capsys)
    assert rc == 2, text
    assert "threshold" in text and threshold in text, text
    assert not list(tmp_path.glob("e*"))


@pytest.mark.parametrize("command", ["train-rm", "eval-rm"])
def test_duplicate_ids_stop_train_rm_and_eval_rm(command, tiny_paths, tmp_path, caplog, capsys):
    data = tmp_path / "dups.jsonl"
    rows = [{"id": "a", **GOOD_ROW}, {"id": "b", **GOOD_ROW, "label": 0}, {"id": "a", **GOOD_ROW}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    argv = {
        "train-rm": ["train-rm", "--data", data, "--out", out],
        "eval-rm": ["eval-rm", "--data", data, "--model", tiny_paths.rm_dir, "--out", out / "e"],
    }[command]
    rc, text = _run(argv, caplog, capsys)
    assert rc == 2, text
    assert f"{data} line 3: duplicate id 'a' (first at {data} line 1)" in text, text
    assert _files(out) == []


def test_train_rm_keeps_one_run_per_out_and_resumes_only_its_own(tiny_paths, tmp_path, caplog, capsys):
    """train-rm as train: a fresh run into a used --out stops unless --overwrite, and --resume refuses the
    checkpoints of a run with other data, learning rate or seed, naming the keys, and changes nothing."""
    rows = [dict(GOOD_ROW, id=f"r{i}", label=i % 2) for i in range(24)]
    first, other = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("".join(json.dumps(r) + "\n" for r in rows))
    other.write_text("".join(json.dumps(dict(r, id=f"x{r['id']}")) + "\n" for r in rows))
    out = tmp_path / "rm"
    base = ["train-rm", "--model", tiny_paths.rm_dir, "--out", out, "--eval-split", "0", "--batch-size", "4"]
    rc, text = _run([*base, "--data", first, "--epochs", "1", "--save-steps", "2"], caplog, capsys)
    assert rc == 0, text
    before = {f: (out / f).stat().st_mtime_ns for f in _files(out) if (out / f).is_file()}
    assert (out / "checkpoints" / "checkpoint-6").is_dir() and "run.json" in before

    rc, text = _run([*base, "--data", first], caplog, capsys)  # fresh run into the used --out
    assert rc == 2, text
    assert "already holds a train-rm run" in text and "--resume" in text and "--overwrite" in text

    changed = [*base, "--data", other, "--lr", "1e-3", "--seed", "7", "--epochs", "2", "--resume"]
    rc, text = _run(changed, caplog, capsys)
    assert rc == 2, text
    assert "belong to a different run" in text, text
    for key in (
        "data (checkpoint:",
        "learning_rate (checkpoint: 1e-05, now: 0.001)",
        "seed (checkpoint: 0, now: 7)",
    ):
        assert key in text, text
    assert {f: (out / f).stat().st_mtime_ns for f in _files(out) if (out / f).is_file()} == before

    rc, text = _run(
        [*base, "--data", first, "--epochs", "2", "--save-steps", "2", "--resume"], caplog, capsys
    )
    assert rc == 0, text  # the same run, longer: it continues
    assert (out / "checkpoints" / "checkpoint-12").is_dir()

    rc, text = _run([*base, "--data", other, "--overwrite"], caplog, capsys)
    assert rc == 0, text
    assert "--overwrite: deleting the earlier train-rm run" in text
    assert json.loads((out / "run.json").read_text())["data"] == [str(other.resolve())]
    assert not (out / "checkpoints" / "checkpoint-12").exists()
    assert _run([*base, "--data", other, "--resume", "--overwrite"], caplog, capsys)[0] == 2


# -- a checkpoint never runs code ----------------------------------------------------------------------------
class _Payload:
    """Unpickling this creates ``path``: proof that a pickle was executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize(
    "target",
    ["cooper_rm/reward.json", "cooper_rm/rm/.metadata", "cooper_rm/rm/__0_0.distcp", "rng_state.pth"],
)
def test_resume_refuses_a_pickle_payload_without_running_it(target, config_file, tmp_path, caplog, capsys):
    """cooper's checkpoint state is JSON plus the RM's DCP shards (read with an unpickler that builds only
    DCP's metadata classes, tensors with weights_only=True), and TRL's files load with weights_only=True: a
    pickle placed where a checkpoint file belongs is refused on --resume, and never executed."""
    import pickle

    run = tmp_path / "run"
    assert _run(["train", config_file()], caplog, capsys)[0] == 0
    marker = tmp_path / "pwned"
    victim = run / "checkpoint-2" / target
    assert victim.is_file(), sorted(p.name for p in victim.parent.iterdir())
    victim.write_bytes(pickle.dumps(_Payload(marker)))
    rc, text = _run(["train", config_file(**{"grpo.max_steps": 3}), "--resume"], caplog, capsys)
    assert not marker.exists(), "a pickle in the checkpoint was executed"
    assert rc == 2, text
    # torch's DCP logger (a NullHandler, not propagated: a user never sees it) reaches pytest's capture
    shown = "\n".join(line for line in text.splitlines() if "dcp_logger" not in line)
    assert "checkpoint-2" in shown and "Traceback" not in shown, text
    assert not (run / "checkpoint-3").exists()
