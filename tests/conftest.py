"""Fixtures shared by the test modules: the tiny model set and single-threaded torch."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cooper.tiny import TinyPaths, tiny_models


@pytest.fixture(scope="session")
def tiny_paths(tmp_path_factory: pytest.TempPathFactory) -> TinyPaths:
    """The default tiny tokenizer, policy and reward model, built once per session (read them, don't
    modify them: copy a directory first)."""
    return tiny_models(tmp_path_factory.getbasetemp() / "tiny-models")


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the requesting module: tiny models gain nothing from threads, and on a busy
    2-core machine two OpenMP threads stall each other (10-100x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
