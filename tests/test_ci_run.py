"""CI runs the unit tests first, then the rest of the suite, each test once."""

import itertools
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _marker_expressions() -> tuple[str, str]:
    makefile = (ROOT / "Makefile").read_text()
    fast = re.search(r'^test-fast:.*\n\t.*-m "([^"]+)"', makefile, re.MULTILINE)
    ci = [shlex.split(line) for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("make")]
    assert fast and ci[0] == ["make", "test-fast"], ci
    [rest] = [c for c in ci if c[:2] == ["make", "test"]]
    assert rest[2].startswith("PYTEST_ARGS=-m ")
    return fast.group(1), shlex.split(rest[2].split("=", 1)[1])[1]


def test_ci_runs_test_fast_first_then_every_other_test_once():
    fast, rest = _marker_expressions()
    for slow, integration in itertools.product([False, True], repeat=2):
        marks = {"slow": slow, "integration": integration}
        chosen = [eval(expression, {}, marks) for expression in (fast, rest)]  # our own Makefile and .ci/run
        assert chosen.count(True) == 1, (marks, fast, rest)
