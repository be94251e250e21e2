"""Benchmarks: `.venv/bin/python -m bench.<name>`; results in docs/performance.md."""
