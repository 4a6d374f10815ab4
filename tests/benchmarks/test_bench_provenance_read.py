"""benchmarks.studies.provenance_read: each case is read with its expected state, and the machine is named."""

from __future__ import annotations

from benchmarks.studies import provenance_read


def test_reports_the_state_and_cost_of_each_case_with_the_machine(capsys):
    assert provenance_read.main(["--reads", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "cores" in lines[0]
    states = {line.split()[0]: line.split()[4] for line in lines[1:]}
    assert states == {"valid": "valid", "tampered": "tampered", "plain": "none"}
    assert all("ms per read (mean of 2)" in line for line in lines[1:])
