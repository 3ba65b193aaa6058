"""The Cooper step's pieces as pure functions: pairwise loss, positive selection, negatives, the RM update."""

from __future__ import annotations

import math
import random
import re

import pytest
import torch

from cooper.rl.negatives import NegativeRequest, make_negatives, perturb_text, policy_source
from cooper.rl.rm_update import (
    Pair,
    RMUpdateConfig,
    RMUpdater,
    group_indices,
    pairwise_rm_loss,
    select_positives,
)
from cooper.verify.pool import is_correct
from cooper.verify.rule import extract_answer


def test_pairwise_loss_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    s_pos, s_neg = torch.randn(7, generator=g), torch.randn(7, generator=g)
    valid = torch.tensor([1, 0, 1, 1, 0, 1, 1], dtype=torch.bool)
    expected = [
        -math.log(1 / (1 + math.exp(-(a - b)))) for a, b, v in zip(s_pos, s_neg, valid, strict=True) if v
    ]
    got = pairwise_rm_loss(s_pos, s_neg, valid)
    assert got.item() == pytest.approx(sum(expected) / len(expected), rel=1e-6)
    assert pairwise_rm_loss(s_pos, s_neg).item() == pytest.approx(
        sum(-math.log(1 / (1 + math.exp(-(a - b)))) for a, b in zip(s_pos, s_neg, strict=True)) / 7, rel=1e-6
    )


def test_pairwise_loss_hand_values_and_edge_cases():
    # s+ - s- = 0 -> log 2; large margin -> ~0; wrong order -> large
    assert pairwise_rm_loss(torch.tensor([0.0]), torch.tensor([0.0])).item() == pytest.approx(math.log(2))
    assert pairwise_rm_loss(torch.tensor([20.0]), torch.tensor([0.0])).item() < 1e-8
    assert pairwise_rm_loss(torch.tensor([0.0]), torch.tensor([5.0])).item() == pytest.approx(
        5.0067153, rel=1e-6
    )
    none_valid = pairwise_rm_loss(torch.ones(3), torch.zeros(3), torch.zeros(3, dtype=torch.bool))
    assert none_valid.item() == 0.0


def test_pointwise_anchor_loss_hand_values():
    from cooper.rl.rm_update import pointwise_anchor_loss

    # scores 0 and 0: each BCE term is log 2
    assert pointwise_anchor_loss(torch.tensor([0.0]), torch.tensor([0.0])).item() == pytest.approx(
        math.log(2)
    )
    # a calibrated, confident RM pays almost nothing; shifting both scores up (pairwise-invariant) costs
    good = pointwise_anchor_loss(torch.tensor([8.0]), torch.tensor([-8.0])).item()
    shifted = pointwise_anchor_loss(torch.tensor([16.0]), torch.tensor([0.0])).item()
    assert good < 1e-3 and shifted > 0.3
    assert pairwise_rm_loss(torch.tensor([8.0]), torch.tensor([-8.0])).item() == pytest.approx(
        pairwise_rm_loss(torch.tensor([16.0]), torch.tensor([0.0])).item()
    )


def test_pointwise_weight_keeps_scores_anchored(tiny_rm):
    pairs = _pairs()
    means = {}
    for w in (0.0, 1.0):
        rm = tiny_rm()
        upd = RMUpdater(rm, RMUpdateConfig(learning_rate=3e-3, pointwise_weight=w))
        for _ in range(10):
            upd.update(pairs)
        q, r = [p.question for p in pairs], [p.reference for p in pairs]
        pos = rm.score(q, r, [p.positive for p in pairs])
        neg = rm.score(q, r, [p.negative for p in pairs])
        means[w] = (sum(pos) / len(pos), sum(neg) / len(neg))
    assert means[1.0][0] > 0.5 > means[1.0][1]  # positives above, negatives below P = 0.5


