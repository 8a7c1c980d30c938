"""The benchmarks behind scripts/benchmark.py, one module each; common.py is what they share."""
