"""Build and write the return edit: the original edit plus FACESWAP tracks holding the rendered files."""

from __future__ import annotations

import contextlib
import copy
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import opentimelineio as otio
from opentimelineio.opentime import RationalTime, TimeRange

from renderer.atomic import atomic_output
from renderer.errors import InputError
from renderer.timeline import aaf_return, fcpx
from renderer.timeline.markers import METADATA_KEY
from renderer.timeline.plan import MarkedClip
from renderer.timeline.read import ADAPTERS, FORMAT_NAMES
from renderer.timeline.retime import time_effect_names

RETURN_TRACK = "FACESWAP"
PASS_TRACKS = {"matte": f"{RETURN_TRACK} MATTE", "plate": f"{RETURN_TRACK} PLATE"}
# Writers that get the pass tracks; the others (EDL, FCP7 XML, FCPXML, AAF) get clip metadata only.
PASS_TRACK_WRITERS = (".otio", ".otioz")


@dataclass(frozen=True)
class RenderedClip:
    """A rendered file for one MarkedClip, as `write_return_edit` places it.

    `first_frame` is the media frame of the source that the file's frame 0 shows
    (the clip's first frame minus the handles actually rendered); `timecode` is the
    file's start timecode (usually the source timecode of `first_frame`). `matte` / `plate`: the
    matte pass clips beside it (`output.matte` / `output.plate`), same frames and timecode.
    """

    clip: MarkedClip
    path: Path
    first_frame: int
    frames: int
    timecode: str
    matte: Path | None = None
    plate: Path | None = None

    def passes(self) -> dict[str, Path]:
        """{"matte": path, "plate": path} of the pass clips it has."""
        return {k: p for k, p in (("matte", self.matte), ("plate", self.plate)) if p is not None}


def _place(tracks: list[list[tuple[RationalTime, RationalTime, otio.schema.Clip]]],
           start: RationalTime, end: RationalTime, clip: otio.schema.Clip) -> None:
    """Put `clip` on the first return track where it overlaps nothing (new track if none)."""
    for lane in tracks:
        if all(end <= s or start >= e for s, e, _ in lane):
            lane.append((start, end, clip))
            return
    tracks.append([(start, end, clip)])


def _sequence_reference(item: RenderedClip, rate: float, start: RationalTime, path: Path | None = None
                        ) -> otio.schema.ImageSequenceReference | None:
    """An ImageSequenceReference to a rendered image sequence (`path`, default the render; a matte
    pass sequence beside it) or None for a movie: its folder, naming and padding, the frame number
    of its first file and its step, over the same available range a movie would have."""
    path = Path(item.path if path is None else path)
    if "%" not in path.name:
        return None
    from renderer.media.sequence import is_sequence_path, parse_sequence

    if not is_sequence_path(path):
        return None
    pattern = parse_sequence(path)
    numbers = list(pattern.scan())
    step = numbers[1] - numbers[0] if len(numbers) > 1 else 1
    return otio.schema.ImageSequenceReference(
        target_url_base=pattern.folder.resolve().as_uri() + "/", name_prefix=pattern.prefix,
        name_suffix=pattern.suffix, start_frame=numbers[0] if numbers else 0, frame_step=step, rate=rate,
        frame_zero_padding=pattern.padding,
        available_range=TimeRange(start, RationalTime(item.frames, rate)))


def return_clip(item: RenderedClip, kind: str | None = None) -> otio.schema.Clip:
    """The clip that shows `item`'s rendered file where its marked clip was: same record duration,
    same time effects (the rendered file has the source's timecode, so the effect maps the same
    times to the same, now swapped, frames). `kind` "matte" / "plate": the same clip over that
    pass clip instead (it has the rendered file's frames and timecode)."""
    mc = item.clip
    path = item.path if kind is None else item.passes()[kind]
    rate = mc.edit_rate or float(mc.rate)  # counts at the edit's rate when it maps media by timecode
    tc_start = otio.opentime.from_timecode(item.timecode, rate) if item.timecode else RationalTime(0, rate)
    tc_start = RationalTime(tc_start.value, rate)
    seq = _sequence_reference(item, rate, tc_start, Path(path))
    ref = seq or otio.schema.ExternalReference(
        target_url=Path(path).resolve().as_uri(),
        available_range=TimeRange(tc_start, RationalTime(item.frames, rate)),
    )
    if mc.speed.retimed and mc.shown_start is not None:
        source = TimeRange(RationalTime(tc_start.value + mc.shown_start - item.first_frame, rate),
                           RationalTime(mc.record_frames, rate))
    else:
        source = TimeRange(RationalTime(tc_start.value + mc.source_first_frame - item.first_frame, rate),
                           RationalTime(mc.frames, rate))
    clip = otio.schema.Clip(
        name=f"{mc.clip_name} {RETURN_TRACK if kind is None else PASS_TRACKS[kind]}",
        media_reference=ref,
        source_range=source,
        metadata={METADATA_KEY: {
            "synthetic_media": True,
            "source_clip": mc.clip_name,
            "source_track": mc.track_index,
            "source_clip_index": mc.clip_index,
            "source_media": str(mc.media_path),
            "source_first_frame": mc.source_first_frame,
            "source_last_frame": mc.source_last_frame,
            "overrides": dict(mc.overrides),
            **({"speed": mc.speed.describe()} if mc.speed.retimed else {}),
            **{kind_: Path(p).resolve().as_uri() for kind_, p in item.passes().items()},
            **({"pass": kind} if kind else {}),
        }},
    )
    for effect in mc.speed.effects:
        clip.effects.append(effect.clone())
    return clip


