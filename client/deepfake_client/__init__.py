"""Client SDK for the deepfake_detector ensemble."""
