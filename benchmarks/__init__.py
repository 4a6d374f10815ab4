"""Benchmarks by purpose: load/ (load tests, capacity), comparison/ (the seed-style baseline), studies/ (one-off
measurements), common/ (shared helpers)."""
