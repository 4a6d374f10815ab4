"""Load tests and capacity planning: Locust scenarios and targets, closed-loop sweeps, overload."""
