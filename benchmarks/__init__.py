"""Benchmarks: scripts that measure the running system (`make bench`); not tests."""
