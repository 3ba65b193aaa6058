"""Tests for cooper.utils.tiny: offline tokenizer and Qwen2 models built on the fly."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cooper.utils import tiny as tiny

TEXTS = [
    *tiny.ROUNDTRIP_TEXTS,
    "0123456789 9876543210 3.14159 -42 1e-3 1,000,000",
    "\\frac{a}{b} \\cdot \\sqrt[3]{x} \\le \\infty, \\mathbb{R}, \\begin{pmatrix} 1 & 2 \\end{pmatrix}",
    "Ünïcödé: ΑΒΓ αβγ ∑∫∂ — “quotes” … 日本語 한국어 العربية 👍🏽",
    "",
    "\n\n\n",
    "   ",
]
ASCII_MATH = [
    "What is 17 * 23? 17 * 23 = 391. The answer is \\boxed{391}.",
    "Let x = 3/4. Then 2x + 1 = 5/2, so #### 2.5",
    "  indented line\nsecond line\twith tab  \n",
    "<question>1+1?</question>\n<reference_answer>2</reference_answer>\n<completion>2</completion>",
    "$\\dfrac{1}{2} + \\left(\\frac{3}{4}\\right)^{2} = \\frac{17}{16}$",
]
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Compute 12 + 30."},
    {"role": "assistant", "content": "12 + 30 = 42. The answer is \\boxed{42}."},
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tiny.TinyPaths:
    """The default set, built once with sockets disabled (proves nothing is downloaded)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    mp.setattr(socket.socket, "connect", no_network)
    mp.setattr(socket, "create_connection", no_network)
    try:
        return tiny.tiny_models(tmp_path_factory.mktemp("tiny-cache"))
    finally:
        mp.undo()


