"""Tiny offline models for tests, benchmarks and the demo: no downloads, built in a few seconds.

* :func:`build_tokenizer` trains a byte-level BPE on a built-in, deterministic maths corpus.
* :func:`build_causal_lm` / :func:`build_sequence_classifier` save random-init Qwen2 models with it.
* :func:`tiny_models` builds all three once into a cache directory and reuses them.

Why the Qwen split matters: for ``model_type=qwen2`` transformers 5 loads ``Qwen2Tokenizer``, which keeps
only the vocab and merges of ``tokenizer.json`` and installs its own normalizer (NFC), pre-tokenizer (Qwen's
regex, one digit per piece, then byte-level) and decoder. A BPE trained with any other split would get
different ids after a reload, silently. So we train with exactly that pipeline and save the tokenizer as
``Qwen2Tokenizer``, which AutoTokenizer then returns with or without a model config beside it.
:func:`assert_tokenizer_roundtrip` checks this after every save.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedConfig, PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"
SPECIAL_TOKENS = (PAD_TOKEN, IM_START, EOS_TOKEN)

# Same as transformers.models.qwen2.tokenization_qwen2.PRETOKENIZE_REGEX (a test compares them).
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Qwen-style ChatML; `generation` marks assistant text for `return_assistant_tokens_mask`.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{- raise_exception('Unsupported role: ' + message['role']) }}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{%- else %}{{- message['content'] + '<|im_end|>' }}{%- endif %}"
    "{{- '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_CACHE_VERSION = 1
_MARKER = "TINY_COMPLETE.json"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
_MODEL_FILES = ("config.json", "model.safetensors", *_TOKENIZER_FILES)

ROUNDTRIP_TEXTS = (
    "Janet has 16 eggs. She eats 3 and sells the rest for $2 each: 16 - 3 = 13, 13 * 2 = 26.",
    "The answer is \\boxed{26}.",
    "x^{2} + 3x - 4 = 0 \\implies x = \\frac{-3 \\pm \\sqrt{25}}{2}, so \\boxed{\\dfrac{1}{4}}",
    "<question>What is 12345678 + 0.5?</question>\n<reference_answer>12345678.5</reference_answer>\n"
    "<completion>Adding gives 12345678.5. #### 12345678.5</completion>",
    "Unicode: café, naïve, Ångström, Å (U+212B), π ≈ 3.14159, √2, 中文数学, 🙂, ½ ≤ ¾",
    "  leading spaces,\ttabs,\r\nCRLF and trailing   ",
    "it's, we'll, THEY'RE, I'd; a,b;c!?",
    f"{IM_START}user\nWhat is 7 * 8?{EOS_TOKEN}\n{IM_START}assistant\n7 * 8 = 56{EOS_TOKEN}{PAD_TOKEN}",
)


class TokenizerRoundtripError(RuntimeError):
    """A tokenizer gives different ids after ``save_pretrained`` + ``AutoTokenizer.from_pretrained``."""


@dataclass(frozen=True)
class TinyPaths:
    """Directories of a tiny model set; each model dir also holds the tokenizer."""

    tokenizer_dir: Path
    policy_dir: Path
    rm_dir: Path


def _corpus_lines(seed: int = 0, n_problems: int = 1500) -> Iterator[str]:
    """Deterministic maths text: word problems, solutions, LaTeX, RM tags and chat turns."""
    rng = random.Random(seed)
    names = ["Janet", "Tom", "Maria", "Ahmed", "Li", "Sofia", "James", "Aisha", "Carlos", "Emma"]
    items = ["apples", "eggs", "books", "marbles", "pencils", "cookies", "tickets", "dollars", "cars"]
    ops = [("+", "more", lambda a, b: a + b), ("-", "fewer", lambda a, b: a - b)]
    for i in range(n_problems):
        name, item = rng.choice(names), rng.choice(items)
        a, b, c = rng.randint(2, 999), rng.randint(1, 99), rng.randint(2, 12)
        sym, word, fn = rng.choice(ops)
        first = fn(a, b)
        answer = first * c
        question = (
            f"{name} has {a} {item}. {name} gets {b} {word} {item}, then each group is multiplied by {c}. "
            f"How many {item} are there in total?"
        )
        steps = f"First, {a} {sym} {b} = {first}. Then {first} \\times {c} = {answer}."
        p, q = rng.randint(1, 9), rng.randint(2, 9)
        latex = rng.choice(
            [
                f"\\frac{{{p}}}{{{q}}} + \\frac{{1}}{{{q}}} = \\frac{{{p + 1}}}{{{q}}}",
                f"\\sqrt{{{p * p}}} = {p}",
                f"x^{{2}} - {p + q}x + {p * q} = 0 \\Rightarrow x \\in \\{{{p}, {q}\\}}",
                f"\\left( {p} \\cdot {q} \\right) = {p * q}",
                f"\\dfrac{{{p}\\pi}}{{{q}}} \\approx {p * 3.14159 / q:.3f}",
                f"{p}^{{{q}}} = {p**q}",
            ]
        )
        yield question
        yield f"{steps} The answer is \\boxed{{{answer}}}."
        yield f"Solution: $${latex}$$ so the final answer is $\\boxed{{{p * q}}}$. #### {p * q}"
        if i % 3 == 0:
            wrong = answer + rng.choice([-10, -1, 1, 2, 10])
            yield (
                f"<question>{question}</question>\n<reference_answer>{answer}</reference_answer>\n"
                f"<completion>{steps} So the answer is {wrong}.</completion>"
            )
        if i % 5 == 0:
            yield (
                f"{IM_START}system\nYou are a helpful assistant.{EOS_TOKEN}\n{IM_START}user\n{question}"
                f"{EOS_TOKEN}\n{IM_START}assistant\n{steps} \\boxed{{{answer}}}{EOS_TOKEN}"
            )


def build_tokenizer(
    out_dir: str | os.PathLike[str] | None = None,
    *,
    vocab_size: int = 512,
    extra_corpus: Iterable[str] | None = None,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE (Qwen2 pre-tokenizer) on the built-in corpus plus ``extra_corpus``.

    Returns a ``Qwen2Tokenizer`` (a ``PreTrainedTokenizerFast``) with pad ``<|endoftext|>``, eos
    ``<|im_end|>`` and a ChatML chat template; saves it to ``out_dir`` when given. Deterministic.
    """
    # lazy: importing this module stays free of torch, transformers, tokenizers (tests/test_tiny.py)
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    n_reserved = 256 + len(SPECIAL_TOKENS)
    if vocab_size <= n_reserved:
        raise ValueError(
            f"vocab_size must exceed {n_reserved} (256 bytes + special tokens), got {vocab_size}"
        )
    start = time.perf_counter()
    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    # Registered before training so that the trainer never sees "<|im_start|>" as text.
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = list(_corpus_lines())
    if extra_corpus is not None:
        lines.extend(extra_corpus)
    backend.train_from_iterator(lines, trainer=trainer, length=len(lines))
    tokenizer = Qwen2Tokenizer(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=None,
        bos_token=None,
        extra_special_tokens=[IM_START, EOS_TOKEN],
        model_max_length=32768,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    if out_dir is not None:
        tokenizer.save_pretrained(out_dir)
    assert_tokenizer_roundtrip(tokenizer if out_dir is None else out_dir)
    logger.info(
        "Trained tiny BPE tokenizer: %d tokens from %d lines in %.2f s",
        len(tokenizer),
        len(lines),
        time.perf_counter() - start,
    )
    return tokenizer


def assert_tokenizer_roundtrip(
    tokenizer_dir_or_obj: str | os.PathLike[str] | PreTrainedTokenizerFast,
    texts: Iterable[str] | None = None,
) -> None:
    """Raise :class:`TokenizerRoundtripError` if reloading through ``AutoTokenizer`` changes any ids.

    A directory is compared against its own ``tokenizer.json`` (read by ``tokenizers`` alone); a tokenizer
    object against itself after a save. The reload is tried as the directory is and, when it holds no
    ``config.json``, also with a qwen2 ``config.json`` beside it (the path that swaps in ``Qwen2Tokenizer``).
    """
    # lazy: importing this module stays free of torch, transformers, tokenizers (tests/test_tiny.py)
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, Qwen2Config

    texts = list(ROUNDTRIP_TEXTS if texts is None else texts)
    with tempfile.TemporaryDirectory(prefix="cooper-tiny-rt-") as tmp:
        if isinstance(tokenizer_dir_or_obj, (str, os.PathLike)):
            src = Path(tokenizer_dir_or_obj)
            raw = Tokenizer.from_file(str(src / "tokenizer.json"))
            reference, ref_name = [raw.encode(t).ids for t in texts], f"{src}/tokenizer.json"
        else:
            src = Path(tmp) / "saved"
            tokenizer_dir_or_obj.save_pretrained(src)
            reference = [tokenizer_dir_or_obj(t)["input_ids"] for t in texts]
            ref_name = f"the {type(tokenizer_dir_or_obj).__name__} object"
        candidates = {"as saved": src}
        if not (src / "config.json").exists():
            with_config = Path(tmp) / "with_qwen2_config"
            shutil.copytree(src, with_config)
            Qwen2Config().save_pretrained(with_config)  # only its model_type matters here
            candidates["with a qwen2 config.json beside it"] = with_config
        for how, directory in candidates.items():
            reloaded = AutoTokenizer.from_pretrained(directory)
            for text, expected in zip(texts, reference, strict=True):
                got = reloaded(text)["input_ids"]
                if got != expected:
                    pos = next(
                        (i for i, (a, b) in enumerate(zip(expected, got, strict=False)) if a != b),
                        min(len(expected), len(got)),
                    )
                    raise TokenizerRoundtripError(
                        f"AutoTokenizer.from_pretrained (directory {how}) -> {type(reloaded).__name__} encodes "
                        f"{text!r} differently from {ref_name} (first difference at position {pos}): "
                        f"expected {reloaded.convert_ids_to_tokens(expected[pos : pos + 8])}, "
                        f"got {reloaded.convert_ids_to_tokens(got[pos : pos + 8])}. The saved tokenizer must use "
                        "the pre-tokenizer and normalizer that transformers installs for its class."
                    )


def _model_config(
    tokenizer: PreTrainedTokenizerFast,
    *,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 1024,
    num_labels: int | None = None,
) -> PreTrainedConfig:
    """The ``Qwen2Config`` of a tiny model; its keyword arguments (but ``num_labels``, set for the
    classifier) are the shape knobs of the public builders. ``intermediate_size`` defaults to
    ``4 * hidden_size``."""
    # lazy: importing this module stays free of torch, transformers, tokenizers (tests/test_tiny.py)
    from transformers import Qwen2Config

    if hidden_size % num_heads or num_heads % num_kv_heads:
        raise ValueError(
            f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads}), "
            f"and num_heads by num_kv_heads ({num_kv_heads})"
        )
    pad_id = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size if intermediate_size is not None else 4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        max_window_layers=num_layers,
        tie_word_embeddings=True,
        pad_token_id=pad_id,
        bos_token_id=pad_id,  # as in Qwen2.5: no BOS is prepended, <|endoftext|> stands in
        eos_token_id=tokenizer.convert_tokens_to_ids(EOS_TOKEN),
        **({} if num_labels is None else {"num_labels": num_labels}),
    )


