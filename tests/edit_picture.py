"""What an edit shows, frame by frame: composing it, numbered media for it, comparing two.

`compose(timeline)` gives, for every record frame, the picture an NLE shows as OTIO defines
it: the topmost enabled video layer (gaps and disabled items are transparent), through
nested stacks, `LinearTimeWarp`/`FreezeFrame` and transitions (both sides of a dissolve).
Each layer names its media by file name (`media_key`) and the source time it asks of it.

`media_specs` + `write_media` make a movie per media reference that covers every frame the
cut shows: frame i shows the number i (top-left, `tests.media_factory` code) and the media's
id below it, so `decode_painted` reads back which media and frame a rendered file shows.
`check_return` compares two composed pictures (the cut and a return edit) frame by frame and
reports runs of record frames that differ.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import opentimelineio as otio
from opentimelineio.opentime import RationalTime as RT, TimeRange as TR

from tests.media_factory import paint_frame, paint_number, read_frame_number

MOVIE_SUFFIXES = {".mov", ".mp4", ".mxf", ".avi", ".mkv", ".m4v", ".mts", ".r3d", ".braw", ".dnx"}
IMAGE_SUFFIXES = {".exr", ".dpx", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".tga", ".cin"}
WIDTH, HEIGHT = 96, 54
ID_ROW = 10  # the media id is painted as a second number strip from this row down
HANDLE = 24  # media frames generated beyond the frames the cut shows, each side
MAX_MEDIA_FRAMES = 3000  # longer references are generated over the span the cut uses only
# An EDL event line; group 1 is the record in timecode.
_EDL_EVENT = re.compile(r"^\s*\d+\s+\S+\s+\S+\s+\S+(?:\s+\d+)?\s+\S+\s+\S+\s+(\d\d:\d\d:\d\d[:;]\d\d)\s+\S+\s*$",
                        re.MULTILINE)


# --------------------------------------------------------------------------- composing


@dataclass(frozen=True)
class Layer:
    """What one layer of the picture shows: `key` names the media (see `media_key`), `time` the
    source time asked of it; `clip` names the clip for messages; `url` is the reference's target."""

    key: str
    time: RT
    clip: str
    url: str | None = None
    unsupported: str | None = None  # a time effect this walk cannot compose, by name


Picture = tuple[Layer, ...]  # () = nothing (black); 2 layers during a transition (outgoing, incoming)


def ntsc(rate: float) -> Fraction:
    """23.976 -> 24000/1001 and the other NTSC rates exactly; integral rates as they are."""
    for base in (24, 30, 48, 60, 120):
        if abs(rate - base * 1000 / 1001) < 2e-3:
            return Fraction(base * 1000, 1001)
    return Fraction(rate).limit_denominator(1001)


def url_name(url: str) -> str:
    """The file name of a media URL or path, Windows paths included."""
    path = urllib.parse.unquote(urllib.parse.urlparse(url).path if "://" in url else url)
    return re.split(r"[\\/]", path)[-1]


def media_key(clip: otio.schema.Clip) -> str | None:
    """The generated media file name standing for `clip`'s media, None for generators.

    An external reference: its file name. A missing reference (EDL events without a path,
    OTIO files with media offline): the clip name (with `.mov` unless it names a movie file),
    as an editor relinks by name.
    """
    ref = clip.media_reference
    if isinstance(ref, otio.schema.ExternalReference) and ref.target_url:
        return url_name(ref.target_url)
    if isinstance(ref, otio.schema.ImageSequenceReference):
        return f"{ref.name_prefix}#{ref.name_suffix}"
    if ref is None or isinstance(ref, otio.schema.MissingReference):
        if not clip.name:
            return None
        # a name that is a movie file or a still/sequence frame ('take_2.0101.exr') stays as it is
        named = Path(clip.name).suffix.lower() in MOVIE_SUFFIXES | IMAGE_SUFFIXES
        return clip.name if named else f"{clip.name}.mov"
    return None


def _warp(item: otio.core.Item, offset: RT) -> tuple[RT, str | None]:
    """The item-local offset after its time effects, and the name of one that cannot be composed."""
    for effect in item.effects:
        if isinstance(effect, otio.schema.LinearTimeWarp):  # FreezeFrame is one with scalar 0
            offset = RT(offset.value * effect.time_scalar, offset.rate)
        elif isinstance(effect, otio.schema.TimeEffect):
            return offset, f"time effect '{effect.effect_name or effect.name or type(effect).__name__}'"
    return offset, None


