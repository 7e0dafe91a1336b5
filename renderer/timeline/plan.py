"""Plan source frames: each FACESWAP job of an edit becomes media frame indices of a probed file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
import re
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import opentimelineio as otio
from opentimelineio.opentime import RationalTime, TimeRange

from renderer.errors import InputError
from renderer.timeline import fcpx
from renderer.timeline.markers import marked_ranges
from renderer.timeline.read import STILL_SUFFIXES, find_clip_media
from renderer.timeline.retime import Speed, Unsupported, clip_speed, media_frame, shown_times

if TYPE_CHECKING:
    from renderer.presets import Preset


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
    # Its time map (see `renderer.timeline.retime`): the effects the return clip copies, and
    # the media frame (not rounded, 0-based) its first record frame shows.
    speed: Speed = field(default=Speed(1.0), hash=False, compare=False)
    shown_start: float | None = None
    media_match: str = "path"  # the rule that found the media: path, clip name, reel (see find_clip_media)
    # Media frames a transition shows before the swapped span's first frame (it is an incoming clip
    # and the span starts at the cut) and after its last (outgoing, span ends at the cut).
    lead_in: int = 0
    lead_out: int = 0
    # Set when the edit runs at a near rate (23.976 over 24 fps media) and its times map to media
    # frames by timecode count; the return clip is then timed at this rate too.
    edit_rate: float | None = None
    warnings: tuple[str, ...] = ()  # marker words ignored (not key=value), one line each

    @property
    def frames(self) -> int:
        """Media frames the swap covers (the record duration too, unless the clip is retimed)."""
        return self.source_last_frame - self.source_first_frame + 1

    @property
    def record_frames(self) -> int:
        return round(self.record_range.duration.value)

    def with_handles(self, handles: int) -> tuple[int, int]:
        """(first, last) media frames including `handles` each side (at least the frames a transition
        at either end shows beyond the cut), clamped to the media."""
        return (max(0, self.source_first_frame - max(handles, self.lead_in)),
                min(self.media_frames - 1, self.source_last_frame + max(handles, self.lead_out)))

    def describe(self) -> str:
        """"track V2 clip 'A003' (marker 'FACESWAP colour=rct')" for messages."""
        mark = f" (marker '{self.marker}')" if self.marker else " (clip metadata)"
        return f"track V{self.track_index + 1} clip '{self.clip_name}'{mark}"



EDIT_SUFFIXES = {".aaf": "an AAF composition", ".otio": "an OTIO timeline", ".xml": "an XML edit",
                 ".fcpxml": "an FCPXML edit", ".edl": "an EDL"}
_FRAME_NUMBER = re.compile(r"[._](\d{3,})$")  # 'take_2.0101.exr': frame 0101 of a sequence


def find_sequence(ref: otio.schema.ImageSequenceReference, edit_dir: Path, roots: Sequence[Path]
                  ) -> tuple[Path | None, list[Path]]:
    """(the pattern of an ImageSequenceReference's frames, e.g. /plates/shot.%04d.exr, or None; the
    folders looked in). Its `target_url_base` as given (relative to the edit's folder), then its
    folder's name under the edit's folder and each media root; found where a frame exists."""
    from renderer.media.sequence import parse_sequence
    from renderer.timeline.read import _url_to_path

    base = _url_to_path(ref.target_url_base or ".")
    name = f"{ref.name_prefix}%{f'0{ref.frame_zero_padding}' if ref.frame_zero_padding else ''}d{ref.name_suffix}"
    folders = [base] if base.is_absolute() else [edit_dir / base]
    folders += [Path(r) / base.name for r in roots] + [edit_dir / base.name] + [Path(r) for r in roots]
    tried: list[Path] = []
    for folder in folders:
        if folder in tried:
            continue
        tried.append(folder)
        try:
            if parse_sequence(folder / name).scan():
                return folder / name, tried
        except InputError:
            return None, tried
    return None, tried


def _not_a_movie(name: str) -> str | None:
    """Why a clip whose media was not found cannot be a movie, in one line; None when it may be one.

    A frame of an image sequence, a still or another edit as media is not a missing movie: it is
    refused for that clip alone, and the rest of the edit renders (a still found on disk renders
    as a held frame)."""
    base = re.split(r"[\\/]", name.rstrip("/\\"))[-1]
    suffix = Path(base).suffix.lower()
    if suffix in STILL_SUFFIXES and _FRAME_NUMBER.search(Path(base).stem):
        return (f"its media {base} is one frame of an image sequence, referenced as a single file: give the clip "
                f"an ImageSequenceReference (OTIO) to render the sequence")
    if suffix in STILL_SUFFIXES:
        return (f"its still image {base} was not found (stills render as held frames: put it under "
                f"--media-root)")
    if suffix in EDIT_SUFFIXES:
        return f"its media {base} is {EDIT_SUFFIXES[suffix]}, not a movie: edits as media are not supported yet"
    return None


@dataclass(frozen=True)
class RefusedClip:
    """A marked clip Doppel will not render, and why (one line naming the feature)."""

    track_index: int
    clip_index: int
    clip_name: str
    marker: str
    reason: str
    status: str = "refused"  # "refused": Doppel cannot follow it; "skipped": the edit does not show it

    def describe(self) -> str:
        mark = f" (marker '{self.marker}')" if self.marker else " (clip metadata)"
        return f"track V{self.track_index + 1} clip '{self.clip_name}'{mark}"

    def to_json(self) -> dict[str, object]:
        return {"clip": self.clip_name, "track": self.track_index + 1, "marker": self.marker, "status": self.status,
                "reason": self.reason}


def _disabled(item: otio.core.Item, what: str) -> str:
    """Why `item` does not show in the cut ('' when it does): OTIO `enabled=False`, or FCP7 XML's
    `<enabled>FALSE</enabled>`, which the FCP7 adapter keeps only as metadata."""
    fcp = item.metadata.get("fcp_xml") if item.metadata else None
    fcp_off = fcp is not None and hasattr(fcp, "get") and str(fcp.get("enabled", "")).upper() == "FALSE"
    if not item.enabled or fcp_off:
        return f"the {what} is disabled in the edit, so the cut does not show it: not rendered"
    return ""


def _timecode_frames(tc: str, rate: Fraction) -> int:
    """Frame count of a timecode string at `rate` (drop-frame when it has ';')."""
    from renderer.media import timecode_to_frame

    return timecode_to_frame(tc, rate)


def to_timecode(frames: int, rate: Fraction, drop_frame: bool | None = None) -> str:
    """Frame count -> 'HH:MM:SS:FF' (or ';FF' drop-frame for 29.97/59.94 when asked)."""
    df = otio.opentime.IsDropFrameRate.InferFromRate if drop_frame is None else (
        otio.opentime.IsDropFrameRate.ForceYes if drop_frame else otio.opentime.IsDropFrameRate.ForceNo)
    return otio.opentime.to_timecode(RationalTime(frames, float(rate)), float(rate), df)


def marked_elsewhere(timeline: otio.schema.Timeline, edit_path: str | Path, number: int, of: int
                     ) -> list[RefusedClip]:
    """The marked clips of an edit's timeline other than the first (FCPXML libraries hold several
    projects): refused by name; the return edit carries that timeline back unchanged."""
    out: list[RefusedClip] = []
    for t_index, track in enumerate(timeline.video_tracks()):
        for c_index, item in enumerate(track):
            if isinstance(item, otio.schema.Clip):
                for _, _, text in marked_ranges(item, f"clip '{item.name}' in {edit_path}", warnings=[]):
                    out.append(RefusedClip(t_index, c_index, item.name, text,
                                           f"the clip is in '{timeline.name}', timeline {number} of {of} in the "
                                           f"edit: only the first timeline renders yet (the others go back "
                                           f"unchanged)"))
    return out


def find_marked_clips(
    timeline: otio.schema.Timeline,
    edit_path: str | Path,
    media_roots: Sequence[str | Path] = (),
    probe: Probe | None = None,
) -> list[MarkedClip]:
    """`find_jobs` without the refused clips."""
    return find_jobs(timeline, edit_path, media_roots, probe)[0]


def find_jobs(
    timeline: otio.schema.Timeline,
    edit_path: str | Path,
    media_roots: Sequence[str | Path] = (),
    probe: Probe | None = None,
) -> tuple[list[MarkedClip], list[RefusedClip]]:
    """(every FACESWAP job in `timeline`, bottom track first, in record order; the marked clips
    refused, each with a one-line reason naming what Doppel cannot follow).

    Media references resolve relative to `edit_path`'s folder, then under each of
    `media_roots`. Raises InputError listing EVERY missing media file (and every clip
    with no media path) before anything renders; a clip whose range lies outside its
    media is refused by name.
    `probe` defaults to `renderer.media.probe`.
    """
    if probe is None:
        from renderer.media import probe as media_probe

        probe = media_probe
    edit_path = Path(edit_path)
    edit_dir = edit_path.resolve().parent
    roots = [Path(r) for r in media_roots]
    pending: list[tuple[int, int, otio.schema.Clip, TimeRange, dict[str, str], str, Path, Speed, str]] = []
    refused: list[RefusedClip] = []
    notes: dict[tuple[int, int], tuple[str, ...]] = {}  # marker words that were not overrides, per clip
    missing: list[str] = []
    sequences: dict[tuple[int, int], otio.schema.ImageSequenceReference] = {}
    for t_index, track in enumerate(timeline.video_tracks()):
        for c_index, item in enumerate(track):
            if isinstance(item, (otio.schema.Stack, otio.schema.Track)):
                # A nested sequence (OTIO stack, FCP7 nested sequence): its marked clips are named, not lost.
                # A mark on the nest itself (an Avid marker over a nest) marks every clip in it.
                nest_marks = marked_ranges(item, f"nested sequence '{item.name}' in {edit_path}", warnings=[])
                for inner in item.find_clips():
                    inner_jobs = marked_ranges(inner, f"clip '{inner.name}' inside '{item.name}' in {edit_path}",
                                               warnings=[]) or nest_marks
                    refused += [RefusedClip(t_index, c_index, inner.name, text,
                                            f"the clip is inside the nested sequence '{item.name}': marked clips in "
                                            f"nested sequences are not supported yet (mark the nested sequence's "
                                            f"own clips in its own timeline)") for _, _, text in inner_jobs]
                continue
            if not isinstance(item, otio.schema.Clip):
                continue
            where = f"track V{t_index + 1} clip '{item.name}' in {edit_path}"
            said: list[str] = []
            jobs = marked_ranges(item, where, fcp7=edit_path.suffix.lower() == ".xml", warnings=said)
            notes[(t_index, c_index)] = tuple(said)
            if not jobs:
                continue
            off = _disabled(track, "track") or _disabled(item, "clip")
            if off:  # the cut does not show it: nothing to swap, and the return keeps it as it was
                refused += [RefusedClip(t_index, c_index, item.name, text, off, "skipped") for _, _, text in jobs]
                continue
            try:
                speed = clip_speed(item)
            except Unsupported as why:
                refused += [RefusedClip(t_index, c_index, item.name, text, str(why)) for _, _, text in jobs]
                continue
            ref = item.media_reference
            if isinstance(ref, otio.schema.ImageSequenceReference):
                # The sequence's frames are found by the reference's own naming; probed at its rate.
                found, tried = find_sequence(ref, edit_dir, roots)
                if found is None:
                    missing.append(f"{ref.target_url_base}{ref.name_prefix}{'#' * max(ref.frame_zero_padding, 1)}"
                                   f"{ref.name_suffix} (image sequence for {where}; looked in: "
                                   f"{', '.join(str(p) for p in tried[:8])})")
                    continue
                sequences[(t_index, c_index)] = ref
                for span, overrides, text in jobs:
                    pending.append((t_index, c_index, item, span, overrides, text, found, speed, "path"))
                continue
            url = getattr(ref, "target_url", None) if ref is not None else None
            found, rule, tried = find_clip_media(item, edit_dir, roots)
            if found is None and (why := _not_a_movie(url or item.name or "")):
                # media that is no movie (a sequence frame, a still, another edit): that clip alone is refused
                refused += [RefusedClip(t_index, c_index, item.name, text, why) for _, _, text in jobs]
                continue
            if found is None:
                looked = f"looked in: {', '.join(str(p) for p in tried[:8])}{' ...' if len(tried) > 8 else ''}"
                missing.append(f"{url} (for {where}; {looked})" if url else
                               f"{where}: no media path in the edit, and no file named after the clip or reel "
                               f"({looked})")
                continue
            for span, overrides, text in jobs:
                pending.append((t_index, c_index, item, span, overrides, text, found, speed, rule))
    if missing:
        unique = list(dict.fromkeys(missing))
        raise InputError(
            f"{len(unique)} media file(s) of marked clips not found (pass --media-root to search more folders):\n  "
            + "\n  ".join(unique)
        )
    infos: dict[Path, MediaInfoLike] = {}
    out: list[MarkedClip] = []
    global_start = timeline.global_start_time
    for t_index, c_index, clip, span, overrides, text, media, speed, rule in pending:
        where = f"track V{t_index + 1} clip '{clip.name}' in {edit_path}"
        seq_ref = sequences.get((t_index, c_index))
        rec_start = clip.range_in_parent().start_time + (span.start_time - clip.trimmed_range().start_time)
        blend = fcpx.touching(timeline, rec_start.to_seconds(), (rec_start + span.duration).to_seconds())
        if blend is not None:  # FCPXML: a transition the adapter did not read blends this clip's frames
            refused.append(RefusedClip(t_index, c_index, clip.name, text,
                                       f"FCPXML transition '{blend[2]}' at {blend[0]:.2f}-{blend[1]:.2f} s touches "
                                       f"the clip: the FCPXML adapter does not read transitions, so the frames it "
                                       f"blends cannot be rendered yet"))
            continue
        if media not in infos:
            infos[media] = probe(media, rate=Fraction(seq_ref.rate).limit_denominator(1001)) if seq_ref else probe(media)
        info = infos[media]
        rate = Fraction(info.fps)
        edit_rate = span.start_time.rate
        steps = (seq_ref.frame_step, info.sequence.step if info.frames > 1 else 1) if seq_ref is not None else (1, 1)
        if steps != (1, 1):
            # OTIO shows every frame number of a stepped sequence (frame_for_time counts 1001, 1002, ...;
            # images only at 1001, 1003, ...): the held images would need a retime of their own.
            refused.append(RefusedClip(t_index, c_index, clip.name, text,
                                       f"its image sequence {media.name} steps by {steps[0]} in the edit and by "
                                       f"{steps[1]} on disk: sequences in edits with a frame step other than 1 are "
                                       f"not supported yet (doppel probe, trim and swap read them)"))
            continue
        if info.frames == 1 and media.suffix.lower() in STILL_SUFFIXES and seq_ref is None:
            # A still is a held frame: render its one frame (swapped) and hold it on the return clip
            # with a FreezeFrame, timed at the edit's rate (the image's own "rate" means nothing).
            rec = clip.range_in_parent()
            record = TimeRange(rec.start_time + (span.start_time - clip.trimmed_range().start_time), span.duration)
            rec_start = record.start_time + global_start if global_start is not None else record.start_time
            out.append(MarkedClip(
                track_index=t_index, clip_index=c_index, clip_name=clip.name, media_path=media,
                record_range=record, record_timecode=otio.opentime.to_timecode(rec_start, rec_start.rate),
                source_first_frame=0, source_last_frame=0, overrides=overrides, media_timecode=None, rate=rate,
                media_frames=1, marker=text, speed=Speed(0.0, (otio.schema.FreezeFrame(),)), shown_start=0.0,
                media_match=rule, edit_rate=edit_rate, warnings=notes.get((t_index, c_index), ()),
            ))
            continue
        # Same rate (NTSC written as 23.976 or 24000/1001 alike): rescale. A near rate with the same
        # timecode base (a 23.976 edit over 24 fps media, 29.97 over 30) is what NLEs conform by
        # timecode: frame N of the edit's count is frame N of the media's, never N * 24/23.976.
        same = abs(edit_rate - float(rate)) <= 1e-4 * float(rate)
        by_count = not same and round(edit_rate) == round(float(rate))
        if not same and not by_count:
            if edit_path.suffix.lower() == ".edl":  # the rate was a guess for the whole edit: say so once
                raise InputError(
                    f"{where} is timed at {edit_rate:g} fps but its media {media} runs at {float(rate):g} fps "
                    f"(EDLs carry no rate: if the edit runs at the media's rate, pass --edl-rate {float(rate):g})"
                )
            # One clip timed at another rate than its media (a Premiere clip with timebase 15 over
            # 30 fps media): refuse that clip, render the others.
            refused.append(RefusedClip(t_index, c_index, clip.name, text,
                                       f"the clip is timed at {edit_rate:g} fps but its media {media.name} runs at "
                                       f"{float(rate):g} fps: clips at another rate than their media are not "
                                       f"supported yet"))
            continue

        def count(t: RationalTime) -> float:
            return t.value if by_count else t.value_rescaled_to(float(rate))

        if seq_ref is not None:
            # OTIO's own mapping names the file a media time shows (start_frame, frame_step and
            # available_range as the reference defines them); frame index = its place on disk.
            if seq_ref.available_range is not None:
                shown_number = seq_ref.frame_for_time(span.start_time)
            else:  # OTIO maps times only within an available range: media time 0 is the start frame
                shown_number = seq_ref.start_frame + round(count(span.start_time)) * seq_ref.frame_step
            origin = round(count(span.start_time)) - (shown_number - info.sequence.first_number) // info.sequence.step
        elif info.timecode:
            origin = _timecode_frames(info.timecode, rate)
        elif getattr(clip.media_reference, "available_range", None) is not None:
            origin = round(count(clip.media_reference.available_range.start_time))
        else:
            origin = 0
        offset = span.start_time - clip.trimmed_range().start_time
        shown_start = None
        if speed.retimed:  # the media frames the effect shows, lowest to highest
            step = round(offset.value_rescaled_to(span.start_time.rate))
            times = [t * (1.0 if by_count else float(rate) / span.start_time.rate) - origin
                     for t in shown_times(clip.trimmed_range().start_time, step, round(span.duration.value), speed)]
            shown = [media_frame(t) for t in times]
            first, last, shown_start = min(shown), max(shown), times[0]
        else:
            first = round(count(span.start_time)) - origin
            last = round(count(span.end_time_exclusive())) - origin - 1
        if first < 0 or last >= info.frames or last < first:
            # that clip alone: the others of the edit may well be right (an edit naming one file for clips
            # of several, as empty_name_tags.xml does, or media relinked to a shorter copy)
            refused.append(RefusedClip(
                t_index, c_index, clip.name, text,
                f"the clip uses media frames {first}..{last} of {media.name}, which has frames "
                f"0..{info.frames - 1} (start timecode {info.timecode or 'none'}): the edit and the media "
                f"disagree (is it the right file?)"))
            continue
        lead_in = lead_out = 0
        if not speed.retimed:  # a dissolve shows the clip's media beyond the cut: render those frames too
            track = clip.parent()
            at = track.index(clip)
            before = track[at - 1] if at > 0 else None
            after = track[at + 1] if at + 1 < len(track) else None
            trimmed = clip.trimmed_range()
            if isinstance(before, otio.schema.Transition) and span.start_time == trimmed.start_time:
                lead_in = round(before.in_offset.value_rescaled_to(float(rate)))
            if isinstance(after, otio.schema.Transition) and span.end_time_exclusive() == trimmed.end_time_exclusive():
                lead_out = round(after.out_offset.value_rescaled_to(float(rate)))
        parent_range = clip.range_in_parent()
        record = TimeRange(parent_range.start_time + offset, span.duration)
        rec_start = record.start_time + global_start if global_start is not None else record.start_time
        out.append(MarkedClip(
            track_index=t_index, clip_index=c_index, clip_name=clip.name, media_path=media,
            record_range=record, record_timecode=otio.opentime.to_timecode(rec_start, rec_start.rate),
            source_first_frame=first, source_last_frame=last, overrides=overrides,
            media_timecode=info.timecode, rate=rate, media_frames=int(info.frames), marker=text,
            speed=speed, shown_start=shown_start, media_match=rule, lead_in=lead_in, lead_out=lead_out,
            edit_rate=edit_rate if by_count else None, warnings=notes.get((t_index, c_index), ()),
        ))
    return out, refused


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


__all__ = ["MarkedClip", "MediaInfoLike", "Probe", "RefusedClip", "clip_presets", "find_jobs", "find_marked_clips",
           "marked_elsewhere",
           "to_timecode"]
