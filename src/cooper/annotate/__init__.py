"""Hybrid annotation: rule verifier + LLM judge, keep the agreements."""
