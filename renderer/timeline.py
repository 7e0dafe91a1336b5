"""Edits in and out: find the FACESWAP-marked clips, map timecode to media frames, write the return edit.

Formats go through the official OpenTimelineIO adapters: `.otio`, `.otioz`
(OTIO), `.xml` (FCP7 XML: Premiere, Resolve), `.fcpxml` (Final Cut Pro), `.edl`
(CMX 3600: Avid, anything), `.aaf` (Avid).

Marking convention. A clip is marked when it carries a marker whose name starts
with `FACESWAP` (any case, any colour), or clip metadata `doppel: {faceswap: true}`.
Words `key=value` in the marker name or comment override preset keys for that clip
(`FACESWAP model=jane colour=rct`); clip metadata `doppel: {key: value}` does too,
markers win. A marker with a duration limits the swap to that part of the clip; a
point marker (duration 0) means the whole clip. Each FACESWAP marker is one job.

Time. NLE ranges are timecode counts: a clip whose media starts at 01:00:00:00 has
source times near 86400 frames at 24 fps. PyAV frames count from 0. A source time
becomes a media frame index by rescaling to the media's own rate and subtracting
the media's own start timecode (drop-frame aware); when the media has no timecode,
the edit's `available_range` start is the origin, else 0.

Adapter quirks we live with: EDL `* LOC:` markers are point markers (so they mark
whole clips) with upper-cased names, and EDLs carry no rate (pass `edl_rate`) and
no `available_range`; FCP7 XML reports every marker colour as red; FCPXML keeps
only red/green markers; AAF writing drops markers (fine for a return edit).
"""

from __future__ import annotations

import copy
import math
import re
import shlex
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import opentimelineio as otio
from opentimelineio.opentime import RationalTime, TimeRange

from renderer.atomic import atomic_output
from renderer.errors import InputError

if TYPE_CHECKING:
    from renderer.presets import Preset

MARK_WORD = "FACESWAP"
RETURN_TRACK = "FACESWAP"
METADATA_KEY = "doppel"

# extension -> OTIO adapter name. Every one of them reads and writes.
ADAPTERS: dict[str, str] = {
    ".otio": "otio_json",
    ".otioz": "otioz",
    ".xml": "fcp_xml",
    ".fcpxml": "fcpx_xml",
    ".edl": "cmx_3600",
    ".aaf": "AAF",
}
FORMAT_NAMES = {
    ".otio": "OpenTimelineIO", ".otioz": "OpenTimelineIO zip bundle", ".xml": "FCP7 XML (Premiere, Resolve)",
    ".fcpxml": "FCPXML (Final Cut Pro)", ".edl": "CMX 3600 EDL", ".aaf": "AAF (Avid)",
}


# An EDL event line: number, reel, track, transition [duration], src in/out, rec in/out.
_EDL_EVENT = re.compile(r"^\s*\d+\s+\S+\s+\S+\s+\S+(?:\s+\d+)?\s+\S+\s+\S+\s+(\d\d:\d\d:\d\d[:;]\d\d)\s+\S+\s*$",
                        re.MULTILINE)


class MediaInfoLike(Protocol):
    """What `find_marked_clips` needs from `renderer.media.probe(path)`."""

    fps: Fraction
    frames: int
    timecode: str | None


Probe = Callable[[Path], MediaInfoLike]


@dataclass(frozen=True)
class MarkedClip:
    """One swap job found in an edit.

    `source_first_frame`/`source_last_frame` are 0-based media frame indices,
    inclusive, already converted from timecode, handles NOT included.
    `record_range` is where the swapped part sits on its track (track time, edit rate);
    `record_timecode` is the same start as sequence timecode.
    """

    track_index: int  # index among the timeline's video tracks, 0 = bottom
    clip_index: int  # index of the clip among its track's children
    clip_name: str
    media_path: Path
    record_range: TimeRange
    record_timecode: str
    source_first_frame: int
    source_last_frame: int
    overrides: dict[str, str] = field(hash=False)
    media_timecode: str | None
    rate: Fraction  # the media's frame rate
    media_frames: int
    marker: str  # the marker text that marked it ("" for clip metadata), for messages

    @property
    def frames(self) -> int:
        return self.source_last_frame - self.source_first_frame + 1

    def with_handles(self, handles: int) -> tuple[int, int]:
        """(first, last) media frames including `handles` each side, clamped to the media."""
        return max(0, self.source_first_frame - handles), min(self.media_frames - 1, self.source_last_frame + handles)

    def describe(self) -> str:
        """"track V2 clip 'A003' (marker 'FACESWAP colour=rct')" for messages."""
        mark = f" (marker '{self.marker}')" if self.marker else " (clip metadata)"
        return f"track V{self.track_index + 1} clip '{self.clip_name}'{mark}"


