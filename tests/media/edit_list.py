"""Rewrite the edit list (`elst`) of one track of an MP4/MOV that FFmpeg wrote.

The only way to get a tail edit or a list of several edits out of the tools at hand: the
ffmpeg CLI writes one edit (or an empty edit plus one). The file keeps every sample as
FFmpeg muxed it; only the edit list box changes, and the boxes around it grow or shrink
with it. The moov box must come after mdat (FFmpeg's default, not `+faststart`), so no
chunk offset moves. What FFmpeg then presents is read back with ffprobe, the reference.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

_CONTAINERS = {b"moov", b"trak", b"edts", b"mdia"}


@dataclass(frozen=True)
class Edit:
    """One edit: `duration` in the movie's time scale (mvhd), `media_time` in the track's (mdhd); -1 = empty."""

    duration: int
    media_time: int


@dataclass(frozen=True)
class TrackTiming:
    movie_timescale: int
    media_timescale: int
    edits: tuple[Edit, ...]


def _boxes(data: bytes, start: int, end: int):
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if size < 8:
            raise ValueError(f"box {kind!r} at {pos} has size {size}")
        yield pos, size, kind
        pos += size


def _find(data: bytes, start: int, end: int, kind: bytes) -> list[tuple[int, int]]:
    return [(p, s) for p, s, k in _boxes(data, start, end) if k == kind]


def _video_trak(data: bytes) -> tuple[int, int, int, int]:
    """(moov pos, moov size, trak pos, trak size) of the first video track."""
    top = list(_boxes(data, 0, len(data)))
    moov = [(p, s) for p, s, k in top if k == b"moov"]
    mdat = [p for p, _, k in top if k == b"mdat"]
    if not moov or not mdat or moov[0][0] < mdat[0]:
        raise ValueError("needs one moov after mdat (ffmpeg's default layout, not +faststart)")
    mp, ms = moov[0]
    for tp, ts in _find(data, mp + 8, mp + ms, b"trak"):
        for dp, dsz in _find(data, tp + 8, tp + ts, b"mdia"):
            for hp, _ in _find(data, dp + 8, dp + dsz, b"hdlr"):
                if data[hp + 16:hp + 20] == b"vide":
                    return mp, ms, tp, ts
    raise ValueError("no video track")


def _timescale(data: bytes, box: int) -> int:
    """Time scale of an mvhd or mdhd box at `box` (version 0 or 1)."""
    version = data[box + 8]
    return struct.unpack(">I", data[box + (28 if version == 1 else 20):][:4])[0]


def read_timing(path: Path) -> TrackTiming:
    data = Path(path).read_bytes()
    mp, ms, tp, ts = _video_trak(data)
    mvhd = _find(data, mp + 8, mp + ms, b"mvhd")[0][0]
    mdia = _find(data, tp + 8, tp + ts, b"mdia")[0]
    mdhd = _find(data, mdia[0] + 8, mdia[0] + mdia[1], b"mdhd")[0][0]
    edits: list[Edit] = []
    for ep, es in _find(data, tp + 8, tp + ts, b"edts"):
        for lp, _ in _find(data, ep + 8, ep + es, b"elst"):
            version, count = data[lp + 8], struct.unpack(">I", data[lp + 12:lp + 16])[0]
            pos = lp + 16
            for _ in range(count):
                if version == 1:
                    d, t = struct.unpack(">Qq", data[pos:pos + 16])
                    pos += 20
                else:
                    d, t = struct.unpack(">Ii", data[pos:pos + 8])
                    pos += 12
                edits.append(Edit(d, t))
    return TrackTiming(_timescale(data, mvhd), _timescale(data, mdhd), tuple(edits))


def write_edits(src: Path, out: Path, edits: list[Edit]) -> Path:
    """A copy of `src` whose video track's edit list is `edits` (rate 1.0 each)."""
    data = Path(src).read_bytes()
    mp, ms, tp, ts = _video_trak(data)
    body = b"".join(struct.pack(">QqHH", e.duration, e.media_time, 1, 0) for e in edits)
    elst = struct.pack(">I4sB3xI", 16 + len(body), b"elst", 1, len(edits)) + body
    edts = struct.pack(">I4s", 8 + len(elst), b"edts") + elst
    old = _find(data, tp + 8, tp + ts, b"edts")
    if old:
        ep, es = old[0]
    else:  # no edit list yet: put one right after tkhd
        tk, tks = _find(data, tp + 8, tp + ts, b"tkhd")[0]
        ep, es = tk + tks, 0
    grow = len(edts) - es
    new = bytearray(data[:ep] + edts + data[ep + es:])
    for pos in (mp, tp):  # moov and trak enclose the edit list
        size = struct.unpack(">I", new[pos:pos + 4])[0]
        new[pos:pos + 4] = struct.pack(">I", size + grow)
    Path(out).write_bytes(bytes(new))
    return Path(out)