# id(track) -> (the track, [(child, range in the track)]), computed once per track. The track is kept
# alive beside its spans: a Python wrapper of an OTIO object that is freed gives its id() to the
# next one made (a nested track read twice got another nested track's spans, and showed black).
Spans = dict[int, tuple[Any, list[tuple[Any, TR]]]]


def _spans(track: otio.schema.Track, spans: Spans) -> list[tuple[Any, TR]]:
    if id(track) not in spans:  # range_of_child_at_index walks the track: once, not per frame
        spans[id(track)] = (track, [(child, track.range_of_child_at_index(i)) for i, child in enumerate(track)])
    return spans[id(track)][1]


def _item_at(item: otio.core.Composable, offset: RT, spans: Spans) -> Picture | None:
    """The picture `item` shows `offset` after its record start; None when it is transparent."""
    if isinstance(item, otio.schema.Gap) or not getattr(item, "enabled", True):
        return None
    local, unsupported = _warp(item, offset)
    start = item.trimmed_range().start_time
    if isinstance(item, otio.schema.Clip):
        key = media_key(item)
        if key is None:
            ref = item.media_reference
            kind = getattr(ref, "generator_kind", "") or type(ref).__name__
            key = f"generator:{kind}:{item.name}"
        url = getattr(item.media_reference, "target_url", None)
        return (Layer(key, start + local, item.name, url, unsupported),)
    if isinstance(item, otio.schema.Stack):
        return _stack_at(item, start + local, spans)
    if isinstance(item, otio.schema.Track):
        return _track_at(item, start + local, spans)
    return None


def _track_at(track: otio.schema.Track, t: RT, spans: Spans) -> Picture | None:
    children = _spans(track, spans)
    for i, (child, span) in enumerate(children):
        if isinstance(child, otio.schema.Transition):
            if span.start_time <= t < span.end_time_exclusive() and 0 < i < len(children) - 1:
                (out_item, out_span), (in_item, in_span) = children[i - 1], children[i + 1]
                a = _item_at(out_item, t - out_span.start_time, spans) or ()
                b = _item_at(in_item, t - in_span.start_time, spans) or ()
                return a + b
    for child, span in children:
        if not isinstance(child, otio.schema.Transition) and span.start_time <= t < span.end_time_exclusive():
            return _item_at(child, t - span.start_time, spans)
    return None


def _stack_at(stack: otio.schema.Stack, t: RT, spans: Spans) -> Picture | None:
    for child in reversed(list(stack)):  # the last track is on top
        if not getattr(child, "enabled", True):
            continue
        if isinstance(child, otio.schema.Track) and child.kind != otio.schema.TrackKind.Video:
            continue
        pic = _item_at(child, t, spans) if not isinstance(child, otio.schema.Track) else _track_at(
            child, child.trimmed_range().start_time + t, spans)
        if pic is not None:
            return pic
    return None


def record_origin(timeline: otio.schema.Timeline, path: Path) -> int:
    """Record frame of the timeline's start: its global start time, or for an EDL the first event's
    record timecode (the cmx_3600 reader starts the track at 0 and drops it)."""
    rate = timeline_rate(timeline)
    if path.suffix.lower() == ".edl":
        starts = [otio.opentime.from_timecode(m.group(1), float(rate)).value
                  for m in _EDL_EVENT.finditer(path.read_text(encoding="utf-8", errors="replace"))]
        return round(min(starts)) if starts else 0
    if timeline.global_start_time is not None:
        return round(timeline.global_start_time.value_rescaled_to(float(rate)))
    return 0


def timeline_rate(timeline: otio.schema.Timeline) -> Fraction:
    if timeline.global_start_time is not None:
        return ntsc(timeline.global_start_time.rate)
    return ntsc(timeline.duration().rate)


def compose(timeline: otio.schema.Timeline, path: Path) -> dict[int, Picture]:
    """{absolute record frame: picture} over the whole timeline, topmost enabled video layer."""
    rate = timeline_rate(timeline)
    origin = record_origin(timeline, path)
    frames = round(timeline.duration().value_rescaled_to(float(rate)))
    video = [t for t in reversed(list(timeline.tracks)) if t.kind == otio.schema.TrackKind.Video and t.enabled]
    spans: Spans = {}
    out: dict[int, Picture] = {}
    for r in range(frames):
        t = RT(r, float(rate))
        pic: Picture | None = None
        for track in video:
            pic = _track_at(track, t, spans)
            if pic is not None:
                break
        out[origin + r] = pic or ()
    return out