def _build_model(
    kind: str,
    out_dir: str | os.PathLike[str],
    *,
    tokenizer: PreTrainedTokenizerFast | None = None,
    seed: int = 0,
    **shape: int | None,
) -> Path:
    """Save a random-init Qwen2 ``kind`` (``causal_lm`` or ``sequence_classifier``) with its tokenizer.

    The options of both public builders: ``tokenizer`` (default: a fresh :func:`build_tokenizer`), ``seed``
    (the same seed gives identical weights; the caller's RNG is left untouched) and the shape knobs of
    :func:`_model_config`.
    """
    # lazy: importing this module stays free of torch, transformers, tokenizers (tests/test_tiny.py)
    import torch
    from transformers import GenerationConfig, Qwen2ForCausalLM, Qwen2ForSequenceClassification

    start = time.perf_counter()
    tokenizer = tokenizer if tokenizer is not None else build_tokenizer()
    config = _model_config(tokenizer, **shape, num_labels=None if kind == "causal_lm" else 1)
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG untouched
        torch.manual_seed(seed)
        if kind == "causal_lm":
            model = Qwen2ForCausalLM(config)
            model.generation_config = GenerationConfig(
                bos_token_id=config.bos_token_id,
                eos_token_id=config.eos_token_id,
                pad_token_id=config.pad_token_id,
            )
        else:
            model = Qwen2ForSequenceClassification(config)
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    assert_tokenizer_roundtrip(out)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info(
        "Built tiny %s (%d parameters) at %s in %.2f s", kind, n_params, out, time.perf_counter() - start
    )
    return out


