"""One-off studies: alignment fidelity, INT8 engines, explanation cost, detection bound, FLOPs, GPU, gateway overhead."""