# --------------------------------------------------------------------------- media


def source_count(time: RT, rate: Fraction) -> int:
    """Timecode count at `rate` of a source time (see MediaSpec.frame_of)."""
    if time.rate > 0 and abs(time.rate - float(rate)) <= 0.01 * float(rate):
        return math.floor(time.value + 1e-6)
    return math.floor(time.value_rescaled_to(float(rate)) + 1e-6)


@dataclass
class MediaSpec:
    """A generated movie: `frames` frames at `rate`, frame 0 at timecode count `start`."""

    name: str
    media_id: int
    rate: Fraction
    start: int
    frames: int
    path: Path | None = None  # None: not generated (a still or image sequence this walk cannot write)

    def frame_of(self, time: RT) -> int:
        """The media frame (0-based) a source time shows, rounded down. NLEs address media by timecode:
        at a near rate (23.976 in a 24 edit) the timecode count is the frame; rates apart (23.976 media
        in 29.97) play in real time."""
        return source_count(time, self.rate) - self.start


def _warped_range(clip: otio.schema.Clip) -> TR:
    """The media range a clip's time warp reads (a 2x clip hidden under an upper track reads twice
    its duration: Doppel renders it, so its media must hold those frames too)."""
    trimmed = clip.trimmed_range()
    ends = [trimmed.start_time + _warp(clip, offset)[0]
            for offset in (RT(0, trimmed.duration.rate), trimmed.duration)]
    return TR.range_from_start_end_time(min(ends), max(ends))


def _reference_ranges(timelines: Sequence[otio.schema.Timeline]
                      ) -> dict[str, list[tuple[Fraction, TR | None, TR]]]:
    """media key -> [(rate, the reference's available_range, the clip's trimmed range)] per clip."""
    refs: dict[str, list[tuple[Fraction, TR | None, TR]]] = {}
    for tl in timelines:
        for track in tl.video_tracks():
            for clip in track.find_clips():
                key = media_key(clip)
                if key is None:
                    continue
                avail = getattr(clip.media_reference, "available_range", None)
                rate = ntsc(avail.start_time.rate if avail is not None else clip.trimmed_range().start_time.rate)
                refs.setdefault(key, []).append((rate, avail, _warped_range(clip)))
    return refs


def media_specs(timelines: Sequence[otio.schema.Timeline], pictures: Iterable[dict[int, Picture]]) -> dict[str, MediaSpec]:
    """One MediaSpec per media key: the reference's rate, covering its available_range when short
    enough, every clip's source range (a clip hidden under an upper track renders too) and every
    frame the composed cut shows; HANDLE frames more each side where no available_range says more."""
    refs = _reference_ranges(timelines)
    rates = {key: entries[0][0] for key, entries in refs.items()}
    shown: dict[str, list[int]] = {
        key: [n for _, _, r in entries
              for n in (source_count(r.start_time, rates[key]), source_count(r.end_time_exclusive(), rates[key]) - 1)]
        for key, entries in refs.items()}
    for pic in pictures:
        for layers in pic.values():
            for layer in layers:
                if layer.key in rates:
                    shown.setdefault(layer.key, []).append(
                        source_count(layer.time, rates[layer.key]))
    specs: dict[str, MediaSpec] = {}
    for n, key in enumerate(sorted(refs), start=1):
        rate = rates[key]
        used = shown.get(key, [])
        avails = [a for _, a, _ in refs[key] if a is not None]
        a_lo = min((round(a.start_time.value_rescaled_to(float(rate))) for a in avails), default=None)
        a_hi = max((round(a.end_time_exclusive().value_rescaled_to(float(rate))) for a in avails), default=None)
        if a_lo is not None and a_hi is not None and (a_hi - a_lo <= MAX_MEDIA_FRAMES or not used):
            # the reference as the edit states it, widened only where the cut shows frames outside it
            lo = min([a_lo] + used)
            hi = max([min(a_hi, a_lo + MAX_MEDIA_FRAMES)] + [u + 1 for u in used])
        elif used:
            lo, hi = min(used) - HANDLE, max(used) + 1 + HANDLE
        else:
            continue
        if hi - lo > MAX_MEDIA_FRAMES + 2 * HANDLE and used:
            # an available_range far from what the clips use (Hiero's '/' clip: 0..1 vs 326400): the used span
            lo, hi = min(used) - HANDLE, max(used) + 1 + HANDLE
        lo = max(0, lo)
        hi = min(hi, lo + MAX_MEDIA_FRAMES + 2 * HANDLE)  # never an hour of media for a test
        specs[key] = MediaSpec(key, n, rate, lo, max(1, hi - lo))
    return specs