def _cut_key(time: RationalTime) -> int:
    """A dict key for a record time (RationalTime is not hashable): tenths of a millisecond."""
    return round(time.to_seconds() * 10000)


# A recreated transition and the kind of cut it sits on: between two clips, or from a clip into a gap
# (a fade out) or from a gap into a clip (a fade in).
CLIPS, TO_GAP, FROM_GAP = "clips", "to gap", "from gap"
Cuts = dict[int, tuple[otio.schema.Transition, str]]


def _lane_track(name: str, lane: list[tuple[RationalTime, RationalTime, otio.schema.Clip]],
                transitions: Cuts) -> otio.schema.Track:
    """A video track holding `lane`'s clips at their record starts, gaps between, and each of
    `transitions` (keyed by the record time of its cut) where it was in the cut: between the two
    clips that meet there, or between a clip and the gap it fades from or into."""
    track = otio.schema.Track(name=name, kind=otio.schema.TrackKind.Video)

    def kind_at(time: RationalTime | None, kind: str) -> otio.schema.Transition | None:
        found = transitions.get(_cut_key(time)) if time is not None else None
        return found[0] if found is not None and found[1] == kind else None

    def gap(frames: int, rate: float) -> otio.schema.Gap:
        return otio.schema.Gap(source_range=TimeRange(RationalTime(0, rate), RationalTime(frames, rate)))

    cursor: RationalTime | None = None
    for start, end, clip in sorted(lane, key=lambda e: e[0]):
        rate = start.rate
        gap_frames = round((start - cursor).value_rescaled_to(rate)) if cursor is not None else round(start.value)
        if cursor is not None and gap_frames <= 0:
            if (between := kind_at(start, CLIPS)) is not None:
                track.append(between.clone())
        else:
            if (fade_out := kind_at(cursor, TO_GAP)) is not None:
                track.append(fade_out.clone())
            fade_in = kind_at(start, FROM_GAP)
            if gap_frames > 0 or fade_in is not None:
                track.append(gap(max(0, gap_frames), rate))
            if fade_in is not None:
                track.append(fade_in.clone())
        track.append(clip)
        cursor = end
    if (fade_out := kind_at(cursor, TO_GAP)) is not None:  # the last clip fades into the gap after it
        assert cursor is not None
        track.append(fade_out.clone())
        track.append(gap(max(0, round(fade_out.out_offset.value_rescaled_to(cursor.rate))), cursor.rate))
    return track


def _piece(clip: otio.schema.Clip, source: TimeRange) -> otio.schema.Clip:
    """An unswapped copy of part of `clip`, standing beside a swapped neighbour so that their
    transition can be recreated on the return track (markers and Doppel metadata left off)."""
    piece = copy.deepcopy(clip)
    piece.source_range = source
    piece.markers[:] = []
    if piece.metadata and METADATA_KEY in piece.metadata:
        del piece.metadata[METADATA_KEY]
    return piece


