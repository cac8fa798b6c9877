"""Benchmarks: each `bench_*.py` module has a `main()` that measures a ratio against a baseline run
in the same process or run, and writes its own section of BENCHMARKS.md via `benchmarks.report`."""
