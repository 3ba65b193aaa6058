"""Scoring and metrics of policy evaluation (:mod:`cooper.eval.run`): pure functions over sample rows.

:func:`score_samples` marks each sample correct or not with the rule verifier and records the answer it
extracted; :func:`benchmark_metrics` turns scored samples into the paper's mean accuracy over all samples,
pass@1 / pass@n (:func:`pass_at_k`, the unbiased estimator) and majority-vote accuracy
(:func:`majority_vote`, answers grouped when the verifier says they are equal).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

Row = dict[str, Any]
MAX_VOTE_CANDIDATES = 16  # distinct answers per problem compared pairwise for majority voting
METRIC = (
    "mean accuracy over all samples; pass@k by the unbiased estimator; majority vote over extracted answers "
    "grouped by verifier equivalence"
)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): ``1 - C(n - c, k) / C(n, k)`` for ``c`` correct of ``n`` samples."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def vote_key(answer: str | None) -> str | None:
    """The string an answer is grouped by before equivalence checks: whitespace removed."""
    if answer is None:
        return None
    key = re.sub(r"\s+", "", answer)
    return key or None


def vote_candidates(answers: Sequence[str | None]) -> list[str]:
    """Distinct vote keys, most frequent first (ties: first seen), at most :data:`MAX_VOTE_CANDIDATES`."""
    keys = [k for k in map(vote_key, answers) if k is not None]
    first = {k: i for i, k in reversed(list(enumerate(keys)))}
    return sorted(first, key=lambda k: (-keys.count(k), first[k]))[:MAX_VOTE_CANDIDATES]


def majority_vote(
    answers: Sequence[str | None], verdicts: Sequence[bool], same: Callable[[str, str], bool] | None = None
) -> bool:
    """Is the majority answer correct? ``answers[i]`` is sample i's extracted answer (None: no answer).

    Answers are grouped by :func:`vote_key`, then groups whose keys ``same(a, b)`` says are equal are
    merged (``same`` is asked about pairs of :func:`vote_candidates` only). The biggest group wins (ties:
    the group whose first sample came first); its verdict is that of its most frequent key's first sample.
    No answer at all counts as wrong.
    """
    if len(answers) != len(verdicts):
        raise ValueError(f"{len(answers)} answers but {len(verdicts)} verdicts")
    keys = [vote_key(a) for a in answers]
    candidates = vote_candidates(answers)
    if not candidates:
        return False
    parent = {k: k for k in dict.fromkeys(k for k in keys if k is not None)}

    def root(k: str) -> str:
        while parent[k] != k:
            k = parent[k]
        return k

    if same is not None:
        for i, a in enumerate(candidates):
            for b in candidates[i + 1 :]:
                if root(a) != root(b) and same(a, b):
                    parent[root(b)] = root(a)
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        if k is not None:
            groups.setdefault(root(k), []).append(i)
    winner = max(groups.values(), key=lambda members: (len(members), -members[0]))
    member_keys = [keys[i] for i in winner]
    top = max(dict.fromkeys(member_keys), key=member_keys.count)  # most frequent; ties: first seen
    return bool(verdicts[winner[member_keys.index(top)]])


def answer_equivalence(
    pairs: Sequence[tuple[str, str]], *, timeout_s: float = 5.0, verifier: str = "math"
) -> dict[tuple[str, str], bool]:
    """Verifier equivalence of answer pairs, in one batch: ``\\boxed{a}`` judged against reference ``b``.

    ``verifier``: a built-in one (``math``, ``choice``, ``string``) compares them; a user's verifier judges
    responses, not extracted answers, so its answers are grouped by ``math``."""
    from cooper.verify.pool import is_correct_batch
    from cooper.verify.registry import BUILTIN_VERIFIERS

    pairs = list(dict.fromkeys(pairs))
    if not pairs:
        return {}
    verdicts = is_correct_batch(
        [f"\\boxed{{{a}}}" for a, _ in pairs],
        [b for _, b in pairs],
        timeout_s=timeout_s,
        verifier=verifier if verifier in BUILTIN_VERIFIERS else "math",
    )
    return dict(zip(pairs, verdicts, strict=True))


def score_samples(
    samples: list[Row],
    *,
    timeout_s: float = 5.0,
    verifier: str = "math",
    fields: Sequence[Row] | None = None,
) -> list[Row]:
    """Fill ``extracted_answer`` and ``correct`` of sample rows from their ``completion`` and ``reference``.

    The verdict is :func:`cooper.verify.explain_batch` with ``verifier`` and each sample's row ``fields``
    (its problem's ``answer_type``, ``is_multiple_answer``, ...; a dict per sample); the extracted answer is
    the answer set the verifier compared, normalised and joined with ", " (``1, 2`` for ``\\boxed{1} and
    \\boxed{2}``), so majority voting groups whole answer sets. A user's verifier extracts nothing, so its
    samples record the math verifier's reading. Works on any completions, generated or given.
    """
    from cooper.verify.pool import explain_batch
    from cooper.verify.registry import BUILTIN_VERIFIERS, row_fields
    from cooper.verify.rule import extract_answers, is_plain_number, normalize_answer

    if fields is not None and len(fields) != len(samples):
        raise ValueError(f"{len(samples)} samples but {len(fields)} rows of fields")
    verdicts = explain_batch(
        [s["completion"] for s in samples],
        [s["reference"] for s in samples],
        timeout_s=timeout_s,
        verifier=verifier,
        **row_fields(verifier, fields or []),
    )
    for sample, verdict in zip(samples, verdicts, strict=True):
        extracted = verdict.get("extracted_answer")
        if verifier not in BUILTIN_VERIFIERS:
            raws, _ = extract_answers(sample["completion"], last_number=is_plain_number(sample["reference"]))
            extracted = ", ".join(normalize_answer(r) for r in raws) or None
        sample["extracted_answer"] = extracted
        sample["correct"] = bool(verdict["correct"])
    return samples


def benchmark_metrics(
    samples: Sequence[Row], *, equivalence: bool = True, timeout_s: float = 5.0, verifier: str = "math"
) -> dict[str, Any]:
    """Accuracy, pass@1, pass@n and majority-vote accuracy (all in [0, 1]) over scored sample rows.

    ``mean_accuracy`` is over all samples (the paper's metric); pass@k and majority vote are per problem,
    then averaged; ``n`` is the smallest number of samples any problem has. Majority voting groups answers
    that ``verifier`` says are equal (see :func:`answer_equivalence`).
    """
    by_problem: dict[str, list[Row]] = {}
    for s in samples:
        by_problem.setdefault(str(s["problem_id"]), []).append(s)
    if not by_problem:
        raise ValueError("no samples to score")
    for group in by_problem.values():
        group.sort(key=lambda s: s["sample"])
    n = min(len(g) for g in by_problem.values())
    same = None
    if equivalence:
        pairs = []
        for group in by_problem.values():
            cands = vote_candidates([s["extracted_answer"] for s in group])
            pairs += [(a, b) for i, a in enumerate(cands) for b in cands[i + 1 :]]
        table = answer_equivalence(pairs, timeout_s=timeout_s, verifier=verifier)

        def same(a: str, b: str) -> bool:
            return table.get((a, b), False)

    n_correct = [sum(bool(s["correct"]) for s in g) for g in by_problem.values()]
    votes = [
        majority_vote([s["extracted_answer"] for s in g], [s["correct"] for s in g], same)
        for g in by_problem.values()
    ]
    sizes = [len(g) for g in by_problem.values()]
    problems = len(by_problem)
    return {
        "n_problems": problems,
        "n_samples": len(samples),
        "n": n,
        "mean_accuracy": sum(n_correct) / len(samples),
        "pass@1": sum(pass_at_k(m, c, 1) for m, c in zip(sizes, n_correct, strict=True)) / problems,
        "pass@n": sum(pass_at_k(m, c, n) for m, c in zip(sizes, n_correct, strict=True)) / problems,
        "majority_vote_accuracy": sum(votes) / problems,
        "no_answer_rate": sum(s["extracted_answer"] is None for s in samples) / len(samples),
        "completions_at_max_tokens": sum(s.get("finish_reason") == "length" for s in samples),
        "tokens_generated": sum(int(s.get("completion_tokens", 0)) for s in samples),
    }
