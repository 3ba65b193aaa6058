"""VerifyRM: the reference-based reward model, (question, reference, completion) -> P(correct).

A plain ``AutoModelForSequenceClassification`` with one logit, saved in safetensors with its tokenizer,
so transformers alone can load it; ``cooper_rm.json`` beside it records the template version and the
``max_length`` the model was trained with. Inputs always go through :class:`cooper.rm.template.RMEncoder`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from cooper.rm.parallel import full_state_dict
from cooper.rm.template import TEMPLATE_VERSION, RMEncoder
from cooper.utils.batching import input_order_batches, length_sorted_batches
from cooper.utils.device import default_device, inference_dtype
from cooper.utils.dist import max_across_ranks, rank_and_world
from cooper.utils.models import check_model_dir, load_errors

log = logging.getLogger(__name__)

RM_META_FILE = "cooper_rm.json"
DEFAULT_MAX_LENGTH = 1024
# Lone UTF-16 surrogates (from JSON "\\ud800" escapes or bytes decoded with errors="surrogateescape") are
# valid Python str but not Unicode: the Rust tokenizer refuses the whole batch with a TypeError.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _tokenizable(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD, so one bad completion cannot fail a batch."""
    return _LONE_SURROGATE.sub("\ufffd", text) if isinstance(text, str) else str(text)


