"""Swap faces in one video, the whole of it or a frame range, and label the result.

Every frame of VIDEO is written to OUT; faces are swapped only on --frames (default: all
frames), the others pass through as decoded. Frame count, timing, timecode, colour tags
and audio follow the source. OUT is labelled synthetic media (container comment) and,
when a signing key is configured (`doppel keys init`, DOPPEL_SIGN_CERT/DOPPEL_SIGN_KEY or
the preset's `signing:`), carries a signed C2PA manifest.

The output codec is --codec, else the preset's, else the source's own when Doppel can
write it (h264, prores, ffv1, dnxhd), else chosen by OUT's extension.

Smart render: when the output codec is the source's, only the GOPs that hold swapped
frames are decoded and re-encoded; every other GOP is stream-copied (its packets
bit-exact, audio packets copied as they are). GOPs holding packets the source's edit list
hides (or that do not decode) are always re-encoded, so the output shows exactly the
source's frames. GOPs are cut only where the stream allows
it (an IDR with no B-frames reaching back across it; every frame for intra codecs).
Otherwise (another codec, open GOPs everywhere, MXF out, a span that does not fit) every
frame is re-encoded, untouched frames straight from the decoder. The summary says which
path was taken and why (`--json`: "path": "smart" | "reencode", "reason",
"frames_copied", "frames_encoded", "spans").

Image sequences (EXR, DPX, TIFF, PNG: a pattern such as plates/shot.%04d.exr, or its folder) swap
into a sequence of the same kind (OUT a pattern in a new folder, e.g. out/shot/shot.%04d.exr) with
the source's frame numbers; --frames counts frames from 0 (the first file) as for movies. The
folder appears only complete, with its C2PA sidecar (shot.c2pa) inside when signing is set up.
Give the sequence's --rate (files carry none). Deep frames (EXR, DPX) are composited at their
depth; every pixel outside the pasted face is written as decoded. A sequence OUT's matte pass is
written as sequences beside it (out/shot.matte/shot.matte.%04d.exr: EXR Y+A float mask, plate RGBA;
DPX/TIFF/PNG: 16-bit grey mask, 16-bit RGBA plate), same frame numbers.

Matte pass (--matte / --plate, or the preset's `output.matte` / `output.plate`): beside OUT,
`<stem>.matte.mov` holds the blend mask used on every frame (ProRes 4444: the mask in alpha,
10-bit lossless, and in luma; black on frames nothing was swapped on, stream-copied GOPs
included) and `<stem>.plate.mov` the unblended swapped face with that alpha; same frame count,
timing and start timecode as OUT, labelled and signed like it (`--json`: "matte", "plate").

Occlusion (--occlusion, or the preset's `occlusion`; default auto): what stands in front of the
face stays in front: reconstruction flags where the source person's own decoder disagrees with
the frame; learned asks the model's occluder segmenter (`doppel train-segmenter`); auto is
learned for a model that has one, else reconstruction.
--holdout MATTE is a compositor's hold-out matte for the shot
(any clip PyAV reads, grey or alpha, one frame per source frame, same size): where it is white
or opaque the frame is never changed, whatever the occlusion mode.

Examples:
  doppel swap plates/shot.%04d.exr --model models/demo --out swapped/shot/shot.%04d.exr --rate 24
  doppel swap interview.mp4 --model models/demo --out interview.swapped.mp4
  doppel swap take3.mov --model models/jane --out take3.jane.mov --frames 120-480 --preset prores_hq
  doppel swap clip.mp4 --model models/demo --out out.mp4 --direction b2a --json
  doppel swap shot.mov --model models/demo --out shot.swapped.mov --holdout shot.roto.mov --occlusion off
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

from renderer import media
from renderer.atomic import check_new_output, temp_dir_for
from renderer.composite import OCCLUSION_MODES
from renderer.commands.probe import add_rate_argument, parse_rate
from renderer.errors import InputError
from renderer.swap import PRECISIONS, RUNTIMES, SwapModel, SwapSettings, SwapStats, render_range, swap_settings

_SOURCE_CODECS = {"h264": "h264", "hevc": "h265", "prores": "prores_hq", "ffv1": "ffv1", "dnxhd": "dnxhr_hq"}
# Deep 4:4:4 or 10-bit sources of the intra codecs keep their layout and depth by default.
_DEEP_SOURCE_CODECS = {("prores", "444"): "prores_4444", ("dnxhd", "444"): "dnxhr_444", ("dnxhd", "422"): "dnxhr_hqx"}
_SUFFIX_CODECS = {".mp4": "h264", ".mov": "prores_hq", ".mkv": "ffv1", ".mxf": "dnxhr_hq"}
# A span spliced between stream-copied GOPs is a second generation of the source: code it
# near-transparently so its untouched pixels stay within ~45 dB of the source (measured on a crf-18 source: crf 18 gave 41-46 dB, crf 12 and 10 just under 45, crf 8 passes; 6 keeps a margin).
SPAN_OPTIONS: dict[str, dict[str, str]] = {"h264": {"crf": "6"}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=Path, metavar="VIDEO",
                        help="source video or image sequence (shot.%%04d.exr, or its folder; never modified)")
    parser.add_argument("--model", type=Path, required=True, metavar="MODEL_DIR", help="trained model (doppel train)")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT", help="output file (.mp4, .mov, .mkv, .mxf)")
    parser.add_argument("--frames", metavar="START-END", help="swap only these frames (inclusive, 0-based)")
    parser.add_argument("--preset", metavar="PRESET", help="preset name or YAML file (detector, mask, colour, ...)")
    parser.add_argument("--direction", choices=("a2b", "b2a"), help="a2b: A's face becomes B (default: preset's)")
    parser.add_argument("--codec", choices=tuple(media.CODECS), help="output codec (default: see above)")
    parser.add_argument("--device", metavar="DEV", help="cpu, cuda, cuda:N or mps (default: best available)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists (default: refuse)")
    add_rate_argument(parser)
    parser.add_argument("--matte", action="store_true",
                        help="also write the blend mask as OUT's <stem>.matte.mov (default: preset's output.matte)")
    parser.add_argument("--plate", action="store_true",
                        help="also write the unblended face plate <stem>.plate.mov (default: preset's output.plate)")
    parser.add_argument("--occlusion", choices=OCCLUSION_MODES,
                        help="how occluders in front of the face are found (default: preset's, else auto: learned "
                             "with an occluder segmenter, else reconstruction)")
    parser.add_argument("--holdout", type=Path, metavar="MATTE",
                        help="hold-out matte clip for the shot: its white/opaque pixels are never changed")
    parser.add_argument("--upscale", choices=("auto", "on", "off"),
                        help="B's face upscaler (doppel train-upscaler): auto uses it when the model has one, "
                             "on requires it, off pastes the decoder's own size (default: preset's, else auto)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="the network's arithmetic: auto is bf16 where the processor computes it natively "
                             "(about half the time, the face 0.2 code values from fp32's on average, 3.5 at most), "
                             "else fp32; fp32 for renders that must match across unlike machines "
                             "(default: preset's, else auto)")
    parser.add_argument("--runtime", choices=RUNTIMES,
                        help="what runs the network: auto is OpenVINO on the CPU without B's face upscaler (no "
                             "torch import, ~1 s sooner to the first frame; a face in ~0.6x torch's time at bf16), "
                             "ONNX Runtime there at fp32 where OpenVINO is missing, torch elsewhere (a GPU, the "
                             "upscaler); at fp32 the face is within float32 rounding of torch's on each "
                             "(default: preset's, else auto)")
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
    if media.is_deep(info.pix_fmt):
        by_source = _DEEP_SOURCE_CODECS.get((info.codec, "444" if "444" in info.pix_fmt or info.pix_fmt.startswith("gbr")
                                             else "422"), by_source)
    if by_source and out.suffix.lower() in media.CODECS[by_source].containers:
        return by_source
    if out.suffix.lower() not in _SUFFIX_CODECS:
        raise InputError(f"--out {out}: unknown container {out.suffix!r} (allowed: {', '.join(_SUFFIX_CODECS)})")
    return _SUFFIX_CODECS[out.suffix.lower()]


def smart_plan(info: media.MediaInfo, codec: str, out: Path, pix_fmt: str | None,
               swap_range: tuple[int, int]) -> tuple[list[tuple[int, int]], str | None]:
    """(spans to re-encode, None) when smart render applies, else ([], the reason it does not)."""
    if _SOURCE_CODECS.get(info.codec) != codec:
        return [], f"output codec {codec} is not the source's ({info.codec}): every frame is re-encoded"
    if out.suffix.lower() == ".mxf":
        return [], "MXF output is always re-encoded (its muxer does not take spliced streams)"
    if (pix_fmt or info.pix_fmt) != info.pix_fmt or info.pix_fmt not in media.CODECS[codec].pix_fmts:
        return [], f"pixel format {pix_fmt or info.pix_fmt} differs from what the source stream holds ({info.pix_fmt})"
    cuts = media.cut_points(info)
    if cuts.reason:
        return [], cuts.reason
    spans = media.gop_spans(cuts, [swap_range])
    if spans == [(0, info.frames - 1)]:
        return [], "every GOP holds swapped frames (no GOP can be stream-copied)"
    return spans, None


def _add_stats(total: SwapStats, part: SwapStats) -> None:
    total.frames += part.frames
    total.swapped += part.swapped
    total.faces += part.faces
    total.preroll += part.preroll
    for why, n in part.passed_through.items():
        total.passed_through[why] = total.passed_through.get(why, 0) + n
    for stage, sec in part.seconds.items():
        total.seconds[stage] = total.seconds.get(stage, 0.0) + sec
    for point, t in part.timeline.items():
        total.timeline[point] = min(t, total.timeline.get(point, t))
    total.precision = part.precision or total.precision
    total.runtime = part.runtime or total.runtime
    for proc, mib in part.peak_rss_mib.items():
        total.peak_rss_mib[proc] = max(mib, total.peak_rss_mib.get(proc, mib))


def render_smart(video: Path, out: Path, *, spans: list[tuple[int, int]], swap_range: tuple[int, int],
                 info: media.MediaInfo, model_dir: Path, model: SwapModel, settings: SwapSettings, codec: str,
                 metadata: dict[str, str], progress: bool, name: str | None = None,
                 matte: media.MatteWriter | None = None) -> tuple[SwapStats, media.SpliceResult]:
    """Re-encode each span (swapping faces on `swap_range`) into a temp file, then splice them
    into a stream copy of the source. Raises media.MediaError (SpliceError included) when the
    spans cannot be joined; nothing is left under `out` then. `name`: what the progress bar says.
    `matte` (open, from source frame 0) gets every frame: the spans' masks, empty for copied GOPs."""
    import time

    stats = SwapStats()
    t0 = time.perf_counter()
    name = name or out.name
    work = temp_dir_for(out)  # named after OUT, so a later run clears it if this one is killed
    try:
        parts = []
        bar = tqdm(total=sum(g1 - g0 + 1 for g0, g1 in spans), unit="frame", desc=f"{name} (re-encode)",
                   disable=not progress, file=sys.stderr)
        try:
            for g0, g1 in spans:
                part = work / f"span-{g0:08d}{out.suffix}"
                base = bar.n
                if matte is not None:
                    matte.fill_to(g0)  # stream-copied GOPs: nothing swapped there
                _add_stats(stats, render_range(
                    video, part, model_dir=model_dir, settings=settings, first=g0, last=g1, swap_ranges=[swap_range],
                    codec=codec, pix_fmt=info.pix_fmt, audio=False, model=model, options=SPAN_OPTIONS.get(codec), info=info,
                    progress=lambda done, _total, base=base: bar.update(base + done - bar.n), matte=matte))
                parts.append((g0, g1, part))
            if matte is not None:
                matte.fill_to(info.frames)
        finally:
            bar.close()
        bar = tqdm(total=info.frames, unit="frame", desc=f"{name} (splice)", disable=not progress,
                   file=sys.stderr)
        t_encode = time.perf_counter()
        try:
            result = media.splice(video, out, parts, info=info, metadata=metadata,
                                  progress=lambda n: bar.update(n - bar.n))
        finally:
            bar.close()
        stats.seconds["encode"] += time.perf_counter() - t_encode
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stats.frames += result.copied
    stats.passed_through["outside range"] += result.copied
    stats.seconds["total"] = time.perf_counter() - t0
    return stats, result


