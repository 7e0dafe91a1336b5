"""Build and write the return edit: the original edit plus FACESWAP tracks holding the rendered files."""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import opentimelineio as otio
from opentimelineio.opentime import RationalTime, TimeRange

from renderer.atomic import atomic_output
from renderer.errors import InputError
from renderer.timeline.markers import METADATA_KEY
from renderer.timeline.plan import MarkedClip
from renderer.timeline.read import ADAPTERS, FORMAT_NAMES

RETURN_TRACK = "FACESWAP"


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
    chatter = io.StringIO()
    with atomic_output(out_path) as tmp:
        try:  # some writers (AAF) print each validation problem: keep them out of the job's output
            with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
                otio.adapters.write_to_file(to_write, str(tmp), adapter_name=ADAPTERS[suffix], **kwargs)
        except Exception as err:
            said = (str(err).strip() or chatter.getvalue().strip() or "no message").splitlines()[0]
            raise InputError(f"cannot write {FORMAT_NAMES[suffix]} {out_path}: {type(err).__name__}: {said}") from err


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


__all__ = ["RETURN_TRACK", "RenderedClip", "build_return_timeline", "return_edit_paths", "write_edit",
           "write_return_edit"]
