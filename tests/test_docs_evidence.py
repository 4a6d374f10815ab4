"""Every figure a doc cites is in the report under benchmarks/results/ it links to."""

import shutil
from pathlib import Path

import pytest

from deepfake_dev import docs_evidence as evidence

REPORT = "benchmarks/results/2026-11-21-cpu/cpu-models/cpu_models.md"


def test_every_cited_figure_is_in_its_report():
    problems = evidence.check(evidence.doc_files())
    assert not problems, "\n".join(map(str, problems))


def test_the_docs_cite_reports():
    # The check above passes vacuously if nothing is cited; the design doc's anchors are.
    cited = [c for doc in evidence.doc_files() for c in evidence.citations(doc)]
    assert len(cited) >= 10
    assert any(c.doc.name == "design.md" for c in cited)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A temp copy of one doc and the report it cites, laid out as in the repository."""
    report = tmp_path / REPORT
    report.parent.mkdir(parents=True)
    shutil.copy(evidence.REPO_ROOT / REPORT, report)
    (tmp_path / "docs").mkdir()
    return tmp_path


def _check(tree: Path, markdown: str) -> list[evidence.Problem]:
    doc = tree / "docs" / "design.md"
    doc.write_text(markdown)
    return evidence.check([doc], results=tree / "benchmarks" / "results")


def test_an_edited_figure_fails(tree: Path):
    link = f"(../{REPORT})"
    assert _check(tree, f"The four took [1,285 ms]{link} per image.\n") == []
    assert _check(tree, f"The four took [1285 ms]{link} per image.\n") == []  # formatting aside
    problems = _check(tree, f"The four took [1,286 ms]{link} per image.\n")
    assert [p.message for p in problems] == ["1,286 is not in the report"]


def test_the_real_doc_fails_when_its_cited_figure_is_edited(tree: Path):
    real = (evidence.REPO_ROOT / "docs" / "design.md").read_text()
    assert "[1,285 ms](" in real
    problems = _check(tree, real.replace("[1,285 ms](", "[1,258 ms]("))
    assert any("1,258 is not in the report" in p.message for p in problems)


def test_a_figure_must_match_as_written(tree: Path):
    link = f"(../{REPORT})"
    # 1,01 would be found inside 1,012 by a substring search; 101 is not a figure of the report.
    assert _check(tree, f"[101 ms]{link}\n")
    assert _check(tree, f"| model | [1,012]{link} |\n| --- | --- |\n") == []


def test_a_missing_report_or_a_link_without_a_figure_fails(tree: Path):
    missing = _check(tree, "[3.60×](../benchmarks/results/none/compare.md)\n")
    assert [p.message for p in missing] == ["the cited report does not exist"]
    bare = _check(tree, f"see [the report](../{REPORT})\n")
    assert [p.message for p in bare] == ["a report link must have the figure it cites as its text"]


def test_code_spans_are_not_citations(tree: Path):
    assert _check(tree, f"`[9,999 ms](../{REPORT})`\n") == []


def test_uncited_lists_measured_figures_outside_links(tree: Path):
    doc = tree / "docs" / "design.md"
    doc.write_text(f"It took 1,190 ms, [1,285 ms](../{REPORT}) cited, `2 s` in code, 3.60× faster.\n")
    assert [figure for _, figure in evidence.uncited(doc)] == ["1,190 ms", "3.60×"]