def write_media(spec: MediaSpec, folder: Path) -> MediaSpec:
    """Write `spec` as an H.264 movie (MOV when the name is not a movie container) with a timecode
    track at `spec.start`; frame i shows number i and the media id. Stills are not written."""
    name = Path(spec.name)
    if name.suffix.lower() not in MOVIE_SUFFIXES and name.suffix:
        return spec  # a still (.exr, .dpx, .png...) or image sequence: left to Doppel to refuse by name
    target = folder / re.sub(r"[\\/]", "_", spec.name).lstrip(".")  # a clip named '/' stays inside `folder`
    suffix = name.suffix.lower()
    container = {".mov": "mov", ".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska"}.get(suffix, "mov")
    tc = otio.opentime.to_timecode(RT(spec.start, float(spec.rate)), float(spec.rate), drop_frame=False)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial")
    with av.open(str(tmp), "w", format=container) as out:
        out.metadata["timecode"] = tc
        vs = out.add_stream("libx264", rate=spec.rate, options={"preset": "ultrafast", "crf": "12",
                                                                "x264-params": "bframes=0:scenecut=0"})
        vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        vs.metadata["timecode"] = tc
        vs.codec_context.time_base = 1 / spec.rate
        for i in range(spec.frames):
            rgb = paint_frame(i, WIDTH, HEIGHT)
            paint_number(rgb[ID_ROW:], spec.media_id)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
    tmp.replace(target)
    spec.path = target
    return spec


@dataclass(frozen=True)
class Decoded:
    """A media file's frames as painted: (media id, frame number) per decoded frame; `origin` is the
    timecode count of frame 0 at `rate`."""

    rate: Fraction
    origin: int
    frames: tuple[tuple[int, int], ...]


