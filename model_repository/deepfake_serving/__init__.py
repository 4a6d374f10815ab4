"""Code run inside the Triton python-backend models, and the local server launcher."""
