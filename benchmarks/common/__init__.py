"""Helpers every benchmark shares: where it ran, report files, plots, Triton metrics, latency maths, the server it measures."""
