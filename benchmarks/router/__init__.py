"""The router benchmarks; see README.md."""