@dataclass(frozen=True)
class RenderedClip:
    """A rendered file for one MarkedClip, as `write_return_edit` places it.

    `first_frame` is the media frame of the source that the file's frame 0 shows
    (the clip's first frame minus the handles actually rendered); `timecode` is the
    file's start timecode (usually the source timecode of `first_frame`).
    """

    clip: MarkedClip
    path: Path
    first_frame: int
    frames: int
    timecode: str


# --------------------------------------------------------------------------- reading


def read_edit(path: str | Path, *, edl_rate: Fraction | float | None = None) -> otio.schema.Timeline:
    """Read an edit through the OTIO adapter its extension names. Raises InputError.

    `edl_rate` is the frame rate of a CMX 3600 EDL (EDLs do not record one; default 24).
    An `.otioz` bundle is unpacked into a private temporary folder (`renderer.otioz`) and its
    media references made absolute, so media resolve as for any other edit.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ADAPTERS:
        raise InputError(
            f"cannot read edit {path}: unsupported extension '{path.suffix}'; supported: "
            + ", ".join(f"{ext} ({name})" for ext, name in FORMAT_NAMES.items())
        )
    if not path.is_file():
        raise InputError(f"edit {path} does not exist (or is not a file)")
    kwargs: dict[str, Any] = {}
    if suffix == ".edl":
        kwargs["rate"] = float(edl_rate) if edl_rate else 24.0
    extracted: Path | None = None
    try:
        if suffix == ".otioz":
            from renderer.otioz import unpack  # a private folder per read, size-capped

            extracted = unpack(path)
            timeline = otio.adapters.read_from_file(str(extracted / "content.otio"), adapter_name="otio_json")
        else:
            timeline = otio.adapters.read_from_file(str(path), adapter_name=ADAPTERS[suffix], **kwargs)
    except InputError:
        raise
    except (zipfile.BadZipFile, otio.exceptions.OTIOError, ValueError, KeyError, AttributeError,
            IndexError, TypeError, UnicodeDecodeError, OSError) as err:
        hint = (f" (EDLs carry no frame rate; it was read at {kwargs['rate']:g} fps: pass the edit's rate, "
                f"e.g. --edl-rate 25)") if suffix == ".edl" else ""
        raise InputError(
            f"cannot read edit {path} as {FORMAT_NAMES[suffix]}: {type(err).__name__}: {err}{hint}; "
            f"supported: {', '.join(FORMAT_NAMES)}"
        ) from err
    except Exception as err:  # adapters raise bare Exception or xml ParseError on garbage
        raise InputError(
            f"cannot read edit {path} as {FORMAT_NAMES[suffix]}: {type(err).__name__}: {err}"
        ) from err
    if isinstance(timeline, otio.schema.SerializableCollection):
        timelines = list(timeline.find_children(descended_from_type=otio.schema.Timeline))
        if not timelines:
            raise InputError(f"edit {path} holds no timeline")
        timeline = timelines[0]
    if not isinstance(timeline, otio.schema.Timeline):
        raise InputError(f"edit {path} holds a {type(timeline).__name__}, not a timeline")
    check_rates(timeline, path)
    if suffix == ".edl" and timeline.global_start_time is None:
        # The adapter starts the track at 0 and forgets the record timecode of the first
        # event (Avid's are at 01:00:00:00): keep it, so record timecodes match the NLE.
        rate = kwargs["rate"]
        starts = [otio.opentime.from_timecode(m.group(1), rate).value
                  for m in _EDL_EVENT.finditer(path.read_text(encoding="utf-8", errors="replace"))]
        if starts:
            timeline.global_start_time = RationalTime(min(starts), rate)
    if extracted is not None:
        for clip in timeline.find_clips():
            ref = clip.media_reference
            if isinstance(ref, otio.schema.ExternalReference) and ref.target_url and "://" not in ref.target_url:
                if not Path(ref.target_url).is_absolute():
                    ref.target_url = str(extracted / ref.target_url)
    return timeline


def check_rates(timeline: otio.schema.Timeline, path: Path) -> None:
    """InputError naming the first time in the edit whose rate or value is not a finite number (rates also > 0).

    OTIO reads `"rate": NaN` (and 0, or infinity) without complaint; frame arithmetic fails much later
    (`round(nan)`, timecode of a NaN rate) with a traceback, so the edit is refused here, as it is read.
    """
    def bad(t: RationalTime | None) -> bool:
        return t is not None and not (math.isfinite(t.rate) and t.rate > 0 and math.isfinite(t.value))

    def check(t: RationalTime | None, what: str) -> None:
        if bad(t):
            assert t is not None
            raise InputError(f"edit {path}: {what} is at rate {t.rate!r} (value {t.value!r}); a time needs a "
                             f"frame rate that is a finite number > 0 and a finite value")

    check(timeline.global_start_time, "the timeline's start time")
    for item in timeline.find_children():
        what = f"{type(item).__name__.lower()} '{item.name}'"
        for field in ("source_range",):
            span = getattr(item, field, None)
            if span is not None:
                check(span.start_time, f"the {field} start of {what}")
                check(span.duration, f"the {field} duration of {what}")
        for offset in ("in_offset", "out_offset"):  # transitions
            check(getattr(item, offset, None), f"the {offset} of {what}")
        for marker in getattr(item, "markers", None) or ():
            check(marker.marked_range.start_time, f"marker '{marker.name}' of {what}")
            check(marker.marked_range.duration, f"marker '{marker.name}' of {what}")
        available = getattr(getattr(item, "media_reference", None), "available_range", None)
        if available is not None:
            check(available.start_time, f"the media's available_range of {what}")
            check(available.duration, f"the media's available_range of {what}")


def parse_marker_words(text: str, where: str) -> dict[str, str]:
    """`key=value` words of a marker name or comment -> dict (keys lower-cased).

    The leading FACESWAP word is skipped; any other word without `=` is an error.
    """
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    out: dict[str, str] = {}
    for i, word in enumerate(words):
        if i == 0 and word.upper().startswith(MARK_WORD) and "=" not in word:
            continue
        if "=" not in word or word.startswith("="):
            raise InputError(
                f"word '{word}' in {where} is not key=value; write overrides like "
                f"'FACESWAP colour=rct model=jane'"
            )
        key, value = word.split("=", 1)
        out[key.strip().lower()] = value.strip()
    return out


def _url_to_path(url: str) -> Path:
    if url.startswith("file:"):
        parsed = urllib.parse.urlparse(url)
        return Path(urllib.request.url2pathname(parsed.path))
    return Path(urllib.parse.unquote(url)) if "%" in url else Path(url)


def _resolve_media(url: str, edit_dir: Path, roots: Sequence[Path]) -> tuple[Path | None, list[Path]]:
    """(found path or None, every place looked). Relative paths: edit folder, then roots."""
    given = _url_to_path(url)
    tried: list[Path] = []
    candidates: list[Path] = []
    if given.is_absolute():
        candidates.append(given)
        rel = Path(given.name)
    else:
        candidates.append(edit_dir / given)
        rel = given
    for root in roots:
        candidates.append(Path(root) / rel)
        if rel.name != str(rel):
            candidates.append(Path(root) / rel.name)
    if given.is_absolute():
        candidates.append(edit_dir / given.name)
    for cand in candidates:
        if cand in tried:
            continue
        tried.append(cand)
        if cand.is_file():
            return cand, tried
    return None, tried


def _frame_at(time: RationalTime, rate: Fraction) -> int:
    """Timecode count of `time` at the media's `rate` (NTSC rates stay exact)."""
    return round(time.value_rescaled_to(float(rate)))


