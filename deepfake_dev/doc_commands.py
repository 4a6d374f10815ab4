"""The commands of our own entry points that the docs show, and the long flags each passes.

Read from ```bash / ```sh blocks and from inline code spans, with markdown-it-py. An entry point
is `deepfake`, `deepfake-export`, `python -m benchmarks.X` / `python -m deepfake_dev.X` and
`make TARGET`; other tools (docker, locust, curl) are not ours to check.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

SHELL_FENCES = {"bash", "sh", "shell", "console"}
CLI_ENTRIES = {"deepfake", "deepfake-export"}
OUR_MODULES = ("benchmarks.", "deepfake_dev.")
SEPARATORS = {"&&", "||", ";", "|", "&"}
WRAPPERS = {"time", "heavy", "sudo", "exec", "nice"}
LONG_FLAG = re.compile(r"--[a-z][a-z0-9-]*")


@dataclass(frozen=True)
class Command:
    """`entry` as a runnable prefix, e.g. ("deepfake-export", "tensorrt") or ("-m", "benchmarks.load.sweep")."""

    doc: Path
    line: int
    entry: tuple[str, ...]
    flags: tuple[str, ...]
    text: str

    @property
    def kind(self) -> str:
        return self.entry[0] if self.entry[0] in ("make", "-m") else "cli"


def commands(doc: Path) -> Iterator[Command]:
    for token in MarkdownIt("commonmark").enable("table").parse(doc.read_text(encoding="utf-8")):
        line = token.map[0] + 1 if token.map else 0
        if token.type == "fence" and token.info.strip().split(" ")[0] in SHELL_FENCES:
            yield from _in_script(doc, line, token.content)
        elif token.type == "inline":
            for child in token.children or []:
                if child.type == "code_inline":
                    yield from _in_script(doc, line, child.content, inline=True)


def _in_script(doc: Path, line: int, script: str, inline: bool = False) -> Iterator[Command]:
    for text in script.replace("\\\n", " ").splitlines():
        try:
            tokens = shlex.split(text, comments=True)
        except ValueError:  # an unbalanced quote in prose is not a command
            continue
        for segment in _segments(tokens):
            command = _parse(doc, line, segment, text.strip(), inline)
            if command is not None:
                yield command


def _segments(tokens: list[str]) -> Iterator[list[str]]:
    segment: list[str] = []
    for token in tokens:
        if token in SEPARATORS:
            yield segment
            segment = []
        else:
            segment.append(token)
    yield segment


def _parse(doc: Path, line: int, tokens: list[str], text: str, inline: bool) -> Command | None:
    tokens = _command_words(tokens)
    if not tokens:
        return None
    name, rest = tokens[0].rsplit("/", 1)[-1], [t.strip("[]") for t in tokens[1:]]
    if name in CLI_ENTRIES:
        positional = [t for t in rest if t and not t.startswith("-")]
        entry = (name, positional[0]) if positional and re.fullmatch(r"[a-z][a-z-]*", positional[0]) else (name,)
        return Command(doc, line, entry, _flags(rest), text)
    if name == "make":
        target = next((t for t in rest if re.fullmatch(r"[a-z][a-z-]*", t)), None)
        return Command(doc, line, ("make", target), (), text) if target else None
    # `python -m benchmarks.X`, also inside a longer line (`docker compose run ... python3 -m ...`).
    for i in range(0 if inline else len(tokens)):
        if tokens[i] == "-m" and i + 1 < len(tokens) and tokens[i + 1].startswith(OUR_MODULES):
            if not inline or tokens[0].rsplit("/", 1)[-1].startswith("python"):
                return Command(doc, line, ("-m", tokens[i + 1]), _flags(rest[i + 1:]), text)
    if inline and len(tokens) > 2 and tokens[1] == "-m" and tokens[2].startswith(OUR_MODULES):
        return Command(doc, line, ("-m", tokens[2]), _flags(rest[2:]), text)
    return None


def _command_words(tokens: list[str]) -> list[str]:
    """The command itself: leading VAR=value assignments and wrappers (time, heavy, sudo) dropped."""
    i = 0
    while i < len(tokens) and (re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tokens[i]) or tokens[i] in WRAPPERS):
        i += 1
    return tokens[i:]


def _flags(tokens: list[str]) -> tuple[str, ...]:
    found = []
    for token in tokens:
        match = LONG_FLAG.fullmatch(token.split("=", 1)[0])
        if match and token != "--":
            found.append(match.group(0))
    return tuple(dict.fromkeys(found))
