"""GRPO training with the rule, static-RM or Cooper reward, on TRL."""