def _timecode_frames(tc: str, rate: Fraction) -> int:
    """Frame count of a timecode string at `rate` (drop-frame when it has ';')."""
    from renderer.media import timecode_to_frame

    return timecode_to_frame(tc, rate)


def to_timecode(frames: int, rate: Fraction, drop_frame: bool | None = None) -> str:
    """Frame count -> 'HH:MM:SS:FF' (or ';FF' drop-frame for 29.97/59.94 when asked)."""
    df = otio.opentime.IsDropFrameRate.InferFromRate if drop_frame is None else (
        otio.opentime.IsDropFrameRate.ForceYes if drop_frame else otio.opentime.IsDropFrameRate.ForceNo)
    return otio.opentime.to_timecode(RationalTime(frames, float(rate)), float(rate), df)


def _marked_ranges(clip: otio.schema.Clip, where: str) -> list[tuple[TimeRange, dict[str, str], str]]:
    """[(source range to swap, overrides, marker text)] for one clip; [] when unmarked."""
    meta = clip.metadata.get(METADATA_KEY) if clip.metadata else None
    base: dict[str, str] = {}
    meta_marked = False
    if meta:
        if not hasattr(meta, "items"):
            raise InputError(f"clip metadata '{METADATA_KEY}' of {where} must be a mapping, got {meta!r}")
        for key, value in meta.items():
            if str(key).lower() == "faceswap":
                meta_marked = bool(value) and str(value).lower() not in ("false", "0", "no")
            else:
                base[str(key).lower()] = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        meta_marked = meta_marked or bool(base)
    visible = clip.trimmed_range()
    found: list[tuple[TimeRange, dict[str, str], str]] = []
    for marker in clip.markers:
        name = (marker.name or "").strip()
        if not name.upper().startswith(MARK_WORD):
            continue
        mwhere = f"marker '{name}' on {where}"
        overrides = dict(base)
        overrides.update(parse_marker_words(name, mwhere))
        if marker.comment:
            overrides.update(parse_marker_words(marker.comment, f"the comment of {mwhere}"))
        mr = marker.marked_range
        if mr.duration.value <= 0:
            span = visible
        else:
            start = max(mr.start_time, visible.start_time)
            end = min(mr.end_time_exclusive(), visible.end_time_exclusive())
            if end <= start:
                raise InputError(
                    f"{mwhere} covers {mr.start_time.to_timecode()}-{mr.end_time_exclusive().to_timecode()}, "
                    f"outside the used part of the clip "
                    f"({visible.start_time.to_timecode()}-{visible.end_time_exclusive().to_timecode()})"
                )
            span = TimeRange(start, end - start)
        found.append((span, overrides, name))
    if not found and meta_marked:
        found.append((visible, base, ""))
    return found


