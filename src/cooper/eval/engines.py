"""Prompt building and batched sampling for policy evaluation (used by :mod:`cooper.eval.run`).

* :class:`PromptTemplate` turns a question into chat messages (question, then the instruction, as the
  user turn) and renders them with the model's own chat template.
* :func:`encode_prompts` tokenises them and truncates over-long prompts from the left (the end, where the
  question and the generation prompt are, is kept), counting every truncation.
* :class:`TransformersEngine` samples with ``model.generate``: left padding, KV cache, batches of prompts
  sorted by token length (longest first, so less padding and an out-of-memory error shows up on the first
  batch), results handed back with their original positions. Temperature, top-p and the draw are done by
  :class:`cooper.eval.sampling.NucleusSampler` (the same nucleus as transformers' warpers, without sorting the
  vocabulary or a ``torch.multinomial`` per step) with its own ``torch.Generator``, seeded per batch with
  a hash of (seed, the batch's sample keys): the same command gives the same samples, and the caller's RNG
  is left alone.
* :class:`VLLMEngine` does the same through ``vllm.LLM.generate`` with one ``SamplingParams(n=1, seed=…)``
  per sample, so every sample has its own seed. vLLM is imported lazily and is **untested here** (no GPU
  and no vLLM in CI): it is written against vLLM's documented ``LLM`` / ``SamplingParams`` /
  ``TokensPrompt`` API.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessorList,
    PreTrainedTokenizerBase,
)

from cooper.data.prompts import DEFAULT_INSTRUCTION, USER_TEMPLATE, prompt_messages, user_message
from cooper.eval.constants import DEFAULT_MAX_NEW_TOKENS, DTYPES, ENGINES
from cooper.eval.sampling import NucleusSampler
from cooper.utils.batching import input_order_batches, length_sorted_batches
from cooper.utils.device import default_device, inference_dtype, is_cuda, on_gpu
from cooper.utils.models import ModelLoadError, check_model_dir, load_errors

logger = logging.getLogger(__name__)

DEFAULT_VLLM_CHUNK = 1024  # requests handed to vLLM per call when no batch size is given


@dataclass(frozen=True)
class SamplingSettings:
    """How completions are sampled. ``temperature == 0`` means greedy decoding (``top_p`` is then unused)."""

    n: int = 8
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n (samples per problem) must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class PromptTemplate:
    """The user turn is ``USER_TEMPLATE`` filled with the question and ``instruction``; optional system turn."""

    instruction: str = DEFAULT_INSTRUCTION
    system: str | None = None

    def user_message(self, question: str) -> str:
        return user_message(question, self.instruction)

    def messages(self, question: str) -> list[dict[str, str]]:
        return prompt_messages(question, self.instruction, self.system)

    def render(self, tokenizer: Any, question: str) -> str:
        """The prompt text: the chat template with a generation prompt, or the bare user message + newline."""
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(
                self.messages(question), add_generation_prompt=True, tokenize=False
            )
        return self.user_message(question) + "\n"

    def describe(self, tokenizer: Any) -> dict[str, Any]:
        """What results.json records: the instruction, the templates and the prompt with a placeholder."""
        return {
            "instruction": self.instruction,
            "system": self.system,
            "user_template": USER_TEMPLATE if self.instruction.strip() else "{question}",
            "chat_template": bool(getattr(tokenizer, "chat_template", None)),
            "rendered": self.render(tokenizer, "{question}"),
        }


@dataclass
class EncodedPrompt:
    """A rendered prompt, its token ids (after truncation) and whether it was truncated."""

    text: str
    ids: list[int]
    truncated: bool
    original_tokens: int


def encode_prompts(
    tokenizer: Any, questions: Sequence[str], template: PromptTemplate, max_prompt_tokens: int | None
) -> list[EncodedPrompt]:
    """Render and tokenise ``questions``; a prompt over ``max_prompt_tokens`` keeps only its last tokens."""
    if not getattr(tokenizer, "chat_template", None):
        logger.warning("the tokenizer has no chat template: prompts are the bare user message")
    texts = [template.render(tokenizer, q) for q in questions]
    encoded = []
    for text, ids in zip(texts, tokenizer(texts, add_special_tokens=False)["input_ids"], strict=True):
        if max_prompt_tokens is not None and len(ids) > max_prompt_tokens:
            kept = ids[len(ids) - max_prompt_tokens :]
            encoded.append(EncodedPrompt(tokenizer.decode(kept), kept, True, len(ids)))
        else:
            encoded.append(EncodedPrompt(text, list(ids), False, len(ids)))
    return encoded


@dataclass
class Completion:
    """One sampled completion: decoded text (special tokens dropped), generated tokens, why it ended."""

    text: str
    n_tokens: int
    finish_reason: str  # "stop" (an end-of-sequence token) or "length" (max_new_tokens reached)


def default_max_new_tokens(max_context: int | None) -> int:
    """The completion budget when none is given: the paper's 2048, capped at half the model's context.

    Half the context keeps room for a prompt as long as the completion and depends only on the model, so a
    resumed run with the same model resolves the same value; prompts longer than the other half are cut
    from the left (and counted) by :func:`encode_prompts`. ``None`` (context unknown) gives 2048.
    """
    if max_context is None:
        return DEFAULT_MAX_NEW_TOKENS
    return max(1, min(DEFAULT_MAX_NEW_TOKENS, max_context // 2))


def batch_seed(seed: int, keys: Sequence[str]) -> int:
    """A 63-bit seed from the run seed and the keys of a batch (the same batch always samples the same)."""
    digest = hashlib.sha256("\x1f".join([str(seed), *keys]).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class Engine(Protocol):
    """What :mod:`cooper.eval.run` needs from a generation backend."""

    name: str
    tokenizer: Any
    max_context: int | None
    device: str
    dtype: str

    def generate(
        self, prompts: Sequence[list[int]], keys: Sequence[str], settings: SamplingSettings
    ) -> Iterator[tuple[list[int], list[Completion]]]:
        """Yield ``(positions in prompts, completions)`` batch by batch until every prompt has one."""
        ...


def _max_context(config: Any) -> int | None:
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    value = getattr(text_config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def _load_tokenizer(path: Path, trust_remote_code: bool) -> PreTrainedTokenizerBase:
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, TypeError, ImportError, RuntimeError) as e:
        raise ModelLoadError(f"could not load the tokenizer from {path}: {type(e).__name__}: {e}") from e
    # transformers 5 builds an empty tokenizer, without an error, from a directory with no tokenizer files
    if len(tokenizer) <= 1 or not tokenizer("Question 1", add_special_tokens=False)["input_ids"]:
        raise ModelLoadError(
            f"could not load the tokenizer from {path}: it is empty ({len(tokenizer)} tokens); the directory "
            "needs its tokenizer files (tokenizer.json, or vocab and merges / tokenizer.model)"
        )
    return tokenizer


def _resolve_device(device: str) -> str:
    if device == "auto":
        return default_device()
    if is_cuda(device) and not on_gpu():
        raise ModelLoadError(f"--device {device}: CUDA is not available on this machine")
    return device


class TransformersEngine:
    """``AutoModelForCausalLM.generate`` in length-sorted, left-padded batches of ``batch_size`` samples."""

    name = "transformers"

    def __init__(
        self,
        model_path: str | Path,
        *,
        device: str = "auto",
        dtype: str = "auto",
        trust_remote_code: bool = False,
        batch_size: int | None = None,
        sort_by_length: bool = True,
    ) -> None:
        path = check_model_dir(model_path)
        self.device = _resolve_device(device)
        if dtype == "auto":
            dtype = inference_dtype(self.device, fp16_fallback=True)
        self.dtype = dtype
        self.tokenizer = _load_tokenizer(path, trust_remote_code)
        try:
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code
            )
        except load_errors() as e:
            raise ModelLoadError(f"could not load the model from {path}: {type(e).__name__}: {e}") from e
        self.model = model.to(self.device).eval()
        self.max_context = _max_context(model.config)
        # CPU 32: on the 2-core test machine the tiny policy's length-sorted eval ran 7,405 tok/s at 32, 6,855
        # at 16 and 7,068 at 64 (bench/eval_throughput.py --batch-size N, docs/benchmarks.md)
        self.batch_size = batch_size or (64 if is_cuda(self.device) else 32)
        self.sort_by_length = sort_by_length
        gen = model.generation_config
        eos = [gen.eos_token_id] if isinstance(gen.eos_token_id, int) else list(gen.eos_token_id or [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in eos:
            eos.append(self.tokenizer.eos_token_id)
        if not eos:
            logger.warning("%s defines no end-of-sequence token: every sample runs to max_new_tokens", path)
        self.eos_ids = eos
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else gen.pad_token_id
        self.pad_id = pad if pad is not None else (eos[0] if eos else 0)
        # The protocol is cooper's alone: generate() fills every knob left unset from the model's own
        # generation_config.json (Qwen's top_k=20 and repetition_penalty=1.05, or a model's
        # no_repeat_ngram_size, min_new_tokens, suppress_tokens, ...). Keep only its special-token ids.
        model.generation_config = GenerationConfig(
            bos_token_id=gen.bos_token_id, eos_token_id=self.eos_ids or None, pad_token_id=self.pad_id
        )
        logger.info(
            "loaded %s on %s (%s), context %s, batch size %d",
            path,
            self.device,
            dtype,
            self.max_context,
            self.batch_size,
        )

    def _generation_config(self, settings: SamplingSettings) -> GenerationConfig:
        # Greedy for transformers in both modes: when sampling, cooper.eval.sampling.NucleusSampler (a logits
        # processor) applies temperature and top-p and draws the token, and the argmax picks it. The
        # model's own generation config was replaced at load (__init__), so nothing else is applied.
        return GenerationConfig(
            max_new_tokens=settings.max_new_tokens,
            do_sample=False,
            num_beams=1,
            use_cache=True,
            eos_token_id=self.eos_ids or None,
            pad_token_id=self.pad_id,
        )

    def _logits_processors(self, settings: SamplingSettings, seed: int) -> LogitsProcessorList:
        if settings.greedy:
            return LogitsProcessorList()
        generator = torch.Generator(device=self.device).manual_seed(seed)
        return LogitsProcessorList([NucleusSampler(settings.temperature, settings.top_p, generator)])

    def _batch(self, prompts: list[list[int]], settings: SamplingSettings, seed: int) -> list[Completion]:
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):  # left padding: the prompt ends where generation starts
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention_mask.to(self.device),
                generation_config=self._generation_config(settings),
                logits_processor=self._logits_processors(settings, seed),
            )
        completions = []
        eos = set(self.eos_ids)
        for ids in out[:, width:].tolist():
            end = next((i for i, t in enumerate(ids) if t in eos), None)
            kept = ids if end is None else ids[:end]
            n_tokens = len(ids) if end is None else end + 1  # the end-of-sequence token is generated too
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            completions.append(Completion(text, n_tokens, "length" if end is None else "stop"))
        return completions

    def generate(
        self, prompts: Sequence[list[int]], keys: Sequence[str], settings: SamplingSettings
    ) -> Iterator[tuple[list[int], list[Completion]]]:
        """Yield ``(positions, completions)`` per batch; batches are length-sorted unless disabled."""
        if len(prompts) != len(keys):
            raise ValueError(f"{len(prompts)} prompts but {len(keys)} keys")
        if not prompts:
            return
        if self.sort_by_length:
            batches = length_sorted_batches([len(p) for p in prompts], self.batch_size)
        else:
            batches = input_order_batches(len(prompts), self.batch_size)
        for positions in batches:
            seed = batch_seed(settings.seed, [keys[i] for i in positions])
            yield positions, self._batch([list(prompts[i]) for i in positions], settings, seed)


class VLLMEngine:
    """vLLM offline inference. UNTESTED in this repository (no GPU, vLLM not installed in CI).

    Written against the documented API: ``vllm.LLM(model=..., tokenizer=..., trust_remote_code=...,
    seed=..., dtype=...)``, ``LLM.generate(prompts, sampling_params, use_tqdm=False)`` with prompts as
    ``{"prompt_token_ids": [...]}`` (``TokensPrompt``) and one ``SamplingParams(n=1, temperature, top_p,
    max_tokens, seed, stop_token_ids)`` per sample; outputs are ``RequestOutput.outputs[0]`` with ``.text``,
    ``.token_ids`` and ``.finish_reason``.
    """

    name = "vllm"

    def __init__(
        self,
        model_path: str | Path,
        *,
        dtype: str = "auto",
        trust_remote_code: bool = False,
        batch_size: int | None = None,
        seed: int = 0,
    ) -> None:
        path = check_model_dir(model_path)
        if importlib.util.find_spec("vllm") is None:
            raise ModelLoadError(
                "--engine vllm: vLLM is not installed (pip install 'cooper-rl[vllm]' on a GPU)"
            )
        from vllm import LLM  # an optional extra (cooper-rl[vllm]), for GPUs only

        self.device, self.dtype = "cuda", dtype
        self.tokenizer = _load_tokenizer(path, trust_remote_code)
        try:
            config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
            self.llm = LLM(
                model=str(path),
                tokenizer=str(path),
                trust_remote_code=trust_remote_code,
                seed=seed,
                dtype=dtype,
            )
        except (OSError, ValueError, KeyError, TypeError, ImportError, RuntimeError) as e:
            raise ModelLoadError(f"vLLM could not load {path}: {type(e).__name__}: {e}") from e
        self.max_context = _max_context(config)
        self.batch_size = batch_size or DEFAULT_VLLM_CHUNK
        eos = self.tokenizer.eos_token_id
        self.eos_ids = [eos] if eos is not None else []

    def generate(
        self, prompts: Sequence[list[int]], keys: Sequence[str], settings: SamplingSettings
    ) -> Iterator[tuple[list[int], list[Completion]]]:
        """Submit ``batch_size`` requests per call (vLLM batches continuously inside); one seed per sample."""
        from vllm import SamplingParams  # optional, as in __init__

        if len(prompts) != len(keys):
            raise ValueError(f"{len(prompts)} prompts but {len(keys)} keys")
        for start in range(0, len(prompts), self.batch_size):
            positions = list(range(start, min(start + self.batch_size, len(prompts))))
            params = [
                SamplingParams(
                    n=1,
                    temperature=settings.temperature,
                    top_p=1.0 if settings.greedy else settings.top_p,
                    max_tokens=settings.max_new_tokens,
                    seed=batch_seed(settings.seed, [keys[i]]),
                    stop_token_ids=self.eos_ids or None,
                )
                for i in positions
            ]
            requests = [{"prompt_token_ids": list(prompts[i])} for i in positions]
            outputs = self.llm.generate(requests, sampling_params=params, use_tqdm=False)
            completions = []
            for out in outputs:
                sample = out.outputs[0]
                reason = "length" if sample.finish_reason == "length" else "stop"
                completions.append(Completion(sample.text, len(sample.token_ids), reason))
            yield positions, completions


def sample_id(benchmark: str, problem_id: str, k: int) -> str:
    """The id of sample ``k`` of a problem: ``{benchmark}/{problem_id}/{k}``."""
    return f"{benchmark}/{problem_id}/{k}"


def generate_samples(
    benchmark: str,
    rows: Sequence[dict[str, Any]],
    prompts: Sequence[EncodedPrompt],
    todo: Sequence[tuple[int, int]],
    engine: Engine,
    settings: SamplingSettings,
) -> Iterator[list[dict[str, Any]]]:
    """Sample the ``(problem index, sample index)`` pairs in ``todo``; yield unscored sample rows per batch."""
    keys = [sample_id(benchmark, str(rows[i]["id"]), k) for i, k in todo]
    for positions, completions in engine.generate([prompts[i].ids for i, _ in todo], keys, settings):
        batch = []
        for pos, out in zip(positions, completions, strict=True):
            i, k = todo[pos]
            row, prompt = rows[i], prompts[i]
            batch.append(
                dict(id=keys[pos], benchmark=benchmark, problem_id=str(row["id"]), sample=k)
                | dict(prompt=prompt.text, completion=out.text, reference=row["reference"])
                | dict(completion_tokens=out.n_tokens, finish_reason=out.finish_reason)
                | dict(prompt_truncated=prompt.truncated)
            )
        yield batch


def vllm_usable() -> bool:
    """vLLM is importable and a CUDA GPU is visible (what ``--engine auto`` needs to pick vLLM)."""
    if importlib.util.find_spec("vllm") is None:
        return False
    return on_gpu()


def load_engine(
    model_path: str | Path,
    *,
    engine: str = "auto",
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    batch_size: int | None = None,
    seed: int = 0,
) -> Engine:
    """Check the model directory, then load it with the chosen backend (``auto``: vLLM only on a GPU)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    check_model_dir(model_path)
    if engine == "auto":
        engine = "vllm" if device in ("auto", "cuda") and vllm_usable() else "transformers"
        logger.info("--engine auto: using %s", engine)
    start = time.perf_counter()
    if engine == "vllm":
        loaded: Engine = VLLMEngine(
            model_path, dtype=dtype, trust_remote_code=trust_remote_code, batch_size=batch_size, seed=seed
        )
    else:
        loaded = TransformersEngine(
            model_path, device=device, dtype=dtype, trust_remote_code=trust_remote_code, batch_size=batch_size
        )
    logger.info("model ready in %.1f s", time.perf_counter() - start)
    return loaded
