"""Benchmarks (`make bench-*`, results in docs/bench/): feature extraction against a plain decode,
training throughput, blocked top-N scoring, and every nightly stage at platform size (load)."""