def find_marked_clips(
    timeline: otio.schema.Timeline,
    edit_path: str | Path,
    media_roots: Sequence[str | Path] = (),
    probe: Probe | None = None,
) -> list[MarkedClip]:
    """Every FACESWAP job in `timeline`, bottom track first, in record order.

    Media references resolve relative to `edit_path`'s folder, then under each of
    `media_roots`. Raises InputError listing EVERY missing media file (and every clip
    with no media path) before anything renders, and for ranges outside the media.
    `probe` defaults to `renderer.media.probe`.
    """
    if probe is None:
        from renderer.media import probe as media_probe

        probe = media_probe
    edit_path = Path(edit_path)
    edit_dir = edit_path.resolve().parent
    roots = [Path(r) for r in media_roots]
    pending: list[tuple[int, int, otio.schema.Clip, TimeRange, dict[str, str], str, Path]] = []
    missing: list[str] = []
    for t_index, track in enumerate(timeline.video_tracks()):
        for c_index, item in enumerate(track):
            if not isinstance(item, otio.schema.Clip):
                continue
            where = f"track V{t_index + 1} clip '{item.name}' in {edit_path}"
            jobs = _marked_ranges(item, where)
            if not jobs:
                continue
            ref = item.media_reference
            url = getattr(ref, "target_url", None) if ref is not None else None
            if not url:
                missing.append(f"{where}: no media path in the edit (reel/clip name only)")
                continue
            found, tried = _resolve_media(url, edit_dir, roots)
            if found is None:
                missing.append(f"{url} (for {where}; looked in: {', '.join(str(p) for p in tried)})")
                continue
            for span, overrides, text in jobs:
                pending.append((t_index, c_index, item, span, overrides, text, found))
    if missing:
        unique = list(dict.fromkeys(missing))
        raise InputError(
            f"{len(unique)} media file(s) of marked clips not found (pass --media-root to search more folders):\n  "
            + "\n  ".join(unique)
        )
    infos: dict[Path, MediaInfoLike] = {}
    out: list[MarkedClip] = []
    global_start = timeline.global_start_time
    for t_index, c_index, clip, span, overrides, text, media in pending:
        where = f"track V{t_index + 1} clip '{clip.name}' in {edit_path}"
        if media not in infos:
            infos[media] = probe(media)
        info = infos[media]
        rate = Fraction(info.fps)
        edit_rate = span.start_time.rate
        if abs(edit_rate - float(rate)) > 0.01 * float(rate):
            hint = " (EDLs carry no rate: pass the edit's rate, e.g. --edl-rate 25)" if edit_path.suffix.lower() == ".edl" else ""
            raise InputError(
                f"{where} is timed at {edit_rate:g} fps but its media {media} runs at {float(rate):g} fps{hint}"
            )
        if info.timecode:
            origin = _timecode_frames(info.timecode, rate)
        elif getattr(clip.media_reference, "available_range", None) is not None:
            origin = _frame_at(clip.media_reference.available_range.start_time, rate)
        else:
            origin = 0
        first = _frame_at(span.start_time, rate) - origin
        last = _frame_at(span.end_time_exclusive(), rate) - origin - 1
        if first < 0 or last >= info.frames or last < first:
            raise InputError(
                f"{where} uses media frames {first}..{last} of {media}, which has frames 0..{info.frames - 1} "
                f"(start timecode {info.timecode or 'none'}); the edit and the media disagree"
            )
        parent_range = clip.range_in_parent()
        offset = span.start_time - clip.trimmed_range().start_time
        record = TimeRange(parent_range.start_time + offset, span.duration)
        rec_start = record.start_time + global_start if global_start is not None else record.start_time
        out.append(MarkedClip(
            track_index=t_index, clip_index=c_index, clip_name=clip.name, media_path=media,
            record_range=record, record_timecode=otio.opentime.to_timecode(rec_start, rec_start.rate),
            source_first_frame=first, source_last_frame=last, overrides=overrides,
            media_timecode=info.timecode, rate=rate, media_frames=int(info.frames), marker=text,
        ))
    return out


