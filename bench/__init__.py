"""Benchmarks: each bench_*.py module has a main(); `python -m bench` runs them all."""
