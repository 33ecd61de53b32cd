"""Benchmarks run by `make bench`: each prints its figures and records them in build/bench.json."""