def test_select_positives():
    groups = ["a", "a", "a", "b", "b", "c", "c"]
    correct = [False, True, True, False, False, True, False]
    assert group_indices(groups) == {"a": [0, 1, 2], "b": [3, 4], "c": [5, 6]}
    assert select_positives(groups, correct) == {"a": 1, "c": 5}  # b has no verified rollout: no pair
    picks = {select_positives(groups, correct, "random", random.Random(s))["a"] for s in range(20)}
    assert picks == {1, 2}
    with pytest.raises(ValueError, match="first' or 'random"):
        select_positives(groups, correct, "best")


@pytest.mark.parametrize(
    "text",
    [
        "16 - 3 - 4 = 9 eggs. 9 * 2 = 18 dollars. The answer is \\boxed{18}.",
        "Total: 2.50 + 1.25 = 3.75\n#### 3.75",
        "So x = \\frac{3}{4}. Final answer: \\boxed{\\frac{3}{4}}",
        "She has 1,200 stickers.\nA: 1,200",
        "The temperature is -3 degrees, so the answer is -3",
    ],
)
def test_perturb_makes_a_wrong_answer_in_the_same_format(text):
    rng = random.Random(0)
    ref = extract_answer(text)
    for _ in range(10):
        neg = perturb_text(text, rng)
        assert neg is not None and neg != text
        new = extract_answer(neg)
        assert new is not None
        assert not is_correct(neg, ref.replace(",", "").replace("$", ""))
        if "." in ref and "frac" not in ref:
            assert len(new.split(".")[1]) == len(ref.split(".")[1])  # same decimal places
        if "frac" in ref:
            assert "\\frac" in new
        assert abs(len(neg) - len(text)) <= 6  # a small edit, not a rewrite


def test_perturb_changes_the_equation_that_produced_the_answer():
    neg = perturb_text("9 * 2 = 18. The answer is 18.", random.Random(1))
    new = extract_answer(neg)
    assert new != "18" and not re.search(r"= 18\b", neg) and f"= {new}." in neg


def test_perturb_without_an_answer_gives_none():
    assert perturb_text("I have no idea", random.Random(0)) is None


def test_policy_source_picks_the_highest_scored_wrong_rollout():
    req = NegativeRequest(
        "q",
        "5",
        "\\boxed{5}",
        [("\\boxed{3}", False, 0.2), ("\\boxed{5}", True, 0.9), ("\\boxed{4}", False, 0.7)],
    )
    assert policy_source([req], random.Random(0)) == ["\\boxed{4}"]
    assert policy_source(
        [NegativeRequest("q", "5", "\\boxed{5}", [("\\boxed{5}", True, 0.9)])], random.Random(0)
    ) == [None]


def test_make_negatives_rejects_correct_ones_and_falls_back_in_order():
    reqs = [
        NegativeRequest("q1", "5", "so \\boxed{5}", [("\\boxed{7}", False, 0.1)]),
        NegativeRequest("q2", "8", "so \\boxed{8}", []),
    ]
    calls = []

    def bad_source(requests, rng):  # returns a "negative" that is actually correct, then nothing
        calls.append(len(requests))
        return ["the answer is 5", None][: len(requests)]

    def good_source(requests, rng):
        return ["\\boxed{9}" for _ in requests]

    made, counts = make_negatives(
        reqs,
        ["bad", "policy", "good"],
        {"bad": bad_source, "good": good_source, "policy": policy_source},
        random.Random(0),
    )
    assert made[0] == ("\\boxed{7}", "policy")
    assert made[1] == ("\\boxed{9}", "good")
    assert counts["negatives/bad_rejected"] == 1 and counts["negatives/bad_empty"] == 1
    assert counts["negatives/policy"] == 1 and counts["negatives/policy_empty"] == 1
    assert counts["negatives/good"] == 1 and counts["negatives/none"] == 0
    with pytest.raises(ValueError, match="unknown negative source"):
        make_negatives(reqs, ["nope"], {}, random.Random(0))