def _transitions(track: otio.schema.Track, rendered: Sequence[RenderedClip],
                 lane: list[list[tuple[RationalTime, RationalTime, otio.schema.Clip]]]) -> Cuts:
    """The source track's transitions that touch a swapped clip, keyed by the record time of their cut.

    A dissolve from or to a swapped clip is recreated on its return track: its swapped side is
    the return clip (rendered with the frames the dissolve shows beyond the cut), its other side an
    unswapped copy of the original clip over the dissolve's part of it, so the return track blends
    the same two pictures the cut did, with the face swapped on the marked side. A dissolve between
    a swapped clip and a gap (a fade to or from black) goes beside a gap on the return track.
    """
    out: Cuts = {}
    children = list(track)
    for i, child in enumerate(children):
        if not isinstance(child, otio.schema.Transition) or not 0 < i < len(children) - 1:
            continue
        prev, nxt = children[i - 1], children[i + 1]
        if not all(isinstance(x, (otio.schema.Clip, otio.schema.Gap)) for x in (prev, nxt)):
            continue  # a nested sequence on one side: not recreated (its clips are refused by name)
        cut = track.range_of_child_at_index(i - 1).end_time_exclusive()
        out_swapped = isinstance(prev, otio.schema.Clip) and any(
            r.clip.clip_index == i - 1 and r.clip.record_range.end_time_exclusive() == cut for r in rendered)
        in_swapped = isinstance(nxt, otio.schema.Clip) and any(
            r.clip.clip_index == i + 1 and r.clip.record_range.start_time == cut for r in rendered)
        if not (out_swapped or in_swapped):
            continue
        rate = cut.rate
        if isinstance(prev, otio.schema.Gap) or isinstance(nxt, otio.schema.Gap):
            out[_cut_key(cut)] = (child, TO_GAP if out_swapped else FROM_GAP)
            continue
        if not out_swapped:
            frames = RationalTime(max(1, round(child.in_offset.value_rescaled_to(rate))), rate)
            tail = prev.trimmed_range()
            _place(lane, cut - frames, cut, _piece(prev, TimeRange(tail.end_time_exclusive() - frames, frames)))
        if not in_swapped:
            frames = RationalTime(max(1, round(child.out_offset.value_rescaled_to(rate))), rate)
            _place(lane, cut, cut + frames, _piece(nxt, TimeRange(nxt.trimmed_range().start_time, frames)))
        out[_cut_key(cut)] = (child, CLIPS)
    return out


def _pass_track(name: str, lane: list[tuple[RationalTime, RationalTime, otio.schema.Clip]],
                items: dict[int, RenderedClip], kind: str) -> otio.schema.Track | None:
    """A disabled track holding the `kind` pass clip of each rendered clip of `lane`, at the same
    record times (None when none has one). Disabled: the composed picture stays the cut's; an
    artist enables it or takes the clip to the compositor."""
    placed = [(s, e, return_clip(items[id(c)], kind)) for s, e, c in lane
              if id(c) in items and kind in items[id(c)].passes()]
    if not placed:
        return None
    track = _lane_track(name, placed, {})
    track.enabled = False
    return track


def build_return_timeline(timeline: otio.schema.Timeline, rendered: Sequence[RenderedClip], *,
                          transitions: bool = True, passes: bool = True) -> otio.schema.Timeline:
    """A copy of `timeline` with every original track untouched, and directly above each source
    track that had clips rendered a video track `FACESWAP V<n>` (more, `FACESWAP V<n> 2`..., only
    where its rendered clips overlap in record time) holding each rendered file at exactly its
    marked clip's record range, gaps elsewhere. Directly above, so that the composed picture is
    the cut's: a higher track that covered the marked clip still covers its swap.

    Transitions that touch a swapped clip are recreated on its return track (see `_transitions`)
    unless `transitions` is False. With nothing rendered, one empty `FACESWAP` track goes on top. Each return clip's media
    reference points at the rendered file (absolute file URL) with `available_range` starting at
    the file's start timecode.

    Matte pass (`passes`, for the writers in PASS_TRACK_WRITERS): above each return track whose
    clips have a matte, a disabled track `FACESWAP MATTE V<n>` holding the mattes at the same record
    ranges (then `FACESWAP PLATE V<n>` for plates). Either way each return clip's Doppel metadata
    names its matte and plate files ("matte", "plate": file URLs).
    """
    result = copy.deepcopy(timeline)
    by_track: dict[int, list[list[tuple[RationalTime, RationalTime, otio.schema.Clip]]]] = {}
    items: dict[int, RenderedClip] = {}  # id(return clip) -> what it shows
    for item in sorted(rendered, key=lambda r: (r.clip.track_index, r.clip.record_range.start_time)):
        rec = item.clip.record_range
        clip = return_clip(item)
        items[id(clip)] = item
        _place(by_track.setdefault(item.clip.track_index, []), rec.start_time, rec.end_time_exclusive(), clip)
    sources = timeline.video_tracks()
    cuts = {t: _transitions(sources[t], [r for r in rendered if r.clip.track_index == t], lanes) if transitions
            else {} for t, lanes in by_track.items()}
    if not by_track:  # an empty track is dropped by some writers (AAF): fill it with one gap
        track = otio.schema.Track(name=RETURN_TRACK, kind=otio.schema.TrackKind.Video)
        track.append(otio.schema.Gap(source_range=TimeRange(duration=timeline.duration())))
        result.tracks.append(track)
        return result
    videos = result.video_tracks()
    for t_index in sorted(by_track, reverse=True):  # top first, so lower insert positions stay valid
        at = next(i for i, t in enumerate(result.tracks) if t is videos[t_index]) + 1
        base = f"{RETURN_TRACK} V{t_index + 1}"
        for n, lane in reversed(list(enumerate(by_track[t_index]))):
            suffix = f" V{t_index + 1}" + ("" if n == 0 else f" {n + 1}")
            for kind in ("plate", "matte") if passes else ():  # inserted at `at` in turn: matte ends up lowest
                track = _pass_track(PASS_TRACKS[kind] + suffix, lane, items, kind)
                if track is not None:
                    result.tracks.insert(at, track)
            result.tracks.insert(at, _lane_track(base if n == 0 else f"{base} {n + 1}", lane, cuts[t_index]))
    return result


