"""Tests for cooper.rm.model (VerifyRM): loading, saving, scoring with length bucketing."""

from __future__ import annotations

import inspect
import json
import math
import random
import shutil
from pathlib import Path

import pytest
import torch

from cooper.rm.model import RM_META_FILE, VerifyRM
from cooper.rm.template import TEMPLATE_VERSION, encode_rm_input
from cooper.utils.batching import length_sorted_batches
from cooper.utils.tiny import TinyPaths

MAX_LENGTH = 192


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def rm(tiny_paths: TinyPaths) -> VerifyRM:
    return VerifyRM.from_pretrained(tiny_paths.rm_dir, device="cpu", max_length=MAX_LENGTH)


@pytest.fixture(scope="module")
def inputs() -> tuple[list[str], list[str], list[str]]:
    """23 triples of very different lengths (some clipped at MAX_LENGTH), in no particular order."""
    rng = random.Random(0)
    qs, refs, comps = [], [], []
    for i in range(23):
        qs.append(f"Problem {i}: " + " ".join(str(rng.randint(0, 99)) for _ in range(rng.randint(1, 40))))
        refs.append(str(rng.randint(0, 9)))
        comps.append(
            "so " * rng.choice([0, 3, 30, 150, 400]) + f"The answer is \\boxed{{{rng.randint(0, 9)}}}"
        )
    return qs, refs, comps


@pytest.fixture(scope="module")
def saved(rm: VerifyRM, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, VerifyRM]:
    """A VerifyRM whose weights differ from the tiny base, saved to a fresh directory."""
    base = VerifyRM.from_pretrained(rm.model.name_or_path, device="cpu", max_length=MAX_LENGTH)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        for p in base.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("saved-rm") / "rm"
    assert base.save_pretrained(path) == path
    return path, base


# --------------------------------------------------------------------------- scoring


def test_scores_are_probabilities_in_input_order(rm: VerifyRM, inputs) -> None:
    qs, refs, comps = inputs
    scores = rm.score(qs, refs, comps, batch_size=4)
    assert len(scores) == len(qs)
    assert all(0.0 < s < 1.0 for s in scores)
    assert len({round(s, 6) for s in scores}) > len(scores) // 2  # a real model, not a constant
    # Input order: each score is that input's score on its own, and reversing the inputs reverses them.
    for i in (0, 5, 22):
        (alone,) = rm.score([qs[i]], [refs[i]], [comps[i]])
        assert alone == pytest.approx(scores[i], abs=1e-5)
    reversed_scores = rm.score(qs[::-1], refs[::-1], comps[::-1], batch_size=4)
    assert reversed_scores == pytest.approx(scores[::-1], abs=1e-5)
    # The probability is the sigmoid of the raw logit of the encoded template.
    logits = rm.score_logits(rm.encode(qs, refs, comps))
    assert scores == pytest.approx([1 / (1 + math.exp(-x)) for x in logits], abs=1e-6)


def test_bucketed_equals_unbucketed(rm: VerifyRM, inputs) -> None:
    qs, refs, comps = inputs
    lengths = [len(x) for x in rm.encode(qs, refs, comps)]
    assert max(lengths) == MAX_LENGTH and min(lengths) < MAX_LENGTH // 3  # mixed lengths, some clipped
    bucketed = rm.score(qs, refs, comps, batch_size=5, bucket=True)
    unbucketed = rm.score(qs, refs, comps, batch_size=5, bucket=False)
    assert max(abs(a - b) for a, b in zip(bucketed, unbucketed, strict=True)) < 1e-5


def test_batch_size_does_not_change_scores(rm: VerifyRM, inputs) -> None:
    qs, refs, comps = inputs
    one = rm.score(qs, refs, comps, batch_size=1)
    seven = rm.score(qs, refs, comps, batch_size=7, bucket=False)
    assert max(abs(a - b) for a, b in zip(one, seven, strict=True)) < 1e-5


def test_padding_does_not_change_a_score(rm: VerifyRM) -> None:
    short = ("What is 1+1?", "2", "\\boxed{2}")
    long = ("What is 1+1?", "2", "one plus one " * 100 + "\\boxed{2}")
    (alone,) = rm.score(*([x] for x in short))
    padded = rm.score(*([s, lg] for s, lg in zip(short, long, strict=True)), bucket=False)
    assert padded[0] == pytest.approx(alone, abs=1e-5)


def test_length_buckets() -> None:
    lengths = [5, 50, 7, 100, 3, 50, 8]
    batches = length_sorted_batches(lengths, 3)
    assert [len(b) for b in batches] == [3, 3, 1]
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths, reverse=True)
    assert length_sorted_batches([], 4) == []


def test_score_restores_training_mode_and_handles_empty(rm: VerifyRM) -> None:
    assert rm.score([], [], []) == []
    rm.model.train()
    try:
        rm.score(["q"], ["1"], ["\\boxed{1}"])
        assert rm.model.training
    finally:
        rm.model.eval()
    with pytest.raises(ValueError, match="lengths differ"):
        rm.score(["q", "q2"], ["1"], ["c", "c2"])


def test_logits_have_gradients(rm: VerifyRM) -> None:
    ids = rm.encode(["a?", "b?", "c?"], ["1", "2", "3"], ["\\boxed{1}", "so " * 30 + "\\boxed{5}", "3"])
    rm.model.zero_grad()
    out = rm.logits(ids)
    assert out.shape == (3,) and out.dtype == torch.float32 and out.requires_grad
    out.sum().backward()
    grad = rm.model.score.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    rm.model.zero_grad()


# --------------------------------------------------------------------------- saving and loading


