"""Print what a media file holds: container, codec, size, pixel format, exact frame count,
frame rate (as a fraction: 23.976 is 24000/1001), VFR flag, start timecode, colour tags,
field order, rotation, keyframes, audio streams and any further video streams.

The frame count and the per-frame pts index are the frames FFmpeg presents, as
`ffprobe -count_frames` counts them: packets an MP4/MOV edit list hides (a B-frame delay, the
pre-roll of a `-c copy` cut, a tail past the edit) are no frames, nor are frames that cannot
decode because the file starts mid-GOP. Frame 0 is the first frame shown, and its timecode
is the tmcd track's at that point. Only the first video stream is read; others are named.

An image sequence (EXR, DPX, TIFF, PNG) is named by a pattern or its folder; its frames are
numbered by the files (start frame and step as on disk). Image files carry no frame rate
(EXR may carry framesPerSecond): give --rate, else the EXR attribute, else 24 is used, and
"rate_source" says which.

Examples:
  doppel probe shot.mov
  doppel probe plates/shot.%04d.exr --rate 24000/1001
  doppel probe plates/            # the one sequence in the folder
  doppel probe shot.mov --json | jq .frames
  doppel probe shot.mov --json --pts      # include the per-frame pts index and keyframes
"""

from __future__ import annotations

import argparse
import json
import sys

from fractions import Fraction

from renderer.errors import InputError
from renderer.media import MediaInfo, frame_to_timecode, probe


def parse_rate(text: str | None) -> Fraction | None:
    """'24', '23.976', '24000/1001' -> Fraction; InputError naming what was received."""
    if text is None:
        return None
    try:
        rate = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise InputError(f"--rate {text!r} is not a frame rate (e.g. 24, 25, 24000/1001, 23.976)") from None
    if rate <= 0:
        raise InputError(f"--rate {text!r} must be positive")
    return rate.limit_denominator(1001) if rate.denominator > 1001 else rate


def add_rate_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", metavar="FPS",
                        help="frame rate of an image sequence (files carry none; default: EXR framesPerSecond, "
                             "else 24); e.g. 24, 25, 24000/1001. Not used for movies")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("media", metavar="MEDIA",
                        help="video file (.mov, .mp4, .mkv, .mxf, ...) or image sequence (shot.%%04d.exr, shot.####.dpx, "
                             "or its folder)")
    add_rate_argument(parser)
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (fps and time_base as \"num/den\" strings) instead of text")
    parser.add_argument("--pts", action="store_true",
                        help="with --json: include the per-frame pts index and keyframe indices (long for long media)")


def describe(info: MediaInfo) -> str:
    """Human-readable summary, one fact per line."""
    fps = f"{info.fps.numerator}/{info.fps.denominator}" if info.fps.denominator != 1 else str(info.fps.numerator)
    end_tc = ""
    if info.timecode and not info.vfr:
        from renderer.media import timecode_to_frame

        end_tc = " .. " + frame_to_timecode(timecode_to_frame(info.timecode, info.fps) + info.frames - 1, info.fps,
                                            info.drop_frame)
    c = info.color
    lines = [
        f"file        {info.path}",
        f"container   {info.container}",
        f"video       {info.codec} {info.width}x{info.height} {info.pix_fmt}, stream #{info.video_index}",
        f"frames      {info.frames} ({info.duration_s:.3f} s)" + ("  TRUNCATED: the file ends early" if info.truncated else ""),
        f"rate        {fps} fps ({float(info.fps):.3f})" + ("  VARIABLE (mean rate shown)" if info.vfr else ""),
        f"time base   {info.time_base.numerator}/{info.time_base.denominator}, first pts {info.start_pts}",
        f"timecode    {info.timecode or 'none'}{end_tc}" + (" (drop-frame)" if info.drop_frame else ""),
        f"colour      primaries={c.primaries or '-'} transfer={c.transfer or '-'} matrix={c.matrix or '-'} range={c.range or '-'}",
        f"fields      {_fields(info)}",
        f"rotation    {info.rotation}",
        f"keyframes   {len(info.keyframes)} (longest GOP {_longest_gop(info)} frames)",
    ]
    if not info.audio:
        lines.append("audio       none")
    for a in info.audio:
        dur = f"{a.duration_s:.3f} s" if a.duration_s is not None else "unknown length"
        lines.append(f"audio       #{a.index} {a.codec} {a.sample_rate} Hz, {a.channels} ch, {dur}")
    for v in info.other_video:
        lines.append(f"video       #{v.index} {v.codec} {v.width}x{v.height}  NOT CARRIED (only #{info.video_index} is read)")
    if info.sequence is not None:
        seq = info.sequence
        lines.append(f"sequence    {seq.pattern.hashes} in {seq.pattern.folder}: frames {seq.first_number}-"
                     f"{seq.numbers[-1]} step {seq.step} ({seq.source_pix_fmt} {seq.pattern.kind}"
                     + (f", {seq.exr.pixel_type} {seq.exr.compression}" if seq.exr else "")
                     + f"); rate from {seq.rate_source}")
    if info.discarded or info.undecodable:
        lines.append(f"not frames  {info.discarded} packet(s) hidden by the edit list, "
                     f"{info.undecodable} that do not decode (file starts mid-GOP)")
    return "\n".join(lines)


_FIELD_NAMES = {"progressive": "progressive", "tt": "interlaced, top field first",
                "bb": "interlaced, bottom field first", "tb": "interlaced, top coded first, bottom shown first",
                "bt": "interlaced, bottom coded first, top shown first"}


def _fields(info: MediaInfo) -> str:
    return _FIELD_NAMES.get(info.field_order or "", "not signalled (progressive assumed)")


def _longest_gop(info: MediaInfo) -> int:
    bounds = list(info.keyframes) + [info.frames]
    return max((b - a for a, b in zip(bounds, bounds[1:])), default=info.frames)


def run(args: argparse.Namespace) -> int:
    info = probe(args.media, rate=parse_rate(args.rate))
    if args.json:
        data = info.to_json()
        if not args.pts:
            data.pop("pts")
            data["keyframes"] = len(info.keyframes)
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(describe(info))
    return 0
