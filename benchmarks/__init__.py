"""Load tests, the seed-style baseline and capacity planning."""
