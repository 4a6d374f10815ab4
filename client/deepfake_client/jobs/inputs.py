"""What a job may take, checked before it is accepted: a zip archive of images (bounded members,
sizes and names; nothing is extracted by its own name) and server-side paths under a root."""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import InvalidInputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 5000
    max_member_bytes: int = 20 << 20  # the gateway's image limit
    max_total_bytes: int = 2 << 30  # uncompressed, all members together
    max_ratio: float = 200.0  # uncompressed / compressed per member: more is a zip bomb


def _safe_name(name: str) -> bool:
    """A relative path without '..', a drive, a backslash or a control character."""
    if not name or name.startswith("/") or "\\" in name or _DRIVE.match(name) or any(ord(c) < 32 for c in name):
        return False
    return ".." not in PurePosixPath(name).parts


def extract_images(archive: Path, folder: Path, limits: ArchiveLimits = ArchiveLimits()) -> tuple[list[str], list[str]]:
    """The archive's images, written as folder/000000.ext ... (never under their own names).
    Returns (names in the archive, written paths). Refuses the archive (InvalidInputError) when it
    is not a zip, holds an unsafe name, too many images, or more bytes than the limits, whatever its
    headers claim: each member is read with a cap."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise InvalidInputError(f"the archive is not a readable zip: {error}") from error
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        for m in members:
            if not _safe_name(m.filename):
                raise InvalidInputError(f"the archive holds an unsafe name: {m.filename[:120]!r}")
        images = [m for m in members if PurePosixPath(m.filename).suffix.lower() in IMAGE_EXTENSIONS]
        if not images:
            raise InvalidInputError(f"the archive holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        if len(images) > limits.max_members:
            raise InvalidInputError(f"the archive holds {len(images):,} images, over the limit of {limits.max_members:,}")
        total = 0
        names, paths = [], []
        folder.mkdir(parents=True, exist_ok=True)
        for position, m in enumerate(images):
            if m.file_size > limits.max_member_bytes:
                raise InvalidInputError(f"{m.filename[:120]!r} is {m.file_size:,} bytes, over {limits.max_member_bytes:,}")
            if m.compress_size and m.file_size / m.compress_size > limits.max_ratio:
                raise InvalidInputError(f"{m.filename[:120]!r} expands {m.file_size / m.compress_size:,.0f}x: refused as a zip bomb")
            try:
                with zf.open(m) as source:
                    data = source.read(limits.max_member_bytes + 1)  # the header may lie: read with a cap
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as error:
                raise InvalidInputError(f"{m.filename[:120]!r} cannot be read: {error}") from error
            if len(data) > limits.max_member_bytes:
                raise InvalidInputError(f"{m.filename[:120]!r} is over {limits.max_member_bytes:,} bytes")
            total += len(data)
            if total > limits.max_total_bytes:
                raise InvalidInputError(f"the archive expands to over {limits.max_total_bytes:,} bytes")
            target = folder / f"{position:06d}{PurePosixPath(m.filename).suffix.lower()}"
            target.write_bytes(data)
            names.append(m.filename[-255:])
            paths.append(str(target))
    return names, paths


def inside(root: Path, path: Path) -> Path:
    """`path` resolved (symlinks followed); InvalidInputError unless it exists inside `root`."""
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError) as error:
        raise InvalidInputError(f"{str(path)[:200]!r} does not exist") from error
    if not resolved.is_relative_to(root.resolve(strict=True)):
        raise InvalidInputError(f"{str(path)[:200]!r} is outside the jobs root")
    return resolved


def server_paths(root: Path | None, requested: list[str], max_items: int) -> list[Path]:
    """Image files named by `requested` (files, or folders walked), each inside `root` after every
    symlink is resolved. Off (InvalidInputError) when no root is configured."""
    if root is None:
        raise InvalidInputError("server-side paths are off: the gateway has no jobs root (--jobs-root)")
    if not requested:
        raise InvalidInputError("no paths given")
    found: list[Path] = []
    for text in requested:
        candidate = Path(text) if os.path.isabs(text) else root / text
        resolved = inside(root, candidate)
        if resolved.is_dir():
            for folder, dirs, files in os.walk(resolved):  # followlinks False: linked folders are not entered
                dirs.sort()
                for name in sorted(files):
                    if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                        try:
                            found.append(inside(root, Path(folder) / name))
                        except InvalidInputError:
                            continue  # a link out of the root inside a folder: skipped, never read
                    if len(found) > max_items:
                        raise InvalidInputError(f"the paths hold over {max_items:,} images")
        elif resolved.is_file():
            found.append(resolved)
        if len(found) > max_items:
            raise InvalidInputError(f"the paths hold over {max_items:,} images")
    if not found:
        raise InvalidInputError("the paths hold no images")
    return found
