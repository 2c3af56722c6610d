"""Benchmarks of what edgepack builds and runs; see README.md."""
