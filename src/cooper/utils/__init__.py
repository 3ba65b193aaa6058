"""Helpers with no cooper imports above them: files, endpoints, model directories, tiny models."""
