"""Cooper: co-optimising the policy and its reward model in RL for LLM reasoning (arXiv 2508.05613).

Importing ``cooper`` is cheap: heavy libraries (torch, transformers, TRL, math-verify) are imported
inside the modules and functions that need them.
"""

__version__ = "0.1.0"
