"""What reading C2PA Content Credentials costs per image (deepfake_client.provenance), on the sample
face signed with a test chain (tests/content_credentials.py) and unsigned:

    python -m benchmarks.studies.provenance_read [--reads 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common.machine import describe, machine_info
from deepfake_client import ProvenanceReader
from deepfake_dev import samples as media

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from content_credentials import make_samples  # noqa: E402 - the tests' signing helper


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reads", type=int, default=50, help="reads per case (default %(default)s)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        media.write_samples(Path(folder))
        signed = make_samples((Path(folder) / media.FACE_IMAGE).read_bytes())
    reader = ProvenanceReader(signed.trust_anchor)
    print(describe(machine_info(["c2pa-python"])))
    for case in ("valid", "tampered", "plain"):
        data = getattr(signed, case)
        state = reader.read(data).state.value  # also warms the library up
        started = time.perf_counter()
        for _ in range(args.reads):
            reader.read(data)
        mean_ms = (time.perf_counter() - started) / args.reads * 1000
        print(f"{case:<9} {len(data):>7} bytes  state {state:<9} {mean_ms:6.1f} ms per read (mean of {args.reads})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
