"""Tests for cooper.eval.sampling: the nucleus is transformers' own, and draws follow the distribution."""

from __future__ import annotations

import pytest
import torch
from transformers import TemperatureLogitsWarper, TopPLogitsWarper

from cooper.eval.sampling import NucleusSampler, TemperatureTopP, draw


def _transformers(scores: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    out = TemperatureLogitsWarper(temperature)(None, scores.clone())
    return TopPLogitsWarper(top_p)(None, out) if top_p < 1 else out


def _assert_same(got: torch.Tensor, want: torch.Tensor) -> None:
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    assert torch.allclose(got[~torch.isinf(got)], want[~torch.isinf(want)])


@pytest.mark.parametrize("scale", [0.01, 0.3, 3.0, 30.0])  # from flat rows (random weights) to peaked ones
@pytest.mark.parametrize("vocab", [7, 64, 65, 512])  # below, at and above the probe of 64
@pytest.mark.parametrize(("temperature", "top_p"), [(0.7, 0.95), (1.0, 0.5), (1.5, 0.99), (0.3, 1.0)])
def test_same_nucleus_as_transformers(scale: float, vocab: int, temperature: float, top_p: float) -> None:
    scores = torch.randn(16, vocab, generator=torch.Generator().manual_seed(vocab)) * scale
    _assert_same(
        TemperatureTopP(temperature, top_p)(None, scores.clone()), _transformers(scores, temperature, top_p)
    )


def _mixed_rows() -> tuple[torch.Tensor, int]:
    """Rows of 40 logits: peaked, flat, in between (neither probe of 4 settles them) and half masked."""
    g = torch.Generator().manual_seed(0)
    peaked = torch.randn(3, 40, generator=g)
    peaked[:, 5] = 12.0
    flat = torch.randn(3, 40, generator=g) * 0.01
    ramp = torch.linspace(0, 3, 40)  # top 4 hold 0.36 of the mass at T=0.7, the bottom 4 hold 0.007
    middling = torch.stack([ramp[torch.randperm(40, generator=g)] for _ in range(3)])
    masked = torch.randn(2, 40, generator=g)
    masked[:, ::2] = float("-inf")  # as another processor (e.g. suppressed tokens) would leave them
    return torch.cat([peaked, flat, middling, masked]), 3 + 2


def test_every_path_gives_the_same_nucleus() -> None:
    scores, unsettled = _mixed_rows()
    proc = TemperatureTopP(0.7, 0.95, probe=4)
    got = proc(None, scores.clone())
    _assert_same(got, _transformers(scores, 0.7, 0.95))
    assert proc.sorted_rows == unsettled  # the middling and the half-masked rows needed the full sort
    assert torch.isinf(got[:3]).sum(dim=-1).eq(39).all()  # peaked rows keep their one token
    cut = torch.isinf(got[3:6]).sum(dim=-1)  # flat rows: each token ~1/40, so one or two fit in 0.05
    assert ((cut >= 1) & (cut <= 2)).all()


def test_probe_order_follows_the_rows() -> None:
    """A processor meets flat rows, then peaked ones (the probe order switches), then flat again."""
    g = torch.Generator().manual_seed(1)
    proc = TemperatureTopP(0.7, 0.95)
    for scale in (0.05, 20.0, 0.05, 20.0):
        scores = torch.randn(8, 512, generator=g) * scale
        _assert_same(proc(None, scores.clone()), _transformers(scores, 0.7, 0.95))
    assert proc.sorted_rows == 0


def test_bad_settings() -> None:
    for kwargs in (
        dict(temperature=0.0, top_p=0.9),
        dict(temperature=1.0, top_p=0.0),
        dict(temperature=1, top_p=1.5),
    ):
        with pytest.raises(ValueError):
            TemperatureTopP(**kwargs)
    with pytest.raises(ValueError):
        TemperatureTopP(1.0, 0.9, probe=0)


def test_draw_follows_the_probabilities() -> None:
    weights = torch.tensor([[5.0, 0.0, 3.0, 2.0]]).repeat(20_000, 1)  # unnormalised on purpose
    tokens = draw(weights, torch.Generator().manual_seed(0))
    freq = torch.bincount(tokens, minlength=4).float() / len(tokens)
    assert freq[1] == 0  # a token of probability 0 is never drawn
    assert torch.allclose(freq, torch.tensor([0.5, 0.0, 0.3, 0.2]), atol=0.015)


def test_draw_is_reproducible() -> None:
    probs = torch.full((64, 50), 1 / 50)
    one, two = (draw(probs, torch.Generator().manual_seed(3)) for _ in range(2))
    other = draw(probs, torch.Generator().manual_seed(4))
    assert torch.equal(one, two) and not torch.equal(one, other)


def test_draw_never_lands_past_the_last_possible_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """A uniform that rounds up to the row's total would point past the end; the last token of positive
    probability is drawn instead, never a masked one."""
    probs = torch.tensor([[0.3, 0.7, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    monkeypatch.setattr(torch, "rand", lambda *shape, **kw: torch.ones(*shape, dtype=kw.get("dtype")))
    assert draw(probs).tolist() == [1, 3]


def test_sampler_leaves_one_token_inside_the_nucleus() -> None:
    scores = torch.randn(256, 30, generator=torch.Generator().manual_seed(2)) * 3
    nucleus = ~torch.isinf(_transformers(scores, 0.7, 0.8))
    out = NucleusSampler(0.7, 0.8, torch.Generator().manual_seed(0))(None, scores.clone())
    chosen = out.argmax(dim=-1)
    assert torch.isfinite(out).sum(dim=-1).eq(1).all()
    assert nucleus.gather(1, chosen.unsqueeze(1)).all()
    assert len(set(chosen.tolist())) > 1  # it samples, not just takes the argmax
    tiny_p = NucleusSampler(1.0, 1e-9, torch.Generator().manual_seed(0))(None, scores.clone())
    assert torch.equal(tiny_p.argmax(dim=-1), scores.argmax(dim=-1))