def test_save_load_round_trip_gives_identical_scores(saved, rm: VerifyRM, inputs) -> None:
    path, original = saved
    qs, refs, comps = inputs
    expected = original.score(qs, refs, comps)
    assert max(abs(a - b) for a, b in zip(expected, rm.score(qs, refs, comps), strict=True)) > 1e-3
    reloaded = VerifyRM.from_pretrained(path, device="cpu")
    assert reloaded.max_length == MAX_LENGTH  # from cooper_rm.json, not the model's context (1024)
    assert reloaded.score(qs, refs, comps) == pytest.approx(expected, abs=1e-6)
    assert VerifyRM.from_pretrained(path, device="cpu", max_length=100).max_length == 100


def test_saved_dir_is_plain_transformers_safetensors(saved, inputs) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path, original = saved
    files = {p.name for p in path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", RM_META_FILE} <= files
    assert not {"pytorch_model.bin", "model.bin"} & files
    assert not any(name.endswith(".bin") for name in files)
    meta = json.loads((path / RM_META_FILE).read_text())
    assert meta == {"template_version": TEMPLATE_VERSION, "max_length": MAX_LENGTH}

    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    assert model.config.num_labels == 1 and model.config.pad_token_id == tok.pad_token_id
    qs, refs, comps = inputs
    expected = original.score(qs[:4], refs[:4], comps[:4])
    with torch.no_grad():
        for i in range(4):
            ids = encode_rm_input(tok, qs[i], refs[i], comps[i], max_length=MAX_LENGTH)
            logit = model(input_ids=torch.tensor([ids])).logits[0, 0].item()
            assert 1 / (1 + math.exp(-logit)) == pytest.approx(expected[i], abs=1e-5)


def test_missing_directory_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"reward model directory not found: .*nope.*local paths"):
        VerifyRM.from_pretrained(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"has no config\.json"):
        VerifyRM.from_pretrained(tmp_path / "empty")


def test_num_labels_must_be_one(tiny_paths: TinyPaths, tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_paths.rm_dir)
    config.num_labels = 2
    two = AutoModelForSequenceClassification.from_config(config)
    tok = AutoTokenizer.from_pretrained(tiny_paths.rm_dir)
    with pytest.raises(ValueError, match="num_labels=2"):
        VerifyRM(two, tok)
    two.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="num_labels=2"):  # a clear error, not a weight-shape mismatch
        VerifyRM.from_pretrained(tmp_path, device="cpu")


def test_tokenizer_needs_a_pad_token(rm: VerifyRM, tiny_paths: TinyPaths) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_paths.rm_dir)
    tok.pad_token = None
    with pytest.raises(ValueError, match="pad token"):
        VerifyRM(rm.model, tok)


def test_remote_code_is_off_by_default() -> None:
    from cooper.rm.evaluate import evaluate_rm
    from cooper.rm.pretrain import RMTrainConfig

    assert inspect.signature(VerifyRM.from_pretrained).parameters["trust_remote_code"].default is False
    assert inspect.signature(evaluate_rm).parameters["trust_remote_code"].default is False
    assert RMTrainConfig(data=["x.jsonl"], out="o").trust_remote_code is False


def test_base_language_model_gets_a_one_logit_head(tiny_paths: TinyPaths) -> None:
    """`train-rm --model BASE_LM` starts from a causal LM: with new_head it loads as a one-logit classifier."""
    rm = VerifyRM.from_pretrained(tiny_paths.policy_dir, device="cpu", max_length=128, new_head=True)
    assert rm.model.config.num_labels == 1 and rm.max_length == 128
    (score,) = rm.score(["q?"], ["1"], ["\\boxed{1}"])
    assert 0.0 < score < 1.0


def test_a_causal_lm_is_refused_as_a_reward_model(tiny_paths: TinyPaths) -> None:
    """Without new_head a causal LM would score with a random head: refused, saying how to make an RM."""
    with pytest.raises(ValueError, match=r"Qwen2ForCausalLM.*cooper train-rm --model"):
        VerifyRM.from_pretrained(tiny_paths.policy_dir, device="cpu")


def test_a_classifier_without_its_head_weights_is_refused(tiny_paths: TinyPaths, tmp_path: Path) -> None:
    """A classifier config over weights that lack score.weight (an incomplete save) is refused by name."""
    from safetensors.torch import load_file, save_file

    d = tmp_path / "headless"
    shutil.copytree(tiny_paths.rm_dir, d)
    weights = load_file(str(d / "model.safetensors"))
    del weights["score.weight"]
    save_file(weights, str(d / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"lack score\.weight"):
        VerifyRM.from_pretrained(d, device="cpu")


def test_weights_the_model_has_no_place_for_are_refused(tiny_paths: TinyPaths, tmp_path: Path) -> None:
    """A tensor the classifier does not have (another architecture's, or planted) is refused by name, not
    silently dropped."""
    import torch
    from safetensors.torch import load_file, save_file

    d = tmp_path / "extra"
    shutil.copytree(tiny_paths.rm_dir, d)
    weights = load_file(str(d / "model.safetensors"))
    weights["model.layers.7.extra.weight"] = torch.zeros(2, 2)
    save_file(weights, str(d / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(
        ValueError, match=r"hold model\.layers\.7\.extra\.weight, which this model has no place"
    ):
        VerifyRM.from_pretrained(d, device="cpu")


def test_a_corrupt_weight_file_is_a_clear_error(tiny_paths: TinyPaths, tmp_path: Path) -> None:
    """A truncated or corrupt model.safetensors is one ValueError naming the directory, not a raw
    SafetensorError traceback."""
    d = tmp_path / "corrupt"
    shutil.copytree(tiny_paths.rm_dir, d)
    (d / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=r"could not load the reward model from .*corrupt: SafetensorError"):
        VerifyRM.from_pretrained(d, device="cpu")
