"""Hostile "videos" for the decoder tests: playlists, concat lists, patterns, lying headers.

Each is a few bytes written by hand (no generator tool): what an attacker would upload.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

FRAME_SIZE = (64, 48)


def write_video(path: Path, num_frames: int = 10, fps: float = 10.0, colour: int = 200) -> Path:
    """A real MP4 (mpeg4 in MOV/MP4), solid colour: the local file an attacker wants read."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, FRAME_SIZE)
    assert writer.isOpened()
    for _ in range(num_frames):
        writer.write(np.full((FRAME_SIZE[1], FRAME_SIZE[0], 3), colour, np.uint8))
    writer.release()
    return path


def hls_playlist(*uris: str) -> bytes:
    entries = "".join(f"#EXTINF:1.0,\n{uri}\n" for uri in uris)
    return f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n{entries}#EXT-X-ENDLIST\n".encode()


def ffconcat(*paths: str) -> bytes:
    return ("ffconcat version 1.0\n" + "".join(f"file '{p}'\n" for p in paths)).encode()


def image2_pattern(folder: Path, count: int = 5) -> str:
    """img001.png ... in `folder`; returns the pattern FFmpeg's image2 demuxer expands."""
    for index in range(1, count + 1):
        ok, png = cv2.imencode(".png", np.full((FRAME_SIZE[1], FRAME_SIZE[0], 3), 90, np.uint8))
        assert ok
        (folder / f"img{index:03d}.png").write_bytes(png.tobytes())
    return str(folder / "img%03d.png")


def _boxes(data: bytes, start: int, end: int):
    """(offset, size, type) of the ISO-BMFF boxes between start and end."""
    offset = start
    while offset < end:
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        yield offset, size, kind
        offset += size


def _find(data: bytes, path: list[bytes]) -> list[tuple[int, int]]:
    """(offset, size) of each box along `path` (e.g. moov/trak/mdia/minf/dinf/dref)."""
    found, start, end = [], 0, len(data)
    for kind in path:
        offset, size = next((o, s) for o, s, k in _boxes(data, start, end) if k == kind)
        found.append((offset, size))
        start, end = offset + 8, offset + size
        if kind == b"dref":
            break
    return found


def _alias_record(name: str) -> bytes:
    """A QuickTime `alis` data reference (a Mac alias record, as FFmpeg's mov demuxer reads
    it) naming `name` one level down from the movie's own folder: FFmpeg resolves it next to
    the movie when drefs are enabled."""
    body = bytes(10) + bytes([0]) + bytes(27)  # volume name: empty
    body += bytes(12) + bytes([len(name)]) + name.encode().ljust(63, b"\0")  # file name
    body += bytes(16) + struct.pack(">hh", 1, 1) + bytes(16)  # nlvl_from = nlvl_to = 1: same folder
    path = ("/elsewhere/" + name).encode()
    path += b"\0" * (len(path) % 2)
    body += struct.pack(">hH", 2, len(path)) + path  # type 2: absolute path
    body += struct.pack(">hH", -1, 0)  # end of records
    return struct.pack(">I4sI", 12 + len(body), b"alis", 0) + body


def mp4_with_external_data(victim: Path, name: str | None = None) -> bytes:
    """victim's header (moov) with its samples declared to live in the file `name` next to it
    (default: victim's own; an `alis` data reference, not self-contained). Its own bytes hold
    zeros where the samples were."""
    data = victim.read_bytes()
    (ftyp_at, ftyp_size), = _find(data, [b"ftyp"])
    chain = _find(data, [b"moov", b"trak", b"mdia", b"minf", b"dinf", b"dref"])
    moov_at, moov_size = chain[0]
    dref_at, dref_size = chain[-1]
    alias = _alias_record(name or victim.name)
    dref = struct.pack(">I4sII", 16 + len(alias), b"dref", 0, 1) + alias
    delta = len(dref) - dref_size
    moov = bytearray(data[moov_at:moov_at + moov_size])
    for offset, size in chain[:-1]:  # every box that contains the dref grows with it
        struct.pack_into(">I", moov, offset - moov_at, size + delta)
    moov[dref_at - moov_at:dref_at - moov_at + dref_size] = dref
    ftyp = data[ftyp_at:ftyp_at + ftyp_size]
    # Zeros up to where the victim's moov started, so the sample offsets land on nothing here.
    padding = moov_at - len(ftyp)
    free = struct.pack(">I4s", padding, b"free") + bytes(padding - 8)
    return ftyp + free + bytes(moov)


def mp4_claiming_frames(source: Path, frames: int) -> bytes:
    """source with its stts (time-to-sample) run rewritten to claim `frames` frames."""
    data = bytearray(source.read_bytes())
    chain = _find(bytes(data), [b"moov", b"trak", b"mdia", b"minf", b"stbl"])
    stbl_at, stbl_size = chain[-1]
    offset, _, _ = next(b for b in _boxes(bytes(data), stbl_at + 8, stbl_at + stbl_size) if b[2] == b"stts")
    count, = struct.unpack_from(">I", data, offset + 12)
    assert count == 1  # one run: (sample count, delta)
    struct.pack_into(">I", data, offset + 16, frames)
    return bytes(data)