def build_causal_lm(out_dir: str | os.PathLike[str], **options: Any) -> Path:
    """Save a random-init ``Qwen2ForCausalLM`` (tied embeddings) with its tokenizer and generation config.

    Keyword options (see :func:`_build_model`): ``tokenizer``, ``hidden_size`` (128), ``num_layers`` (2),
    ``num_heads`` (4), ``num_kv_heads`` (2), ``intermediate_size`` (``4 * hidden_size``),
    ``max_position_embeddings`` (1024), ``seed`` (0; the same seed gives identical weights).
    """
    return _build_model("causal_lm", out_dir, **options)


def build_sequence_classifier(out_dir: str | os.PathLike[str], **options: Any) -> Path:
    """Save a random-init ``Qwen2ForSequenceClassification`` with one logit (a scalar reward model).

    ``pad_token_id`` is set so the model pools the last non-pad token (left or right padding). Keyword
    options: those of :func:`build_causal_lm`.
    """
    return _build_model("sequence_classifier", out_dir, **options)


def _is_complete(root: Path) -> bool:
    try:
        marker = json.loads((root / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    if marker.get("version") != _CACHE_VERSION:
        return False
    paths = _paths(root)
    return all((paths.tokenizer_dir / f).is_file() for f in _TOKENIZER_FILES) and all(
        (d / f).is_file() for d in (paths.policy_dir, paths.rm_dir) for f in _MODEL_FILES
    )


def _paths(root: Path) -> TinyPaths:
    return TinyPaths(tokenizer_dir=root / "tokenizer", policy_dir=root / "policy", rm_dir=root / "rm")


def tiny_models(cache_dir: str | os.PathLike[str], *, seed: int = 0) -> TinyPaths:
    """Build the default tokenizer, policy and reward model under ``cache_dir`` once; reuse them after.

    The set is built in a temporary sibling directory and moved into place with ``os.replace``, so a
    reader never sees a half-written set; an incomplete or outdated set is rebuilt.
    """
    cache = Path(cache_dir)
    root = cache / f"tiny-v{_CACHE_VERSION}-seed{seed}"
    if _is_complete(root):
        return _paths(root)
    if root.exists():
        logger.warning("Tiny model cache %s is incomplete or outdated; rebuilding it", root)
        shutil.rmtree(root)
    cache.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-tmp-", dir=cache))
    try:
        staged = _paths(tmp)
        tokenizer = build_tokenizer(staged.tokenizer_dir)
        build_causal_lm(staged.policy_dir, tokenizer=tokenizer, seed=seed)
        build_sequence_classifier(staged.rm_dir, tokenizer=tokenizer, seed=seed)
        seconds = time.perf_counter() - start
        (tmp / _MARKER).write_text(json.dumps({"version": _CACHE_VERSION, "seed": seed, "build_s": seconds}))
        try:
            os.replace(tmp, root)
        except OSError:
            if not _is_complete(root):  # not a concurrent builder that won the race
                raise
            logger.info("Another process built %s first; using it", root)
        else:
            logger.info("Built tiny model set at %s in %.2f s", root, seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _paths(root)
