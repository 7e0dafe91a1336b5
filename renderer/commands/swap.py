"""Swap faces in one video, the whole of it or a frame range, and label the result.

Every frame of VIDEO is written to OUT; faces are swapped only on --frames (default: all
frames), the others pass through as decoded. Frame count, timing, timecode, colour tags
and audio follow the source. OUT is labelled synthetic media (container comment) and,
when a signing key is configured (`doppel keys init`, DOPPEL_SIGN_CERT/DOPPEL_SIGN_KEY or
the preset's `signing:`), carries a signed C2PA manifest.

The output codec is --codec, else the preset's, else the source's own when Doppel can
write it (h264, prores, ffv1, dnxhd), else chosen by OUT's extension.

Examples:
  doppel swap interview.mp4 --model models/demo --out interview.swapped.mp4
  doppel swap take3.mov --model models/jane --out take3.jane.mov --frames 120-480 --preset prores_hq
  doppel swap clip.mp4 --model models/demo --out out.mp4 --direction b2a --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from renderer import media
from renderer.errors import InputError
from renderer.swap import SwapSettings, render_range, swap_settings

_SOURCE_CODECS = {"h264": "h264", "prores": "prores_hq", "ffv1": "ffv1", "dnxhd": "dnxhr_hq"}
_SUFFIX_CODECS = {".mp4": "h264", ".mov": "prores_hq", ".mkv": "ffv1", ".mxf": "dnxhr_hq"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=Path, metavar="VIDEO", help="source video (never modified)")
    parser.add_argument("--model", type=Path, required=True, metavar="MODEL_DIR", help="trained model (doppel train)")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT", help="output file (.mp4, .mov, .mkv, .mxf)")
    parser.add_argument("--frames", metavar="START-END", help="swap only these frames (inclusive, 0-based)")
    parser.add_argument("--preset", metavar="PRESET", help="preset name or YAML file (detector, mask, colour, ...)")
    parser.add_argument("--direction", choices=("a2b", "b2a"), help="a2b: A's face becomes B (default: preset's)")
    parser.add_argument("--codec", choices=tuple(media.CODECS), help="output codec (default: see above)")
    parser.add_argument("--device", metavar="DEV", help="cpu, cuda, cuda:N or mps (default: best available)")
    parser.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_frames(text: str, frames: int) -> tuple[int, int]:
    """'START-END' -> (start, end) inclusive; InputError unless 0 <= start <= end < frames."""
    try:
        start_s, end_s = text.split("-", 1)
        start, end = int(start_s), int(end_s)
    except ValueError as err:
        raise InputError(f"--frames {text!r} is not START-END (e.g. 0-99, inclusive, 0-based)") from err
    if not 0 <= start <= end < frames:
        raise InputError(f"--frames {text} is outside the video (allowed: 0-{frames - 1}, start <= end)")
    return start, end


def choose_codec(requested: str | None, info: media.MediaInfo, out: Path) -> str:
    if requested:
        return requested
    by_source = _SOURCE_CODECS.get(info.codec)
    if by_source and out.suffix.lower() in media.CODECS[by_source].containers:
        return by_source
    if out.suffix.lower() not in _SUFFIX_CODECS:
        raise InputError(f"--out {out}: unknown container {out.suffix!r} (allowed: {', '.join(_SUFFIX_CODECS)})")
    return _SUFFIX_CODECS[out.suffix.lower()]


def run(args: argparse.Namespace) -> int:
    from renderer.presets import load_preset, preset_sha256
    from renderer.provenance import claim_for_model, label_metadata, resolve_signing_identity, sign_media

    if not args.video.is_file():
        raise InputError(f"video {args.video} does not exist")
    info = media.probe(args.video)
    first, last = parse_frames(args.frames, info.frames) if args.frames else (0, info.frames - 1)
    preset = load_preset(args.preset) if args.preset else None
    settings = (swap_settings(preset, direction=args.direction, device=args.device) if preset
                else SwapSettings(direction=args.direction or "a2b", device=args.device))
    codec = args.codec or (preset.output.codec if preset and not args.codec else None)
    codec = choose_codec(codec, info, args.out)
    signing = ({"cert": preset.signing.cert, "key": preset.signing.key}
               if preset and preset.signing.cert and preset.signing.key else None)
    identity = resolve_signing_identity(signing, os.environ)
    claim = claim_for_model(args.video, args.model, [(first, last + 1)],
                            preset_sha256=preset_sha256(preset) if preset else None)
    bar = tqdm(total=info.frames, unit="frame", desc=args.out.name, disable=args.no_progress, file=sys.stderr)
    try:
        stats = render_range(
            args.video, args.out, model_dir=args.model, settings=settings, first=0, last=info.frames - 1,
            swap_ranges=[(first, last)], codec=codec,
            pix_fmt=preset.output.pix_fmt if preset else None,
            metadata=label_metadata(claim, signed=identity is not None),
            progress=lambda done, total: bar.update(done - bar.n),
        )
    finally:
        bar.close()
    signed = sign_media(args.out, claim, identity, source=args.video)
    if signed.warning:
        print(f"doppel swap: {signed.warning}", file=sys.stderr)
    summary = {"source": str(args.video), "output": str(args.out), "codec": codec, "swap_range": [first, last],
               "signed": signed.signed, **stats.to_json()}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        passed = ", ".join(f"{n} {why}" for why, n in stats.passed_through.items() if n) or "none"
        print(f"{args.out}: {stats.frames} frames, {stats.swapped} swapped ({stats.faces} faces), "
              f"passed through: {passed}; {stats.to_json()['fps']} frames/s; "
              f"{'signed (C2PA)' if signed.signed else 'UNSIGNED label only'}")
    return 0