def write_edit(timeline: otio.schema.Timeline, out_path: str | Path) -> None:
    """Write `timeline` atomically with the adapter its extension names. Raises InputError.

    AAF is written with `use_empty_mob_ids=True`. An EDL holds one video track, so an
    `.edl` return edit holds only the FACESWAP track (the shots to cut in); a second
    FACESWAP track goes to `<stem>.FACESWAP_2.edl`...; record timecodes are the cut's.
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
    if suffix == ".aaf":  # what the AAF writer cannot say by itself: see renderer.timeline.aaf_return
        kwargs["use_empty_mob_ids"] = True
        aaf_return.check_writable(timeline, out_path)
        to_write = aaf_return.prepare(timeline)
    if suffix == ".edl":
        # CMX 3600 holds one video track: the first FACESWAP track goes to `out_path`,
        # further ones (clips overlapping in record time) to `<stem>.FACESWAP_2.edl`...
        lanes = [t for t in timeline.video_tracks() if t.name.startswith(RETURN_TRACK)] or [otio.schema.Track()]
        for n, lane in enumerate(lanes):
            single = copy.deepcopy(timeline)
            track = copy.deepcopy(lane)
            start = timeline.global_start_time
            if start is not None and start.value > 0:
                # The cmx_3600 writer counts record timecode from 00:00:00:00 and ignores the
                # timeline's start: lead the track with that much gap, so the events keep the cut's
                # record timecodes (01:00:00:00 ...) and land over the shots they replace.
                track.insert(0, otio.schema.Gap(source_range=TimeRange(RationalTime(0, start.rate), start)))
            single.tracks[:] = [track]
            first_rate = next((c.source_range.start_time.rate for c in single.find_clips()), None)
            target = out_path if n == 0 else out_path.with_name(f"{out_path.stem}.{RETURN_TRACK}_{n + 1}.edl")
            with atomic_output(target) as tmp:
                try:
                    otio.adapters.write_to_file(single, str(tmp), adapter_name="cmx_3600",
                                                **({"rate": first_rate} if first_rate else {}))
                except Exception as err:
                    raise InputError(f"cannot write CMX 3600 EDL {target}: {type(err).__name__}: {err}") from err
                _edl_wipes(Path(tmp), track)
        return
    chatter = io.StringIO()
    with atomic_output(out_path) as tmp:
        try:  # some writers (AAF) print each validation problem: keep them out of the job's output
            with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
                otio.adapters.write_to_file(to_write, str(tmp), adapter_name=ADAPTERS[suffix], **kwargs)
                if suffix == ".aaf":
                    aaf_return.mend_written(tmp, to_write)
        except InputError:
            raise
        except Exception as err:
            said = (str(err).strip() or chatter.getvalue().strip() or "no message").splitlines()[0]
            raise InputError(f"cannot write {FORMAT_NAMES[suffix]} {out_path}: {type(err).__name__}: {said}") from err


_EDL_DISSOLVE = re.compile(r"^(\d{3,}\s+\S+\s+\S+\s+)D(\s+\d{3})")


def _edl_wipes(path: Path, track: otio.schema.Track) -> None:
    """Put back the wipe codes the cmx_3600 writer turns into dissolves.

    The writer writes every transition as `D` (a wipe `W001` read from the cut came back a dissolve);
    its transition events come in track order, so the n-th `D` event is the n-th transition, whose
    metadata keeps the code the reader saw."""
    codes = [str(((t.metadata.get("cmx_3600") or {}) if t.metadata else {}).get("transition") or "D")
             for t in track if isinstance(t, otio.schema.Transition)]
    if all(code == "D" for code in codes):
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    events = [i for i, line in enumerate(lines) if _EDL_DISSOLVE.match(line)]
    if len(events) != len(codes):
        raise InputError(f"cannot write CMX 3600 EDL {path.name}: it holds {len(codes)} transitions and the "
                         f"writer wrote {len(events)} transition events: the wipes cannot be told apart")
    for i, code in zip(events, codes):
        if code != "D":
            lines[i] = _EDL_DISSOLVE.sub(lambda m: f"{m.group(1)}{code}{m.group(2)}", lines[i], count=1)
    path.write_text("".join(lines), encoding="utf-8")


# Measured with the adapters this project pins: the OTIO and CMX 3600 writers keep LinearTimeWarp
# and FreezeFrame; the FCP7 XML, FCPXML and AAF writers drop them (the clip would play at 1x).
TIME_EFFECT_WRITERS = (".otio", ".otioz", ".edl")


def write_return_edit(timeline: otio.schema.Timeline, rendered: Sequence[RenderedClip], out_path: str | Path, *,
                      others: Sequence[otio.schema.Timeline] = ()) -> None:
    """`build_return_timeline` + `write_edit`: the edit an editor re-imports. Raises InputError.

    A format whose writer drops time effects (TIME_EFFECT_WRITERS) is not written for an edit
    that has any: every retimed clip, swapped or not, would play other frames than the cut.
    `others`: the edit's other timelines (an FCPXML library's other projects), written after the
    return timeline unchanged (not into an EDL, which holds one).
    """
    suffix = Path(out_path).suffix.lower()
    if suffix not in TIME_EFFECT_WRITERS:
        retimed = [f"'{c.name}' ({', '.join(names)})" for c in timeline.find_clips() if (names := time_effect_names(c))]
        retimed += [f"'{r.clip.clip_name}' (a still, held by a FreezeFrame)" for r in rendered
                    if r.clip.media_frames == 1 and r.clip.speed.retimed]
        if retimed:
            raise InputError(
                f"cannot write {FORMAT_NAMES[suffix]} {out_path}: the OTIO adapter drops time effects and "
                f"{len(retimed)} clip(s) have one ({', '.join(retimed[:3])}{' ...' if len(retimed) > 3 else ''}): "
                f"it would play other frames than the cut; the .otio return has them"
            )
    if suffix == ".fcpxml":
        blends = [b for t in (timeline, *others) for b in fcpx.transitions_of(t)]
        if blends:
            raise InputError(
                f"cannot write {FORMAT_NAMES[suffix]} {out_path}: the edit has {len(blends)} transition(s) "
                f"('{blends[0][2]}' at {blends[0][0]:.2f} s ...) and the FCPXML adapter neither reads nor writes "
                f"transitions: the return would play them as cuts; the .otio return holds the swaps")
    # An EDL return keeps its dissolves too: the cmx_3600 writer names both sides of a dissolve event
    # (`* FROM CLIP:` and `* TO CLIP:`); its reader needs `read._relink_incoming` to read the second.
    back = build_return_timeline(timeline, rendered, passes=suffix in PASS_TRACK_WRITERS)
    if others and suffix != ".edl":  # the edit's other timelines (FCPXML projects) go back unchanged
        write_edit(otio.schema.SerializableCollection(name=timeline.name, children=[back, *copy.deepcopy(list(others))]),
                   out_path)
    else:
        write_edit(back, out_path)
    if suffix == ".fcpxml":  # the writer says hasAudio="0" for every file on a video track
        from renderer.media import probe

        fcpx.mark_audio(Path(out_path), [r.path for r in rendered if Path(r.path).is_file() and probe(r.path).audio])


def return_edit_paths(edit_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Where the return edits go: `<stem>.doppel.otio` always, plus `<stem>.doppel<ext>`
    in the input's own format when it is not OTIO (all input formats are writable)."""
    edit_path, out_dir = Path(edit_path), Path(out_dir)
    paths = [out_dir / f"{edit_path.stem}.doppel.otio"]
    suffix = edit_path.suffix.lower()
    if suffix in ADAPTERS and suffix != ".otio":
        paths.append(out_dir / f"{edit_path.stem}.doppel{suffix}")
    return paths


__all__ = ["PASS_TRACKS", "PASS_TRACK_WRITERS", "RETURN_TRACK", "RenderedClip", "TIME_EFFECT_WRITERS", "build_return_timeline", "return_clip",
           "return_edit_paths", "write_edit", "write_return_edit"]
