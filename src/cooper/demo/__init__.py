"""`cooper demo`: reward hacking and its cure, end to end on a CPU with tiny models."""