def clip_presets(clips: Sequence[MarkedClip], preset: "Preset", edit_path: str | Path) -> list["Preset"]:
    """The preset each clip renders with (its marker overrides applied), in order.

    Checks every clip before returning and raises one InputError listing EVERY bad
    marker (unknown key, bad value), so an editor fixes them all in one pass.
    """
    out: list[Preset] = []
    problems: list[str] = []
    for mc in clips:
        try:
            out.append(preset.with_overrides(mc.overrides, f"{mc.describe()} in {edit_path}"))
        except InputError as err:
            problems.append(str(err))
    if problems:
        raise InputError(f"{len(problems)} marked clip(s) with bad overrides:\n  " + "\n  ".join(problems))
    return out


# --------------------------------------------------------------------------- writing


def _place(tracks: list[list[tuple[RationalTime, RationalTime, otio.schema.Clip]]],
           start: RationalTime, end: RationalTime, clip: otio.schema.Clip) -> None:
    """Put `clip` on the first return track where it overlaps nothing (new track if none)."""
    for lane in tracks:
        if all(end <= s or start >= e for s, e, _ in lane):
            lane.append((start, end, clip))
            return
    tracks.append([(start, end, clip)])


def build_return_timeline(timeline: otio.schema.Timeline, rendered: Sequence[RenderedClip]) -> otio.schema.Timeline:
    """A copy of `timeline` with every original track untouched plus a top video track
    `FACESWAP` (more, `FACESWAP 2`..., only where rendered clips overlap in record time)
    holding each rendered file at exactly its marked clip's record range, gaps elsewhere.

    Each return clip's media reference points at the rendered file (absolute file URL)
    with `available_range` starting at the file's start timecode.
    """
    result = copy.deepcopy(timeline)
    lanes: list[list[tuple[RationalTime, RationalTime, otio.schema.Clip]]] = []
    for item in sorted(rendered, key=lambda r: (r.clip.record_range.start_time, r.clip.track_index)):
        mc = item.clip
        rate = float(mc.rate)
        tc_start = otio.opentime.from_timecode(item.timecode, rate) if item.timecode else RationalTime(0, rate)
        tc_start = RationalTime(tc_start.value, rate)
        ref = otio.schema.ExternalReference(
            target_url=Path(item.path).resolve().as_uri(),
            available_range=TimeRange(tc_start, RationalTime(item.frames, rate)),
        )
        in_file = mc.source_first_frame - item.first_frame
        rec = mc.record_range
        clip = otio.schema.Clip(
            name=f"{mc.clip_name} {RETURN_TRACK}",
            media_reference=ref,
            source_range=TimeRange(RationalTime(tc_start.value + in_file, rate), RationalTime(mc.frames, rate)),
            metadata={METADATA_KEY: {
                "synthetic_media": True,
                "source_clip": mc.clip_name,
                "source_track": mc.track_index,
                "source_clip_index": mc.clip_index,
                "source_media": str(mc.media_path),
                "source_first_frame": mc.source_first_frame,
                "source_last_frame": mc.source_last_frame,
                "overrides": dict(mc.overrides),
            }},
        )
        _place(lanes, rec.start_time, rec.end_time_exclusive(), clip)
    if not lanes:
        lanes.append([])
    for n, lane in enumerate(lanes):
        track = otio.schema.Track(name=RETURN_TRACK if n == 0 else f"{RETURN_TRACK} {n + 1}",
                                  kind=otio.schema.TrackKind.Video)
        cursor: RationalTime | None = None
        for start, end, clip in sorted(lane, key=lambda e: e[0]):
            rate = start.rate
            gap_frames = round((start - cursor).value_rescaled_to(rate)) if cursor is not None else round(start.value)
            if gap_frames > 0:
                track.append(otio.schema.Gap(source_range=TimeRange(RationalTime(0, rate), RationalTime(gap_frames, rate))))
            track.append(clip)
            cursor = end
        if not lane:  # an empty track is dropped by some writers (AAF): fill it with one gap
            track.append(otio.schema.Gap(source_range=TimeRange(duration=timeline.duration())))
        result.tracks.append(track)
    return result


