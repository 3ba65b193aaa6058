"""Rows and benchmarks: reading jsonl/json/parquet into checked rows, the five benchmarks."""
