"""Binary-classification metrics as pure functions (no scikit-learn needed)."""

from __future__ import annotations

from collections.abc import Sequence


def roc_auc(scores: Sequence[float], labels: Sequence[int | bool]) -> float | None:
    """Area under the ROC curve by the rank-sum statistic (ties count half); None if one class is absent."""
    pairs = sorted(zip(scores, labels, strict=True), key=lambda p: p[0])
    n_pos = sum(1 for _, y in pairs if y)
    n_neg = len(pairs) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    rank_sum = 0.0
    i = 0
    while i < len(pairs):  # average ranks over ties
        j = i
        while j + 1 < len(pairs) and pairs[j + 1][0] == pairs[i][0]:
            j += 1
        avg_rank = (i + j) / 2 + 1
        rank_sum += avg_rank * sum(1 for k in range(i, j + 1) if pairs[k][1])
        i = j + 1
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def binary_metrics(predictions: Sequence[bool], labels: Sequence[int | bool]) -> dict[str, float | int]:
    """Accuracy, precision, recall, F1 and counts of hard predictions against 0/1 labels.

    Precision is reported as 0.0 when nothing is predicted positive (and recall 0.0 with no positives),
    with the counts beside it so a reader can tell.
    """
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions but {len(labels)} labels")
    tp = sum(1 for p, y in zip(predictions, labels, strict=True) if p and y)
    fp = sum(1 for p, y in zip(predictions, labels, strict=True) if p and not y)
    fn = sum(1 for p, y in zip(predictions, labels, strict=True) if not p and y)
    tn = len(labels) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "n": len(labels),
        "accuracy": (tp + tn) / len(labels) if labels else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def score_metrics(
    probabilities: Sequence[float], labels: Sequence[int | bool], threshold: float = 0.5
) -> dict[str, float | int | None]:
    """:func:`binary_metrics` at ``threshold`` plus ROC-AUC and the majority-class baseline."""
    out: dict[str, float | int | None] = dict(binary_metrics([p >= threshold for p in probabilities], labels))
    out["roc_auc"] = roc_auc(probabilities, labels)
    pos = sum(1 for y in labels if y)
    out["majority_baseline"] = max(pos, len(labels) - pos) / len(labels) if labels else 0.0
    return out
