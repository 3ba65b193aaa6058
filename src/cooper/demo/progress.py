"""One progress display for the whole demo: the phase, the share of the work done, and an ETA.

The work is counted in units per phase (SFT steps, RM pre-training steps, RL steps summed over the arms...),
each unit weighted by the seconds it took on the reference machine in the run's layout
(:func:`reference_weights`). The share done is the weighted units done over all of them; the ETA scales the
reference seconds still ahead by how fast this machine has been so far (elapsed / reference seconds of the
work done), so it corrects itself on a faster or slower machine. Pure bookkeeping: the clock and the output
are injected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger(__name__)

# Reference seconds per unit of each phase (report.json's phase_seconds divided by the phase's units), measured
# 2026-11-30 on the 2-core development machine in the two layouts `cooper demo` has. The ETA needs only ratios.
SECONDS_PER_UNIT = {  # worker processes (`cooper demo`, 2 workers)
    "models and task": 1.7,  # one unit
    "SFT warm start": 0.264,  # per SFT step (one thread; its held-out evaluation included)
    "hybrid annotation": 7.8,  # one unit: sampling the SFT policy and labelling
    "RM backbone": 0.061,  # per backbone step: the wait for the worker that trains it beside SFT
    "RM pre-training": 0.082,  # per optimizer step (the shortcut probe included)
    "RL arms": 1.117,  # per RL step of one arm, its evaluations included, 2 arms at a time
    "report": 3.2,  # one unit: final RM probes, plots, report files
}
SECONDS_PER_UNIT_ONE_PROCESS = {  # every phase in one process (`taskset -c 1 cooper demo`, one core)
    "models and task": 1.8,
    "SFT warm start": 0.264,
    "hybrid annotation": 8.5,
    "RM backbone": 0.285,  # per backbone step, trained here
    "RM pre-training": 0.131,
    "RL arms": 2.037,  # one arm at a time
    "report": 3.2,
}


def reference_weights(workers: int) -> dict[str, float]:
    """The reference seconds per unit for a run with ``workers`` processes: the one-process table, or the
    two-worker one with the RL arms spread over ``workers`` processes instead of 2 (9 jobs at most)."""
    if workers <= 1:
        return dict(SECONDS_PER_UNIT_ONE_PROCESS)
    weights = dict(SECONDS_PER_UNIT)
    weights["RL arms"] *= 2 / min(workers, 9)
    return weights


@dataclass
class DemoProgress:
    """Call :meth:`start` at each phase with its units (in :data:`SECONDS_PER_UNIT`'s order), then
    :meth:`advance` / :meth:`set_done` as units finish; a line is emitted at most every ``every_s``."""

    plan: dict[str, int]  # phase -> units
    every_s: float = 15.0
    clock: Callable[[], float] = time.perf_counter
    emit: Callable[[str], None] = field(default=lambda line: log.info("%s", line))
    weights: dict[str, float] = field(default_factory=lambda: dict(SECONDS_PER_UNIT))

    def __post_init__(self) -> None:
        self.t0 = self.clock()
        self.phase: str | None = None
        self.done: dict[str, float] = {p: 0.0 for p in self.plan}
        self.phase_seconds: dict[str, float] = {}
        self._phase_t0 = self.t0
        self._last_emit = -float("inf")

    # -- bookkeeping ------------------------------------------------------------------------------------
    def start(self, phase: str, units: int | None = None) -> None:
        """Begin ``phase`` (ending the previous one); ``units`` replaces the planned count if known now."""
        self._close_phase()
        self.phase = phase
        if units is not None:
            self.plan[phase] = units
        self._phase_t0 = self.clock()
        self.tick(force=True)

    def advance(self, units: float = 1.0) -> None:
        assert self.phase is not None, "start a phase first"
        self.set_done(self.done[self.phase] + units)

    def set_done(self, units: float) -> None:
        assert self.phase is not None, "start a phase first"
        self.done[self.phase] = min(float(units), float(self.plan[self.phase]))
        self.tick()

    def finish(self) -> dict[str, float]:
        """End the last phase; the seconds each phase took."""
        self._close_phase()
        self.phase = None
        return dict(self.phase_seconds)

    def _close_phase(self) -> None:
        if self.phase is not None:
            self.done[self.phase] = float(self.plan[self.phase])
            self.phase_seconds[self.phase] = round(self.clock() - self._phase_t0, 1)

    # -- the estimate -----------------------------------------------------------------------------------
    def _reference(self, units: dict[str, float]) -> float:
        return sum(self.weights.get(p, 1.0) * u for p, u in units.items())

    def fraction(self) -> float:
        total = self._reference({p: float(u) for p, u in self.plan.items()})
        return self._reference(self.done) / total if total else 1.0

    def eta_s(self) -> float | None:
        """Seconds left: the reference seconds still ahead, times this machine's pace so far."""
        done = self._reference(self.done)
        if done <= 0:
            return None
        left = self._reference({p: self.plan[p] - self.done[p] for p in self.plan})
        return left * (self.clock() - self.t0) / done

    def line(self) -> str:
        eta = self.eta_s()
        index = list(self.plan).index(self.phase) + 1 if self.phase in self.plan else 0
        return (
            f"demo [{index}/{len(self.plan)} {self.phase}] {100 * self.fraction():.0f}% done, "
            f"{_clock(self.clock() - self.t0)} elapsed, "
            + (f"about {_clock(eta)} left" if eta is not None else "estimating the time left")
        )

    def tick(self, force: bool = False) -> None:
        now = self.clock()
        if force or now - self._last_emit >= self.every_s:
            self._last_emit = now
            self.emit(self.line())


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s"


def step_callback(progress: DemoProgress) -> TrainerCallback:
    """A ``TrainerCallback`` that advances ``progress`` by one unit per optimizer step."""

    class StepProgress(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            progress.advance(1)

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if progress.phase is not None and state.max_steps:  # the Trainer knows the exact count now
                progress.plan[progress.phase] = state.max_steps

    return StepProgress()
