"""Benchmarks: `python -m bench.<module>`; results in docs/benchmarks.md."""
