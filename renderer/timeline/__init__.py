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

from renderer.timeline.markers import MARK_WORD, METADATA_KEY, parse_marker_words
from renderer.timeline.plan import (
    MarkedClip, MediaInfoLike, Probe, RefusedClip, clip_presets, find_jobs, find_marked_clips, marked_elsewhere,
    to_timecode,
)
from renderer.timeline.retime import Speed, Unsupported, clip_speed
from renderer.timeline.read import ADAPTERS, FORMAT_NAMES, read_edit, read_timelines, resolve_media
from renderer.timeline.returns import (
    RETURN_TRACK, RenderedClip, build_return_timeline, return_edit_paths, write_edit, write_return_edit,
)

__all__ = [
    "ADAPTERS", "FORMAT_NAMES", "MARK_WORD", "METADATA_KEY", "MarkedClip", "MediaInfoLike", "Probe", "RETURN_TRACK",
    "RefusedClip", "RenderedClip", "Speed", "Unsupported", "build_return_timeline", "clip_presets", "clip_speed",
    "find_jobs", "find_marked_clips", "marked_elsewhere", "parse_marker_words", "read_edit", "read_timelines",
    "resolve_media", "return_edit_paths", "to_timecode", "write_edit", "write_return_edit",
]
