"""DeepfakeBench-exact network definitions of the four detectors."""
