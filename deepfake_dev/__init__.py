"""Development tools, never installed in the serving image: the local Triton server
(nvidia-pytriton's tritonserver), the demo, and the sample media the tests and benchmarks use."""
