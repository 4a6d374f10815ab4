"""Docs that cite their evidence: every figure linked to a report under benchmarks/results/ is in that report.

Citation syntax: the figure is the text of a Markdown link to the report file it comes from,
e.g. `[1,285 ms](../benchmarks/results/2026-11-21-cpu/cpu-models/cpu_models.md)`. Every number
in such a link's text must appear in the report as written (thousands separators aside:
1,285 matches 1285). The Markdown is read with markdown-it-py, so links in tables, lists and
emphasis count and code spans do not.

    python -m deepfake_dev.docs_evidence             # lists problems, exit 1 if any
    python -m deepfake_dev.docs_evidence --uncited   # also lists measured-looking figures with no link
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "benchmarks" / "results"
# The docs whose figures must cite a report (issue 22).
DOCS = ("README.md", "docs", "benchmarks/README.md", "export/README.md", "model_repository/README.md",
        "docker/README.md")
# A figure as a doc writes it: 1,285 / 3.60 / 0.841 / 2.21 (sign and unit are not part of it).
NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
# What a measurement looks like outside a link (a time, a rate, a ratio): for the --uncited list only,
# since limits and settings (20 MiB, 60 s timeouts) are written the same way.
MEASURED = re.compile(r"(?<![\w.\[-])(\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?\s?(?:ms|s|×|images/s|req/s|faces/s)(?![\w/])")
MAX_REPORT_BYTES = 20_000_000  # a report larger than this is not one a doc should cite


@dataclass(frozen=True)
class Citation:
    doc: Path
    line: int  # 1-based
    text: str  # the link's text, holding the figure(s)
    target: str  # as written in the link


@dataclass(frozen=True)
class Problem:
    citation: Citation
    message: str

    def __str__(self) -> str:
        c = self.citation
        return f"{c.doc.relative_to(REPO_ROOT) if c.doc.is_relative_to(REPO_ROOT) else c.doc}:{c.line}: " \
               f"[{c.text}]({c.target}): {self.message}"


def doc_files(root: Path = REPO_ROOT) -> list[Path]:
    files: list[Path] = []
    for entry in DOCS:
        path = root / entry
        files.extend(sorted(path.glob("*.md")) if path.is_dir() else [path])
    return files


def citations(doc: Path) -> Iterator[Citation]:
    """Every link in `doc` whose target is a file under benchmarks/results/."""
    tokens = MarkdownIt("commonmark").enable("table").parse(doc.read_text(encoding="utf-8"))
    for block in tokens:
        if block.type != "inline" or not block.children:
            continue
        line = block.map[0] + 1 if block.map else 0
        target, text = None, []
        for token in block.children:
            if token.type == "link_open":
                target, text = str(token.attrGet("href") or ""), []
            elif token.type == "link_close" and target is not None:
                if "benchmarks/results/" in _resolve(doc, target).as_posix():
                    yield Citation(doc, line, "".join(text), target)
                target = None
            elif target is not None and token.type in ("text", "code_inline"):
                text.append(token.content)


def _resolve(doc: Path, target: str) -> Path:
    # Links resolve from the doc's folder, as GitHub renders them.
    return (doc.parent / target.split("#", 1)[0]).resolve()


def _plain(text: str) -> str:
    """Thousands separators out, so 1,285 and 1285 read the same."""
    return re.sub(r"(?<=\d)[,\u202f\u2009](?=\d{3}(?!\d))", "", text)


def holds(report_text: str, figure: str) -> bool:
    """Whether the report has `figure` as a whole number (3.6 is not found in 3.60 nor 13.6)."""
    pattern = r"(?<![\d.])" + re.escape(_plain(figure)) + r"(?!\.?\d)"
    return re.search(pattern, _plain(report_text)) is not None


def check_citation(citation: Citation, results: Path = RESULTS) -> list[Problem]:
    report = _resolve(citation.doc, citation.target)
    if not report.is_relative_to(results.resolve()):
        return [Problem(citation, f"cites a file outside {results.name}/")]
    if not report.is_file():
        return [Problem(citation, "the cited report does not exist")]
    if report.stat().st_size > MAX_REPORT_BYTES:
        return [Problem(citation, f"the cited report is over {MAX_REPORT_BYTES} bytes")]
    figures = NUMBER.findall(citation.text)
    if not figures:
        return [Problem(citation, "a report link must have the figure it cites as its text")]
    text = report.read_text(encoding="utf-8", errors="replace")
    return [Problem(citation, f"{figure} is not in the report") for figure in figures if not holds(text, figure)]


def check(docs: Iterable[Path], results: Path = RESULTS) -> list[Problem]:
    return [problem for doc in docs for citation in citations(doc) for problem in check_citation(citation, results)]


def uncited(doc: Path) -> Iterator[tuple[int, str]]:
    """Measured-looking figures in prose and tables that no link cites (code spans and blocks aside)."""
    for block in MarkdownIt("commonmark").enable("table").parse(doc.read_text(encoding="utf-8")):
        if block.type != "inline" or not block.children:
            continue
        depth = 0
        for token in block.children:
            depth += token.type == "link_open"
            depth -= token.type == "link_close"
            if token.type == "text" and depth == 0:
                for match in MEASURED.finditer(token.content):
                    yield (block.map[0] + 1 if block.map else 0), match.group(0)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uncited", action="store_true", help="also list measured-looking figures no link cites")
    args = parser.parse_args(argv)
    if args.uncited:
        for doc in doc_files():
            for line, figure in uncited(doc):
                print(f"{doc.relative_to(REPO_ROOT)}:{line}: uncited {figure}")
    problems = check(doc_files())
    for problem in problems:
        print(problem)
    cited = sum(1 for doc in doc_files() for _ in citations(doc))
    print(f"{cited} cited figures, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
