"""Benchmarks, run from the repository root as modules (`python -m bench.ingest`): they use the test fakes,
which are not part of the installed package."""