def _load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def test_import_is_cheap() -> None:
    code = (
        "import sys, cooper.utils.tiny; "
        "print(sorted(m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_pretokenize_regex_matches_transformers() -> None:
    from transformers.models.qwen2 import tokenization_qwen2

    assert tiny.QWEN2_PRETOKENIZE_REGEX == tokenization_qwen2.PRETOKENIZE_REGEX


def test_tokenizer_ids_roundtrip_every_loading_path(built: tiny.TinyPaths, tmp_path: Path) -> None:
    from transformers import Qwen2Tokenizer

    fresh = tiny.build_tokenizer()
    chat = fresh.apply_chat_template(MESSAGES, tokenize=False)
    texts = [*TEXTS, chat, *ASCII_MATH]
    expected = [fresh(t)["input_ids"] for t in texts]
    for directory in (built.tokenizer_dir, built.policy_dir, built.rm_dir):
        reloaded = _load_tokenizer(directory)
        assert isinstance(reloaded, Qwen2Tokenizer)
        assert [reloaded(t)["input_ids"] for t in texts] == expected
    tiny.assert_tokenizer_roundtrip(fresh, texts)
    tiny.assert_tokenizer_roundtrip(built.tokenizer_dir, texts)
    tiny.assert_tokenizer_roundtrip(built.policy_dir, texts)


def test_tokenizer_is_deterministic_and_uses_special_tokens(built: tiny.TinyPaths) -> None:
    tok = _load_tokenizer(built.tokenizer_dir)
    again = tiny.build_tokenizer()
    assert tok.get_vocab() == again.get_vocab()
    assert len(tok) == 512
    assert (tok.pad_token, tok.eos_token, tok.bos_token) == ("<|endoftext|>", "<|im_end|>", None)
    assert tok.convert_tokens_to_ids(list(tiny.SPECIAL_TOKENS)) == [0, 1, 2]
    assert tok("<|im_start|>user<|im_end|>")["input_ids"][0] == 1
    assert [tok.decode(tok(d)["input_ids"]) for d in "0123456789"] == list("0123456789")
    assert len(tok("12345")["input_ids"]) == 5  # Qwen split: one token per digit


def test_decode_encode_identity_for_ascii_math(built: tiny.TinyPaths) -> None:
    tok = _load_tokenizer(built.tokenizer_dir)
    for text in ASCII_MATH:
        assert tok.decode(tok(text)["input_ids"]) == text


def test_roundtrip_detects_a_mismatched_pre_tokenizer(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2 split, merges digits
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(["the answer is 1600"] * 50, trainer=trainer)
    bad = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")
    with pytest.raises(tiny.TokenizerRoundtripError, match="Qwen2Tokenizer"):
        tiny.assert_tokenizer_roundtrip(bad, ["the answer is 1600"])


def test_chat_template(built: tiny.TinyPaths) -> None:
    tok = _load_tokenizer(built.policy_dir)
    prompt = tok.apply_chat_template(MESSAGES[:2], tokenize=False, add_generation_prompt=True)
    assert prompt == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nCompute 12 + 30.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert not tok.apply_chat_template(MESSAGES[1:2], tokenize=False).endswith("assistant\n")
    full = tok.apply_chat_template(
        MESSAGES, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    masked = [i for i, m in zip(full["input_ids"], full["assistant_masks"], strict=True) if m]
    assert tok.decode(masked) == MESSAGES[2]["content"] + "<|im_end|>"
    with pytest.raises(Exception, match="Unsupported role"):
        tok.apply_chat_template([{"role": "robot", "content": "x"}], tokenize=False)


def test_causal_lm_loads_and_generates(built: tiny.TinyPaths) -> None:
    import torch
    from transformers import AutoModelForCausalLM, Qwen2ForCausalLM

    tok = _load_tokenizer(built.policy_dir)
    model = AutoModelForCausalLM.from_pretrained(built.policy_dir)
    assert isinstance(model, Qwen2ForCausalLM)
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert model.generation_config.eos_token_id == tok.eos_token_id
    assert model.generation_config.pad_token_id == tok.pad_token_id
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params < 2_000_000
    prompt = tok.apply_chat_template(
        MESSAGES[:2], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=16, min_new_tokens=16, do_sample=False)
    assert out.shape == (1, prompt["input_ids"].shape[1] + 16)


def test_classifier_logits_ignore_padding(built: tiny.TinyPaths) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, Qwen2ForSequenceClassification

    tok = _load_tokenizer(built.rm_dir)
    model = AutoModelForSequenceClassification.from_pretrained(built.rm_dir).eval()
    assert isinstance(model, Qwen2ForSequenceClassification)
    assert model.config.num_labels == 1 and model.config.pad_token_id == tok.pad_token_id
    texts = [ASCII_MATH[3], "short", ASCII_MATH[0]]
    with torch.no_grad():
        alone = torch.cat([model(**tok(t, return_tensors="pt")).logits for t in texts])
        for side in ("right", "left"):
            tok.padding_side = side
            batch = tok(texts, padding=True, return_tensors="pt")
            assert (batch["attention_mask"] == 0).any()
            logits = model(**batch).logits
            assert logits.shape == (len(texts), 1)
            torch.testing.assert_close(logits, alone, atol=1e-5, rtol=0)


def test_same_seed_same_weights(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    tok = tiny.build_tokenizer()

    def weights(builder, name: str, seed: int) -> dict:
        return load_file(builder(tmp_path / name, tokenizer=tok, seed=seed) / "model.safetensors")

    for builder in (tiny.build_causal_lm, tiny.build_sequence_classifier):
        a, b, c = (weights(builder, f"{builder.__name__}-{i}", s) for i, s in enumerate((0, 0, 1)))
        assert a.keys() == b.keys() == c.keys()
        assert all((a[k] == b[k]).all() for k in a)
        assert any((a[k] != c[k]).any() for k in a)


def test_build_does_not_touch_global_rng(tmp_path: Path) -> None:
    import torch

    tok = tiny.build_tokenizer()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny.build_causal_lm(tmp_path / "m", tokenizer=tok, hidden_size=32, num_heads=2, num_kv_heads=1)
    assert torch.equal(torch.rand(3), expected)


def test_tiny_models_cache_is_reused_and_repaired(built: tiny.TinyPaths) -> None:
    cache = built.policy_dir.parent.parent
    marker = built.policy_dir.parent / "TINY_COMPLETE.json"
    stamp = marker.stat().st_mtime_ns
    assert tiny.tiny_models(cache) == built
    assert marker.stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert json.loads(marker.read_text())["version"] >= 1
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no leftover temp dirs

    (built.rm_dir / "model.safetensors").unlink()  # simulate a half-written set
    again = tiny.tiny_models(cache)
    assert again == built and (built.rm_dir / "model.safetensors").is_file()


def test_invalid_knobs_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        tiny.build_tokenizer(vocab_size=100)
    with pytest.raises(ValueError, match="divisible"):
        tiny.build_causal_lm(tmp_path, tokenizer=tiny.build_tokenizer(), hidden_size=30, num_heads=4)
