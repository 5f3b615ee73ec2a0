"""Benchmarks: ``pytest benchmarks --benchmark-only`` (see docs/perf.md)."""
