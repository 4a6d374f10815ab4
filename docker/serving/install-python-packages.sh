#!/bin/sh
# Installs the serving image's Python packages (docker/serving/packages.txt) at the versions
# pinned in requirements/, for the python3 that Triton's python backend runs.
set -eu
cd "$(dirname "$0")/../.."
docker/pip-constraints.sh > /tmp/constraints.txt
grep -Ev '^[[:space:]]*(#|$)' docker/serving/packages.txt > /tmp/packages.txt
python3 -m pip install -c /tmp/constraints.txt -r /tmp/packages.txt
# facenet-pytorch pins torch<2.3 and Pillow<10.3 but only needs what is installed above.
python3 -m pip install --no-deps -r requirements/facenet.txt
# The python backend returns empty outputs with numpy 2 (docs/design.md section 7).
python3 -c "import numpy, sys; sys.exit(0 if numpy.__version__.startswith('1.') else 'numpy ' + numpy.__version__ + ' >= 2')"
rm -f /tmp/constraints.txt /tmp/packages.txt
