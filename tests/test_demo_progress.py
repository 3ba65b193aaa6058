"""The demo's progress display: the share done and the ETA from weighted units, with an injected clock."""

from __future__ import annotations

import pytest

from cooper.demo.progress import DemoProgress


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_the_eta_scales_the_reference_seconds_left_by_this_machines_pace() -> None:
    clock, lines = Clock(), []
    weights = {"a": 1.0, "b": 2.0}  # reference seconds per unit
    p = DemoProgress({"a": 10, "b": 20}, clock=clock, emit=lines.append, weights=weights, every_s=0)
    assert p.eta_s() is None  # nothing done yet: no pace to go by
    p.start("a")
    clock.t = 20.0  # this machine is twice as slow as the reference: 10 units of "a" in 20 s, not 10 s
    p.set_done(10)
    assert p.fraction() == pytest.approx(10 / 50)
    assert p.eta_s() == pytest.approx(40 * 2.0)  # 40 reference seconds of "b" left, at half speed
    p.start("b")
    clock.t = 60.0
    p.advance(10)  # 20 reference seconds of "b" in 40 s: the same pace
    assert p.eta_s() == pytest.approx(20 * 2.0)
    clock.t = 100.0
    p.advance(10)
    assert p.eta_s() == pytest.approx(0.0) and p.fraction() == pytest.approx(1.0)
    assert p.finish() == {"a": 20.0, "b": 80.0}
    assert "demo [2/2 b]" in lines[-1] and "100% done" in lines[-1]


def test_a_phase_may_learn_its_unit_count_when_it_starts_and_done_never_exceeds_it() -> None:
    clock = Clock()
    p = DemoProgress({"a": 1, "b": 100}, clock=clock, emit=lambda line: None, weights={"a": 1.0, "b": 1.0})
    p.start("a")
    p.start("b", units=4)
    p.set_done(9)
    assert p.done["b"] == 4 and p.fraction() == pytest.approx(1.0)


def test_lines_are_throttled() -> None:
    clock, lines = Clock(), []
    p = DemoProgress({"a": 100}, clock=clock, emit=lines.append, weights={"a": 1.0}, every_s=10)
    p.start("a")  # a phase change is always shown
    for i in range(1, 30):
        clock.t = float(i)
        p.advance()
    assert len(lines) == 1 + 2  # at 10 s and 20 s


def test_reference_weights_follow_the_layout():
    """One process: every phase runs here, the backbone and the arms one after another; with workers the
    backbone is only waited for and the arms share the processes."""
    from cooper.demo.progress import (
        SECONDS_PER_UNIT,
        SECONDS_PER_UNIT_ONE_PROCESS,
        reference_weights,
    )

    assert list(SECONDS_PER_UNIT) == list(SECONDS_PER_UNIT_ONE_PROCESS)
    one, two, four = reference_weights(1), reference_weights(2), reference_weights(4)
    assert one == SECONDS_PER_UNIT_ONE_PROCESS and two == SECONDS_PER_UNIT
    assert one["RM backbone"] > 3 * two["RM backbone"] and one["RL arms"] > 1.5 * two["RL arms"]
    assert four["RL arms"] == pytest.approx(two["RL arms"] / 2)
    assert reference_weights(20)["RL arms"] == pytest.approx(two["RL arms"] * 2 / 9)  # 9 jobs at most
    assert {k: v for k, v in four.items() if k != "RL arms"} == {
        k: v for k, v in two.items() if k != "RL arms"
    }
    four["SFT warm start"] = 0.0  # a copy: the module's tables stay as they are
    assert reference_weights(4)["SFT warm start"] == SECONDS_PER_UNIT["SFT warm start"]
