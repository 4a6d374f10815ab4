"""The seed-style baseline and its comparison with the served ensemble (end to end and per model)."""
