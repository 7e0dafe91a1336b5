"""Frame-accurate re-encode of a frame range: exactly frames START..END (inclusive, 0-based,
in presentation order), with the matching audio (sample-accurate) and the start timecode
moved on by START frames. Colour tags, frame timing (also for variable frame rate),
rotation and field order (interlaced sources stay interlaced) are carried over; only the
first video stream is (a warning names the others). Frames are counted as `doppel probe`
counts them: as FFmpeg presents them, after the MP4/MOV edit list. The output is written under a temporary name beside OUT and
renamed when complete; the source is only read.

Codecs (and the containers each writes):
  h264         libx264 crf 18, 8/10-bit, .mp4/.mov/.mkv (AAC audio in mp4, PCM otherwise)
  h265         libx265 crf 16, 8/10/12-bit, HDR10 metadata kept, .mp4/.mov/.mkv (AAC in mp4, PCM otherwise)
  prores_hq    ProRes 422 HQ, .mov (PCM audio)
  prores_4444  ProRes 4444, .mov (PCM audio)
  prores_xq    ProRes 4444 XQ, .mov (PCM audio)
  dnxhr_hq     DNxHR HQ 8-bit, .mxf/.mov (PCM audio)
  dnxhr_hqx    DNxHR HQX 10-bit 4:2:2, .mxf/.mov (PCM audio)
  dnxhr_444    DNxHR 444 10-bit, .mxf/.mov (PCM audio)
  ffv1         FFV1 lossless, 8-16-bit YUV or RGB, .mkv (PCM audio)

The output keeps the source's chroma layout and at least its bit depth where the codec has one.

Image sequences (EXR, DPX, TIFF, PNG; a pattern such as shot.%04d.exr or its folder) trim
into a sequence (OUT a pattern in a new folder: out/cut/cut.%04d.exr) keeping the source
frames' numbers: frames 2-4 of shot.1001.exr... come out as cut.1003.exr-cut.1005.exr. The
folder appears only complete (written beside it, renamed when done). --codec is then not used.

Examples:
  doppel trim plates/shot.%04d.exr --frames 10-19 --out cut/cut.%04d.exr
  doppel trim shot.mov --frames 100-219 --out cut.mov --codec prores_hq
  doppel trim shot.mp4 --frames 0-47 --out first-two-seconds.mp4 --json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from tqdm import tqdm

from renderer.atomic import check_new_output
from renderer.errors import InputError
from renderer.commands.probe import add_rate_argument, parse_rate
from renderer.media import CODECS, probe, trim


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("media", metavar="MEDIA", help="source video or image sequence (never written)")
    parser.add_argument("--frames", required=True, metavar="START-END",
                        help="inclusive 0-based frame range, e.g. 0-47 (see `doppel probe` for the frame count)")
    parser.add_argument("--out", required=True, metavar="OUT", help="output file; its suffix picks the container")
    parser.add_argument("--codec", default="h264", metavar="CODEC",
                        help=f"output codec: {', '.join(CODECS)} (default: h264)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists (default: refuse)")
    add_rate_argument(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON summary of the output on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_range(text: str) -> tuple[int, int]:
    """'START-END' -> (start, end); InputError naming what was received."""
    m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text)
    if not m:
        raise InputError(f"--frames {text!r} is not START-END with 0-based frame numbers, e.g. 0-47")
    start, end = int(m.group(1)), int(m.group(2))
    if end < start:
        raise InputError(f"--frames {text!r}: END ({end}) is before START ({start})")
    return start, end


def run(args: argparse.Namespace) -> int:
    start, end = parse_range(args.frames)
    if args.codec not in CODECS:
        from renderer.media import resolve_codec

        resolve_codec(args.codec)  # raises with the allowed list
    info = probe(args.media, rate=parse_rate(args.rate))
    if Path(args.out).resolve() == info.path.resolve():
        raise InputError(f"--out {args.out} is the source itself; the source is never written")
    check_new_output(Path(args.out), "--out", force=args.force)
    for warning in info.warnings(args.codec):
        print(f"doppel trim: warning: {warning}", file=sys.stderr)
    with tqdm(total=end - start + 1, unit="frame", desc="trim", file=sys.stderr,
              disable=args.quiet or None) as bar:
        out = trim(args.media, start, end, args.out, codec=args.codec, on_frame=lambda _i: bar.update(1), info=info)
    summary = {
        "source": str(info.path), "frames_range": [start, end], "out": str(out.path), "codec": args.codec,
        "frames": out.frames, "fps": f"{out.fps.numerator}/{out.fps.denominator}", "width": out.width,
        "height": out.height, "pix_fmt": out.pix_fmt, "timecode": out.timecode, "vfr": out.vfr,
        "field_order": out.field_order, "warnings": info.warnings(args.codec),
        "sequence": out.sequence.to_json() if out.sequence is not None else None,
        "audio": [{"codec": a.codec, "sample_rate": a.sample_rate, "channels": a.channels,
                   "duration_s": a.duration_s} for a in out.audio],
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        tc = f", timecode {out.timecode}" if out.timecode else ""
        print(f"wrote {out.path}: frames {start}-{end} of {info.path.name} -> {out.frames} frames "
              f"{out.codec} {out.width}x{out.height}{tc}", file=sys.stderr)
    return 0