def decode_painted(path: Path) -> Decoded:
    """Read every frame's painted (media id, number) and the file's start timecode, with plain PyAV."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        rate = Fraction(s.average_rate or s.guessed_rate)
        tc = s.metadata.get("timecode") or c.metadata.get("timecode")
        frames = []
        for f in c.decode(s):
            rgb = f.to_ndarray(format="rgb24")
            frames.append((read_frame_number(rgb[ID_ROW:]), read_frame_number(rgb)))
    rate = ntsc(float(rate))
    origin = round(otio.opentime.from_timecode(tc, float(rate)).value) if tc else 0
    return Decoded(rate, origin, tuple(frames))



Ident = tuple[str, int, bool] | str  # (media name, media frame, from a rendered file?) or what went wrong


def _shape(idents: Sequence[Ident]) -> tuple[Any, ...]:
    """What must stay equal along a run of mismatching frames: names and flags, not frame numbers."""
    return tuple(i if isinstance(i, str) else (i[0], i[2]) for i in idents)


def _span(idents: list[Sequence[Ident]]) -> str:
    first, last = idents[0], idents[-1]
    parts = []
    for a, b in zip(first, last):
        if isinstance(a, str):
            parts.append(a)
        else:
            frames = f"{a[1]}" if a[1] == b[1] else f"{a[1]}..{b[1]}"  # type: ignore[index]
            parts.append(f"{a[0]}#{frames}{' (swapped)' if a[2] else ''}")
    return ", ".join(parts) or "nothing"


def _runs(bad: list[tuple[int, Sequence[Ident], Sequence[Ident], str]]) -> list[str]:
    """Group mismatching record frames into runs: 'record frames a-b: cut shows X#i..j, return shows Y#k..l'."""
    out: list[str] = []
    i = 0
    while i < len(bad):
        j = i
        while (j + 1 < len(bad) and bad[j + 1][0] == bad[j][0] + 1 and bad[j + 1][3] == bad[i][3]
               and _shape(bad[j + 1][1]) == _shape(bad[i][1]) and _shape(bad[j + 1][2]) == _shape(bad[i][2])):
            j += 1
        frames = f"record frame {bad[i][0]}" if i == j else f"record frames {bad[i][0]}-{bad[j][0]}"
        wants = [w for _, w, _, _ in bad[i:j + 1]]
        gots = [g for _, _, g, _ in bad[i:j + 1]]
        text = bad[i][3] or f"cut shows {_span(wants)}, return shows {_span(gots)}"
        out.append(f"{frames}: {text}")
        i = j + 1
    return out


class Resolver:
    """Source frame identity of a layer: (media id, media frame, synthetic?)."""

    def __init__(self, specs: dict[str, MediaSpec], out_dir: Path):
        self.specs = specs
        self.out_dir = out_dir.resolve()
        self.decoded: dict[Path, Decoded | str] = {}
        self.by_id = {s.media_id: s for s in specs.values()}
        self.paths: dict[tuple[str | None, str], Path | None] = {}

    def rendered_path(self, layer: Layer) -> Path | None:
        """The rendered file a layer shows (under the render's out folder), None for source media."""
        if (layer.url, layer.key) not in self.paths:
            self.paths[layer.url, layer.key] = self._rendered_path(layer)
        return self.paths[layer.url, layer.key]

    def _rendered_path(self, layer: Layer) -> Path | None:
        if layer.url:
            try:
                path = Path(otio.url_utils.filepath_from_url(layer.url)) if "://" in layer.url else Path(layer.url)
            except Exception:
                path = Path(layer.url)
            if path.is_absolute() and self.out_dir in path.resolve().parents:
                return path
        candidate = self.out_dir / "media" / layer.key
        return candidate if candidate.is_file() else None

    def __call__(self, layer: Layer) -> Ident:
        if layer.unsupported:
            return f"{layer.unsupported} on clip '{layer.clip}'"
        rendered = self.rendered_path(layer)
        if rendered is not None:
            if rendered not in self.decoded:
                try:
                    self.decoded[rendered] = decode_painted(rendered)
                except (OSError, av.FFmpegError, IndexError) as err:
                    self.decoded[rendered] = f"cannot decode {rendered.name}: {err}"
            dec = self.decoded[rendered]
            if isinstance(dec, str):
                return dec
            i = source_count(layer.time, dec.rate) - dec.origin
            if not 0 <= i < len(dec.frames):
                return f"frame {i} outside rendered file {rendered.name} (0..{len(dec.frames) - 1})"
            media_id, number = dec.frames[i]
            spec = self.by_id.get(media_id)
            return (spec.name if spec else f"id{media_id}", number, True)
        spec = self.specs.get(layer.key)
        if spec is None:
            return (layer.key, 0, False)  # generators and ungenerated media: identity by name
        return (spec.name, spec.frame_of(layer.time), False)


def check_return(original: dict[int, Picture], returned: dict[int, Picture], resolve: Resolver,
                 marked: set[str], refused: dict[str, str], *, swapped_only: bool = False) -> tuple[int, list[str]]:
    """Compare two composed pictures frame by frame; (frames compared, problem runs).

    `marked`: names of the clips the editor marked; their layers must come from a rendered file
    unless `refused` names them. `swapped_only`: the return holds only the swapped shots (an EDL
    return: CMX 3600 has one track), so it is compared with the marked layers of the cut, at the
    cut's record timecodes, and must cover every frame of them."""
    bad: list[tuple[int, Sequence[Ident], Sequence[Ident], str]] = []
    checked = 0
    for frame in sorted(set(original) | set(returned)):
        want_layers = original.get(frame, ())
        got_layers = returned.get(frame, ())
        if swapped_only:
            want_layers = tuple(layer for layer in want_layers if layer.clip in marked and layer.clip not in refused)
            if not want_layers and not got_layers:
                continue
        want = [resolve(layer) for layer in want_layers]
        if any(not isinstance(w, str) and w[1] < 0 for w in want):
            continue  # the cut itself asks for media before its first frame (a dissolve without handles)
        checked += 1
        got = [resolve(layer) for layer in got_layers]
        want_ids = [w if isinstance(w, str) else w[:2] for w in want]
        got_ids = [g if isinstance(g, str) else g[:2] for g in got]
        if want_ids != got_ids:
            bad.append((frame, want, got, ""))
            continue
        unswapped = [layer.clip for layer, g in zip(want_layers, got)
                     if not isinstance(g, str) and not g[2] and layer.clip in marked and layer.clip not in refused]
        if unswapped:
            names = " and ".join(f"'{c}'" for c in dict.fromkeys(unswapped))
            bad.append((frame, want, got, f"clip {names} is marked but the return shows its original frames "
                                          f"(not swapped, not refused)"))
    return checked, _runs(bad)
