"""The one VerifyRM input template, used by pre-training, scoring and the online update alike.

The paper's format::

    <question>{q}</question>
    <reference_answer>{ref}</reference_answer>
    <completion>{c}</completion>

Truncation is by tokens, not characters. The pieces are tokenized separately and joined, so the same
(question, reference, completion) always gives the same ids, whatever the budget: question and reference
stay whole while they fit (else they are clipped in the middle with a visible marker, the reference last);
an over-long completion loses its *middle*, keeping its head and, with the larger share, its tail, where
the final answer lives. Text that spells a special token (``<|endoftext|>``) is tokenized as plain text,
so a completion cannot inject padding or end-of-sequence tokens.
"""

from __future__ import annotations

from typing import Any

TEMPLATE_VERSION = 1
QUESTION_OPEN, QUESTION_CLOSE = "<question>", "</question>\n"
REFERENCE_OPEN, REFERENCE_CLOSE = "<reference_answer>", "</reference_answer>\n"
COMPLETION_OPEN, COMPLETION_CLOSE = "<completion>", "</completion>"
TRUNCATION_MARKER = "\n[...truncated...]\n"
# The completion keeps at least this many tokens before the question and reference are clipped.
MIN_COMPLETION_TOKENS = 64
# Share of a clipped completion's budget kept from its head (the rest comes from its tail).
HEAD_SHARE = 0.25


def format_rm_text(question: str, reference: str, completion: str) -> str:
    """The template as text (what :func:`encode_rm_input` encodes when nothing is truncated)."""
    return (
        f"{QUESTION_OPEN}{question}{QUESTION_CLOSE}"
        f"{REFERENCE_OPEN}{reference}{REFERENCE_CLOSE}"
        f"{COMPLETION_OPEN}{completion}{COMPLETION_CLOSE}"
    )


def _ids(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]


def clip_middle(ids: list[int], budget: int, marker: list[int], head_share: float = 0.5) -> list[int]:
    """``ids`` cut to ``budget`` tokens by removing the middle and putting ``marker`` there."""
    if len(ids) <= budget:
        return ids
    if budget <= len(marker):
        return ids[len(ids) - budget :] if budget > 0 else []
    keep = budget - len(marker)
    head = int(keep * head_share)
    tail = keep - head
    return ids[:head] + marker + (ids[-tail:] if tail else [])


class RMEncoder:
    """Encodes (question, reference, completion) triples for one tokenizer and ``max_length``.

    The tag and marker ids are computed once per encoder.
    """

    def __init__(self, tokenizer: Any, max_length: int = 1024) -> None:
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.tags = [
            _ids(tokenizer, t)
            for t in (
                QUESTION_OPEN,
                QUESTION_CLOSE,
                REFERENCE_OPEN,
                REFERENCE_CLOSE,
                COMPLETION_OPEN,
                COMPLETION_CLOSE,
            )
        ]
        self.marker = _ids(tokenizer, TRUNCATION_MARKER)
        fixed = sum(len(t) for t in self.tags)
        if self.max_length < fixed + 3 * len(self.marker) + 8:
            raise ValueError(
                f"max_length={self.max_length} is too small for the RM template ({fixed} tag tokens and "
                f"{len(self.marker)}-token truncation markers); use at least {fixed + 3 * len(self.marker) + 8}"
            )
        self.fixed = fixed

    def __call__(self, question: str, reference: str, completion: str) -> list[int]:
        q, ref, comp = (
            _ids(self.tokenizer, question),
            _ids(self.tokenizer, reference),
            _ids(self.tokenizer, completion),
        )
        budget = self.max_length - self.fixed
        # Question and reference stay whole while the completion keeps its minimum share; on a small budget
        # that share is capped so a clipped question and reference each keep their marker and some text.
        reserve = min(len(comp), MIN_COMPLETION_TOKENS, budget - 2 * (len(self.marker) + 2))
        room_for_qr = budget - reserve
        if len(q) + len(ref) > room_for_qr:
            ref = clip_middle(ref, max(room_for_qr // 2, room_for_qr - len(q)), self.marker)
            q = clip_middle(q, room_for_qr - len(ref), self.marker)
        comp = clip_middle(comp, budget - len(q) - len(ref), self.marker, head_share=HEAD_SHARE)
        t = self.tags
        ids = t[0] + q + t[1] + t[2] + ref + t[3] + t[4] + comp + t[5]
        assert len(ids) <= self.max_length, (len(ids), self.max_length)
        return ids

    def batch(self, questions: list[str], references: list[str], completions: list[str]) -> list[list[int]]:
        if not len(questions) == len(references) == len(completions):
            raise ValueError(
                f"lengths differ: {len(questions)} questions, {len(references)} references, "
                f"{len(completions)} completions"
            )
        return [self(q, r, c) for q, r, c in zip(questions, references, completions, strict=True)]


def encode_rm_input(
    tokenizer: Any, question: str, reference: str, completion: str, max_length: int = 1024
) -> list[int]:
    """Token ids of one RM input, truncated to ``max_length`` as described in the module docstring."""
    return RMEncoder(tokenizer, max_length)(question, reference, completion)