def run(args: argparse.Namespace) -> int:
    from renderer.presets import load_preset, preset_sha256
    from renderer.provenance import claim_for_model, label_metadata, matte_label, resolve_signing_identity, signed_output

    source_is_sequence = media.is_sequence_path(args.video)
    if not args.video.is_file() and not source_is_sequence:
        raise InputError(f"video {args.video} does not exist")
    if args.out.resolve() == args.video.resolve():
        raise InputError(f"--out {args.out} is the source video itself; the source is never written")
    if args.holdout is not None and args.out.resolve() == args.holdout.resolve():
        raise InputError(f"--out {args.out} is the --holdout matte itself; the matte is only read")
    to_sequence = media.is_sequence_path(args.out)
    rate = parse_rate(args.rate)
    preset = load_preset(args.preset) if args.preset else None
    settings = (swap_settings(preset, direction=args.direction, device=args.device) if preset
                else SwapSettings(direction=args.direction or "a2b", device=args.device))
    if args.precision:
        settings = dataclasses.replace(settings, precision=args.precision)
    if args.runtime:
        settings = dataclasses.replace(settings, runtime=args.runtime)
    if args.upscale:
        settings = dataclasses.replace(settings, upscale=args.upscale)
    # The card is read now (a bad card fails before any work); the network (torch, weights) loads
    # in a process of its own while the source is probed and checked and the first frames decode
    # and are tracked, and runs the batches there (`renderer.model_process`).
    model = SwapModel(args.model, settings.direction, settings.device, process=args.model_process or True,
                      precision=settings.precision, runtime=settings.runtime, upscale=settings.upscale)
    try:
        info = media.probe(args.video, rate=rate)
        if to_sequence and info.sequence is not None and \
                media.parse_sequence(args.out).folder.resolve() == info.sequence.pattern.folder.resolve():
            raise InputError(f"--out {args.out} is in the source sequence's folder; a sequence is written as its own "
                             f"new folder and the source is never written")
        check_new_output(args.out, "--out", force=args.force)
        passes = {kind: path for kind, path, wanted in zip(
            ("matte", "plate"), media.matte_paths(args.out),
            (args.matte or bool(preset and preset.output.matte), args.plate or bool(preset and preset.output.plate)))
            if wanted}
        for kind, path in passes.items():
            if path.resolve() == args.video.resolve():
                raise InputError(f"the {kind} {path} would be the source video itself; the source is never written")
            check_new_output(path, f"the {kind} of --out", force=args.force)
        first, last = parse_frames(args.frames, info.frames) if args.frames else (0, info.frames - 1)
        if args.occlusion or args.holdout:
            settings = dataclasses.replace(
                settings, holdout=args.holdout or settings.holdout,
                occlusion=dataclasses.replace(settings.occlusion, mode=args.occlusion or settings.occlusion.mode))
        codec = args.codec or (preset.output.codec if preset and not args.codec else None)
        if to_sequence:
            codec = "sequence"  # the kind of file comes from OUT's suffix; no codec profile
        else:
            codec = choose_codec(codec, info, args.out)
            media.check_output(args.out, media.resolve_codec(codec))
        for warning in info.warnings(None if to_sequence else codec):
            print(f"doppel swap: warning: {warning}", file=sys.stderr)
        pix_fmt = preset.output.writer_pix_fmt if preset else None
        signing = ({"cert": preset.signing.cert, "key": preset.signing.key}
                   if preset and preset.signing.cert and preset.signing.key else None)
        identity = resolve_signing_identity(signing, os.environ)  # a broken key fails here, before any frame
        claim = claim_for_model(args.video, args.model, [(first, last + 1)],
                                preset_sha256=preset_sha256(preset) if preset else None)
        metadata = label_metadata(claim, signed=identity is not None)

        if to_sequence or info.sequence is not None:
            spans, reason = [], "image sequences are written frame by frame (no GOPs to stream-copy)"
        else:
            spans, reason = smart_plan(info, codec, args.out, pix_fmt, (first, last))
        copied = 0
        stats: SwapStats | None = None
        with contextlib.ExitStack() as outputs:
            # Each pass clip is signed and renamed when its block closes, before OUT (entered first).
            target = outputs.enter_context(signed_output(args.out, claim, identity, source=args.video))
            pass_targets = {kind: outputs.enter_context(signed_output(path, claim, identity, source=args.video))
                            for kind, path in passes.items()}

            def matte_writer() -> contextlib.AbstractContextManager[media.MatteWriter | None]:
                if not passes:
                    return contextlib.nullcontext()
                labels = {kind: matte_label(claim, signed=identity is not None, kind=kind, output_name=args.out.name)
                          for kind in ("matte", "plate")}
                return media.open_matte_writer(  # sequences for a sequence OUT, else ProRes 4444 clips
                    info, 0, info.frames - 1, matte=pass_targets["matte"].tmp if "matte" in passes else None,
                    plate=pass_targets["plate"].tmp if "plate" in passes else None, color=media.output_color(info),
                    metadata=labels["matte"], plate_metadata=labels["plate"])

            if not reason:
                try:
                    with matte_writer() as matte:
                        stats, spliced = render_smart(args.video, target.tmp, spans=spans, swap_range=(first, last),
                                                      info=info, model_dir=args.model, model=model, settings=settings,
                                                      codec=codec, metadata=metadata, progress=not args.no_progress,
                                                      name=args.out.name, matte=matte)
                    copied = spliced.copied
                except media.MediaError as err:  # SpliceError, or a muxer refusing a copied stream
                    reason, stats = f"smart render failed, re-encoded everything instead: {err}", None
            if stats is None:
                spans = []
                bar = tqdm(total=info.frames, unit="frame", desc=args.out.name, disable=args.no_progress,
                           file=sys.stderr)
                try:
                    with matte_writer() as matte:
                        stats = render_range(
                            args.video, target.tmp, model_dir=args.model, settings=settings, first=0,
                            last=info.frames - 1, swap_ranges=[(first, last)], codec=codec, pix_fmt=pix_fmt,
                            metadata=metadata, model=model, progress=lambda done, total: bar.update(done - bar.n),
                            matte=matte, rate=rate, info=info,
                        )
                finally:
                    bar.close()
        signed = target.result
        assert signed is not None
        if signed.warning:
            print(f"doppel swap: {signed.warning}", file=sys.stderr)
        summary = {"source": str(args.video), "output": str(args.out), "codec": codec, "swap_range": [first, last],
                   "path": "reencode" if reason else "smart", "reason": reason,
                   "frames_copied": copied, "frames_encoded": stats.frames - copied,
                   "spans": [list(s) for s in spans], "signed": signed.signed, "warnings": info.warnings(codec),
                   "matte": str(passes["matte"]) if "matte" in passes else None,
                   "plate": str(passes["plate"]) if "plate" in passes else None,
                   **stats.to_json()}
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            passed = ", ".join(f"{n} {why}" for why, n in stats.passed_through.items() if n) or "none"
            how = (f"smart render: {copied} frames stream-copied, {stats.frames - copied} re-encoded" if not reason
                   else f"re-encoded every frame ({reason})")
            print(f"{args.out}: {stats.frames} frames, {stats.swapped} swapped ({stats.faces} faces), "
                  f"passed through: {passed}; {how}; {stats.to_json()['fps']} frames/s; "
                  f"{'signed (C2PA)' if signed.signed else 'UNSIGNED label only'}")
            for kind, path in passes.items():
                print(f"{path}: {kind} pass, {stats.frames} frames")
        return 0
    finally:
        model.close()  # no model process or load left running behind the command (tests, add-ons call main())
