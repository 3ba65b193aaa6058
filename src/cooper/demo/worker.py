"""Where the demo's worker processes (:class:`cooper.demo.pipeline.Workers`) start. Nothing heavy is
imported at this module's top, so a spawned worker runs :func:`init` before torch and numpy load: their
thread pools, sized once as they load, then see its one-thread settings."""

from __future__ import annotations

import logging
import os
import sys


def init() -> None:
    """Each worker computes on one thread: tiny models are bound by per-operation overhead, so processes, not
    threads, use the cores; it is quiet (the parent reports progress; warnings and errors still show)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    # lazy, and the reason this module exists: torch, numpy's BLAS (and the pipeline, which imports them)
    # must load after the two lines above
    import torch

    from cooper.demo.pipeline import show_progress_bars

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("cooper", "transformers", "trl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    show_progress_bars((False, False))  # as quiet_trainers, for the worker's whole life
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - open until the worker exits