def write_edit(timeline: otio.schema.Timeline, out_path: str | Path) -> None:
    """Write `timeline` atomically with the adapter its extension names. Raises InputError.

    AAF is written with `use_empty_mob_ids=True`. An EDL holds one video track, so an
    `.edl` return edit holds only the FACESWAP track (the shots to cut in); a second
    FACESWAP track (clips overlapping in record time) goes to `<stem>.FACESWAP_2.edl`.
    """
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in ADAPTERS:
        raise InputError(
            f"cannot write edit {out_path}: unsupported extension '{out_path.suffix}'; supported: "
            + ", ".join(ADAPTERS)
        )
    kwargs: dict[str, Any] = {}
    to_write = timeline
    if suffix == ".aaf":
        kwargs["use_empty_mob_ids"] = True
    if suffix == ".edl":
        # CMX 3600 holds one video track: the first FACESWAP track goes to `out_path`,
        # further ones (clips overlapping in record time) to `<stem>.FACESWAP_2.edl`...
        lanes = [t for t in timeline.video_tracks() if t.name.startswith(RETURN_TRACK)] or [otio.schema.Track()]
        for n, lane in enumerate(lanes):
            single = copy.deepcopy(timeline)
            single.tracks[:] = [copy.deepcopy(lane)]
            first_rate = next((c.source_range.start_time.rate for c in single.find_clips()), None)
            target = out_path if n == 0 else out_path.with_name(f"{out_path.stem}.{RETURN_TRACK}_{n + 1}.edl")
            with atomic_output(target) as tmp:
                try:
                    otio.adapters.write_to_file(single, str(tmp), adapter_name="cmx_3600",
                                                **({"rate": first_rate} if first_rate else {}))
                except Exception as err:
                    raise InputError(f"cannot write CMX 3600 EDL {target}: {type(err).__name__}: {err}") from err
        return
    with atomic_output(out_path) as tmp:
        try:
            otio.adapters.write_to_file(to_write, str(tmp), adapter_name=ADAPTERS[suffix], **kwargs)
        except Exception as err:
            raise InputError(f"cannot write {FORMAT_NAMES[suffix]} {out_path}: {type(err).__name__}: {err}") from err


def write_return_edit(timeline: otio.schema.Timeline, rendered: Sequence[RenderedClip], out_path: str | Path) -> None:
    """`build_return_timeline` + `write_edit`: the edit an editor re-imports."""
    write_edit(build_return_timeline(timeline, rendered), out_path)


def return_edit_paths(edit_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Where the return edits go: `<stem>.doppel.otio` always, plus `<stem>.doppel<ext>`
    in the input's own format when it is not OTIO (all input formats are writable)."""
    edit_path, out_dir = Path(edit_path), Path(out_dir)
    paths = [out_dir / f"{edit_path.stem}.doppel.otio"]
    suffix = edit_path.suffix.lower()
    if suffix in ADAPTERS and suffix != ".otio":
        paths.append(out_dir / f"{edit_path.stem}.doppel{suffix}")
    return paths


__all__ = [
    "ADAPTERS", "MARK_WORD", "MarkedClip", "RETURN_TRACK", "RenderedClip", "build_return_timeline",
    "clip_presets", "find_marked_clips", "parse_marker_words", "read_edit", "return_edit_paths", "to_timecode",
    "write_edit", "write_return_edit",
]
