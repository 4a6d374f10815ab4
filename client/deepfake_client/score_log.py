"""The scores of an evaluation or calibration run, written as they arrive (`scores.jsonl`).

One JSON line per file, appended and flushed as soon as the file is scored (or
rejected as invalid input), so an interrupted run loses at most the files in
flight, and `--resume` scores only the files not recorded yet. A file is
recognised by its resolved path, size and modification time (and, for a video,
the frames sampled): a file changed since it was scored is scored again. The
first line records the server's ensemble settings; resuming against a server that
serves other settings is refused, since its scores would not be comparable. A
torn last line (the run was killed while writing it) is ignored and cut off.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .errors import InvalidInputError

SCORES_FILE = "scores.jsonl"
FORMAT = 1

Key = tuple[str, int, int, int | None]  # resolved path, size, mtime in ns, frames sampled (videos)


def file_key(path: Path, num_frames: int | None) -> Key:
    try:
        stat = path.stat()
    except OSError:  # gone since it was listed: a key nothing matches (scoring it reports why)
        return str(path), -1, -1, num_frames
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns, num_frames


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(end offset, record) of each complete line; a torn last line is left out."""
    data = path.read_bytes()
    offset = 0
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        try:
            if not line.endswith(b"\n"):
                raise ValueError("no end of line")
            record = json.loads(line)
        except ValueError as exc:
            if offset + len(line) == len(data):
                return  # torn while being written: that file is scored again
            raise InvalidInputError(f"{path}, line {number}, is not a score record ({exc}): "
                                    "remove the file to start again") from exc
        offset += len(line)
        yield offset, record


@dataclass
class ScoreLog:
    """Append-only record of scored files; `recorded` holds what an earlier run wrote (on resume)."""

    path: Path
    recorded: dict[Key, dict[str, Any]]
    _handle: IO[str]

    @classmethod
    def open(cls, path: Path, settings: dict[str, Any], resume: bool) -> ScoreLog:
        """Start the log at `path` (replacing an old one), or with `resume` continue it after checking
        that it was written against the same server settings."""
        path.parent.mkdir(parents=True, exist_ok=True)
        header = json.loads(json.dumps({"format": FORMAT, "settings": settings}))  # as read back
        recorded: dict[Key, dict[str, Any]] = {}
        if resume and path.exists():
            lines = list(_lines(path))
            end = lines[-1][0] if lines else 0
            for _, record in lines:
                if "settings" in record:
                    if record != header:
                        raise InvalidInputError(
                            f"{path} was written against other server settings ({record.get('settings')}, now "
                            f"{settings}): its scores are not comparable; run again without --resume")
                else:
                    recorded[tuple(record["key"])] = record
            if end == 0:
                path.unlink()  # nothing complete, not even the header: start afresh
            else:
                with path.open("r+b") as handle:
                    handle.truncate(end)  # cut a torn last line off before appending
        if not path.exists() or not resume:
            path.write_text(json.dumps(header) + "\n")
        return cls(path, recorded, path.open("a"))

    def append(self, key: Key, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps({"key": list(key), **record}) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()
