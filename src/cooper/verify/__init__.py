"""The rule verifier: ``is_correct(response, reference)`` and ``is_correct_batch(responses, references)``.

:mod:`cooper.verify.rule` extracts the final answer and compares it with the reference (math-verify under a
hardened wrapper); :mod:`cooper.verify.pool` runs that in worker processes with a deadline per item.
"""

from cooper.verify.pool import explain, explain_batch, is_correct, is_correct_batch, is_correct_batch_async
from cooper.verify.registry import BUILTIN_VERIFIERS, VerifierError, check_verifier
from cooper.verify.rule import extract_answer, extract_answers, normalize_answer

__all__ = [
    "BUILTIN_VERIFIERS",
    "VerifierError",
    "check_verifier",
    "explain",
    "explain_batch",
    "extract_answer",
    "extract_answers",
    "is_correct",
    "is_correct_batch",
    "is_correct_batch_async",
    "normalize_answer",
]