def test_negative_equal_to_the_positives_answer_is_rejected():
    # the positive says 6 (and is "verified" against reference 6.0); a candidate saying 6 is not a negative
    reqs = [NegativeRequest("q", "6.0", "\\boxed{6}", [])]
    made, counts = make_negatives(reqs, ["s"], {"s": lambda r, g: ["\\boxed{6}"]}, random.Random(0))
    assert made == [None] and counts["negatives/s_rejected"] == 1 and counts["negatives/none"] == 1


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    from cooper.rm.model import VerifyRM
    from cooper.utils.tiny import tiny_models

    paths = tiny_models(tmp_path_factory.mktemp("tiny"))
    return lambda: VerifyRM.from_pretrained(paths.rm_dir, max_length=128, device="cpu")


def _pairs(n=6):
    return [
        Pair(f"q{i}", str(i), f"The answer is {i}", f"The answer is {i + 1}", "perturb") for i in range(n)
    ]


def test_rm_update_moves_scores_toward_the_positives(tiny_rm):
    rm = tiny_rm()
    upd = RMUpdater(rm, RMUpdateConfig(learning_rate=3e-3, mini_batch_size=8, epochs=1))
    pairs = _pairs()

    def margin():
        q = [p.question for p in pairs]
        r = [p.reference for p in pairs]
        pos = rm.score_logits(rm.encode(q, r, [p.positive for p in pairs]))
        neg = rm.score_logits(rm.encode(q, r, [p.negative for p in pairs]))
        return sum(a - b for a, b in zip(pos, neg, strict=True)) / len(pairs)

    before = margin()
    metrics = [upd.update(pairs) for _ in range(15)]
    assert margin() > before + 0.5
    assert metrics[0]["rm/valid_pairs"] == 6 and math.isfinite(metrics[0]["rm/loss"])
    assert metrics[-1]["rm/loss"] < metrics[0]["rm/loss"]
    assert 0.0 <= metrics[0]["rm/pair_accuracy"] <= 1.0
    assert upd.updates == 15


def test_rm_update_with_no_pairs_changes_nothing(tiny_rm):
    rm = tiny_rm()
    upd = RMUpdater(rm)
    before = {k: v.clone() for k, v in rm.model.state_dict().items()}
    assert upd.update([]) == {"rm/valid_pairs": 0.0, "rm/skipped_update": 0.0}
    assert all(torch.equal(before[k], v) for k, v in rm.model.state_dict().items())


def test_non_finite_loss_skips_the_update_and_counts_it(tiny_rm, monkeypatch):
    rm = tiny_rm()
    upd = RMUpdater(rm, RMUpdateConfig(learning_rate=1e-2))
    before = {k: v.clone() for k, v in rm.model.state_dict().items()}
    real_logits = rm.logits
    monkeypatch.setattr(rm, "logits", lambda ids, **kw: real_logits(ids, **kw) * float("nan"))
    m = upd.update(_pairs())
    assert m["rm/skipped_update"] == 1.0 and upd.skipped_updates == 1 and upd.updates == 0
    assert all(torch.equal(before[k], v) for k, v in rm.model.state_dict().items())
    monkeypatch.setattr(rm, "logits", real_logits)
    assert upd.update(_pairs())["rm/skipped_update"] == 0.0  # and training goes on


def test_updater_state_round_trip(tiny_rm):
    rm = tiny_rm()
    upd = RMUpdater(rm, RMUpdateConfig(learning_rate=1e-3, warmup_steps=3))
    upd.update(_pairs())
    state = upd.state_dict()
    other = RMUpdater(tiny_rm(), RMUpdateConfig(learning_rate=1e-3, warmup_steps=3))
    other.load_state_dict(state)
    assert other.updates == upd.updates and other.scheduler.get_last_lr() == upd.scheduler.get_last_lr()


def test_rm_update_config_validation():
    with pytest.raises(ValueError):
        RMUpdateConfig(learning_rate=0)
    with pytest.raises(ValueError):
        RMUpdateConfig(warmup_steps=-1)