def check_rm_dir(path: str | os.PathLike[str], *, new_head: bool = False) -> Path:
    """``path`` as a reward-model directory (see :func:`cooper.utils.models.check_model_dir`) whose config.json
    declares a one-logit sequence classifier; with ``new_head`` a base causal LM is accepted too (it gets a
    new head). Reads only config.json, so every command can check its RM before it loads or writes anything."""
    p = check_model_dir(path, "reward model")
    try:
        config = json.loads((p / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"reward model {str(p)!r}: unreadable config.json ({e})") from None
    architectures = [str(a) for a in config.get("architectures") or []] if isinstance(config, dict) else []
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        num_labels = config.get("num_labels", len(config.get("id2label") or {}) or 2)
        if num_labels != 1:
            raise ValueError(
                f"reward model {str(p)!r} is a classifier with num_labels={num_labels}; VerifyRM needs a one-logit "
                "classifier (cooper train-rm makes one)"
            )
    elif not new_head:
        raise ValueError(
            f"reward model {str(p)!r} is not a reward model: it holds {', '.join(architectures) or 'a model'} "
            "without a trained one-logit score head, so it would score with random weights. Make a VerifyRM from "
            f"it first: cooper train-rm --model {p} --data LABELLED.jsonl --out RM_DIR"
        )
    return p


class VerifyRM:
    """The reward model and its encoder. Build with :meth:`from_pretrained` or from a model + tokenizer."""

    def __init__(self, model: Any, tokenizer: Any, *, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        if getattr(model.config, "num_labels", None) != 1:
            raise ValueError(
                f"VerifyRM needs a one-logit classifier, got num_labels={model.config.num_labels}"
            )
        if tokenizer.pad_token_id is None:
            raise ValueError("the RM tokenizer needs a pad token (it marks where each sequence ends)")
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.encoder = RMEncoder(tokenizer, self.max_length)
        # Set to torch.bfloat16 to compute in bf16 over fp32 weights (what an RM trained during RL wants on
        # a GPU: bf16 weights would make AdamW round small updates away).
        self.autocast_dtype: torch.dtype | None = None
        # True once the model is sharded across processes (cooper.rm.parallel): every forward is then a
        # collective, so every rank must score in the same number of batches, and saving gathers.
        self.collective = False

    # -- loading and saving -------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        max_length: int | None = None,
        trust_remote_code: bool = False,
        new_head: bool = False,
        attn_implementation: str | None = None,
    ) -> VerifyRM:
        """Load from a local directory; bf16 on GPU and fp32 on CPU unless ``dtype`` says otherwise.
        ``attn_implementation``: transformers' attention kernel (None: its default; see
        :func:`cooper.utils.device.attention_implementation`).

        The directory must hold a one-logit sequence classifier whose score head is in the weights (a
        trained VerifyRM). With ``new_head`` (what ``cooper train-rm`` uses to start from a base LM), a
        causal LM is accepted too and gets a freshly initialised one-logit head."""
        path = check_rm_dir(path, new_head=new_head)
        device = device or default_device()
        if dtype is None:
            dtype = getattr(torch, inference_dtype(device))
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
            model, info = AutoModelForSequenceClassification.from_pretrained(
                path,
                num_labels=1,
                dtype=dtype,
                trust_remote_code=trust_remote_code,
                use_safetensors=True,
                output_loading_info=True,
                **({"attn_implementation": attn_implementation} if attn_implementation else {}),
            )
        except load_errors() as e:
            raise ValueError(f"could not load the reward model from {path}: {type(e).__name__}: {e}") from e
        missing = sorted(info.get("missing_keys") or [])
        if missing and not new_head:
            shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
            raise ValueError(
                f"reward model {str(path)!r}: its weights lack {shown}, which would start from random values "
                "(an incomplete save, or a base model's weights under a classifier config). Train it with "
                f"cooper train-rm --model {path} --data LABELLED.jsonl --out RM_DIR"
            )
        unexpected = sorted(info.get("unexpected_keys") or [])
        if unexpected and not new_head:  # (a base LM's lm_head is expected to go unused under new_head)
            shown = ", ".join(unexpected[:4]) + (
                f" and {len(unexpected) - 4} more" if len(unexpected) > 4 else ""
            )
            raise ValueError(
                f"reward model {str(path)!r}: its weights hold {shown}, which this model has no place for (weights "
                "of another architecture, or a file edited by hand); nothing was loaded"
            )
        meta_path = path / RM_META_FILE
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        if meta.get("template_version", TEMPLATE_VERSION) != TEMPLATE_VERSION:
            log.warning(
                "%s was trained with RM template v%s; this cooper uses v%s",
                path,
                meta.get("template_version"),
                TEMPLATE_VERSION,
            )
        max_length = max_length or meta.get("max_length") or _model_context(model) or DEFAULT_MAX_LENGTH
        return cls(model.to(device).eval(), tokenizer, max_length=max_length)

    def save_pretrained(self, path: str | os.PathLike[str]) -> Path:
        """A Hugging Face directory (safetensors, tokenizer, ``cooper_rm.json``) that :meth:`from_pretrained`
        loads. Rank 0 writes; a sharded model is gathered first, so every rank must call this then."""
        path = Path(path)
        state = full_state_dict(self.model) if self.collective else None
        if rank_and_world()[0] != 0:
            return path
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path, state_dict=state, safe_serialization=True)
        self.tokenizer.save_pretrained(path)
        meta = {"template_version": TEMPLATE_VERSION, "max_length": self.max_length}
        (path / RM_META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return path

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- encoding -----------------------------------------------------------------------------------
    def encode(self, questions: list[str], references: list[str], completions: list[str]) -> list[list[int]]:
        return self.encoder.batch(
            [_tokenizable(q) for q in questions],
            [_tokenizable(r) for r in references],
            [_tokenizable(c) for c in completions],
        )

    def collate(self, ids: list[list[int]]) -> dict[str, torch.Tensor]:
        """Right-padded ``input_ids`` and ``attention_mask`` on the model's device."""
        width = max(len(x) for x in ids)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, x in enumerate(ids):
            input_ids[row, : len(x)] = torch.tensor(x, dtype=torch.long)
            mask[row, : len(x)] = 1
        return {"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device)}

    def logits(self, ids: list[list[int]], *, module: Any = None) -> torch.Tensor:
        """Raw scores s(q, ref, c), shape (B,), with gradients (for training). ``module``: what the forward
        goes through if not the model itself (a DDP wrapper around it)."""
        with torch.autocast(
            self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None
        ):
            out = (module or self.model)(**self.collate(ids))
        return out.logits.squeeze(-1).float()  # (B, 1) -> (B,)

    # -- scoring ------------------------------------------------------------------------------------
    def score_logits(self, ids: list[list[int]], *, batch_size: int = 16, bucket: bool = True) -> list[float]:
        """Scores for pre-encoded inputs, in input order; no gradients; length-bucketed batches.

        A sharded model's forward is collective: every rank then runs as many batches as the rank with the
        most, a rank with fewer running a one-token input whose score is dropped."""
        out = [0.0] * len(ids)
        batches = (
            length_sorted_batches([len(x) for x in ids], batch_size)
            if bucket
            else input_order_batches(len(ids), batch_size)
        )
        extra = max_across_ranks(len(batches), self.device) - len(batches) if self.collective else 0
        if not batches and not extra:
            return []
        was_training = self.model.training
        self.model.eval()
        try:
            # FSDP2 keeps its gathered weights between calls: inference tensors would break its backward
            with torch.no_grad() if self.collective else torch.inference_mode():
                for batch in batches:
                    scores = self.logits([ids[i] for i in batch]).tolist()
                    for i, s in zip(batch, scores, strict=True):
                        out[i] = float(s)
                for _ in range(extra):
                    self.logits([[self.tokenizer.pad_token_id]])
        finally:
            self.model.train(was_training)
            if self.collective:  # FSDP2 keeps the root's weights gathered after a forward: free them
                self.model.reshard()
        return out

    def score(
        self,
        questions: list[str],
        references: list[str],
        completions: list[str],
        *,
        batch_size: int = 16,
        bucket: bool = True,
    ) -> list[float]:
        """P(correct) for each (question, reference, completion), in input order.

        A non-finite score stays visible: NaN gives NaN (never a silent 0), +inf gives 1 and -inf gives 0;
        :class:`cooper.rl.reward.RewardFunction` counts and replaces NaN before it can reach the policy.
        """
        logits = self.score_logits(
            self.encode(questions, references, completions), batch_size=batch_size, bucket=bucket
        )
        return [_sigmoid(x) for x in logits]


def _sigmoid(x: float) -> float:
    if math.isnan(x):
        return math.nan
    return 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0


def _model_context(model: Any) -> int | None:
    n = getattr(model.config, "max_position_embeddings", None)
    return int(n) if n else None
