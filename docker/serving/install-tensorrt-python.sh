#!/bin/sh
# TensorRT's Python bindings at exactly the version of the image's libnvinfer, which Triton
# loads plans with: a plan deserializes only on the TensorRT version that built it.
set -eu
deb="$(dpkg-query -W -f='${Version}\n' 'libnvinfer[0-9]*' | grep -v '^$' | head -n1)"   # e.g. 10.16.1.11-1+cuda13.2
test -n "$deb" || { echo "no libnvinfer package in this image" >&2; exit 1; }
version="${deb%%-*}"                                                    # 10.16.1.11
cuda_major="$(echo "$deb" | sed -nE 's/.*\+cuda([0-9]+).*/\1/p')"       # 13
test -n "$cuda_major" || { echo "cannot read the CUDA major from libnvinfer $deb" >&2; exit 1; }
if ! python3 -c "import tensorrt" 2>/dev/null; then
    # PyPI spells older releases with three components (10.5.0 for 10.5.0.18).
    python3 -m pip install "tensorrt-cu${cuda_major}==${version}" \
        || python3 -m pip install "tensorrt-cu${cuda_major}==$(echo "$version" | cut -d. -f1-3)"
fi
python3 - "$deb" <<'PY'
import sys
import tensorrt
system = sys.argv[1].split("-")[0]
python = tensorrt.__version__
if python != system and not system.startswith(python + "."):
    sys.exit(f"tensorrt {python} (Python) != libnvinfer {sys.argv[1]}: plans built here would not load in Triton")
print(f"TensorRT {python} (Python bindings) matches libnvinfer {sys.argv[1]}")
PY
