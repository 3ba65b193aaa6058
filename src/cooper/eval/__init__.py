"""Policy evaluation: generation engines, sampling, scoring and the paper's protocol."""
