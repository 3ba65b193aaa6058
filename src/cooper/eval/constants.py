"""Defaults of policy evaluation that the ``cooper eval`` parser shows, kept free of imports.

:mod:`cooper.cli` reads them to declare ``cooper eval``'s options without importing the evaluation code
(``cooper --help`` stays fast); :mod:`cooper.eval.engines` and :mod:`cooper.eval.run` use them from here.
"""

from __future__ import annotations

ENGINES = ("auto", "transformers", "vllm")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEFAULT_MAX_NEW_TOKENS = 2048  # the paper's completion budget, capped by engines.default_max_new_tokens()
PAPER_BENCHMARKS = ("gsm8k", "svamp", "math500", "olympiadbench", "odyssey")
