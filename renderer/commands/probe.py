"""Print what a media file holds: container, codec, size, pixel format, exact frame count,
frame rate (as a fraction: 23.976 is 24000/1001), VFR flag, start timecode, colour tags,
field order, rotation, keyframes, audio streams and any further video streams.

The frame count and the per-frame pts index are the frames FFmpeg presents, as
`ffprobe -count_frames` counts them: packets an MP4/MOV edit list hides (a B-frame delay, the
pre-roll of a `-c copy` cut, a tail past the edit) are no frames, nor are frames that cannot
decode because the file starts mid-GOP. Frame 0 is the first frame shown, and its timecode
is the tmcd track's at that point. Only the first video stream is read; others are named.

Examples:
  doppel probe shot.mov
  doppel probe shot.mov --json | jq .frames
  doppel probe shot.mov --json --pts      # include the per-frame pts index and keyframes
"""

from __future__ import annotations

import argparse
import json
import sys

from renderer.media import MediaInfo, frame_to_timecode, probe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("media", metavar="MEDIA", help="video file to describe (.mov, .mp4, .mkv, .mxf, ...)")
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
    info = probe(args.media)
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
