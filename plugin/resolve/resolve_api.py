"""Every DaVinci Resolve API call the script makes, and nothing else.

Untested against Resolve itself (Resolve cannot run on the build machines); written against the
Resolve 18.5 scripting README. Each function is one small, named use of the API so a fix for a
Resolve version lands in one place.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from plugin.resolve.core import AppendInfo, ItemMarkers, parse_resolve_markers


class ResolveError(RuntimeError):
    """The Resolve API refused something; says which call."""


def current(resolve: Any) -> tuple[Any, Any, Any]:
    """(project, timeline, media_pool) of the open project; errors when no timeline is open."""
    project = resolve.GetProjectManager().GetCurrentProject()
    if project is None:
        raise ResolveError("no project is open")
    timeline = project.GetCurrentTimeline()
    if timeline is None:
        raise ResolveError(f"project {project.GetName()!r} has no current timeline; open one in the Edit page")
    return project, timeline, project.GetMediaPool()


def names(project: Any, timeline: Any) -> tuple[str, str]:
    return str(project.GetName()), str(timeline.GetName())


def timeline_fps(timeline: Any) -> Fraction:
    rate = float(timeline.GetSetting("timelineFrameRate"))
    return Fraction(rate).limit_denominator(1001)


def timeline_start(timeline: Any) -> int:
    """The timeline's first frame (its start timecode as a frame count)."""
    return int(timeline.GetStartFrame())


def export_otio(resolve: Any, timeline: Any, path: str) -> None:
    if not timeline.Export(path, resolve.EXPORT_OTIO):
        raise ResolveError(f"Timeline.Export({path!r}, EXPORT_OTIO) failed (needs Resolve 18.5 or later)")


def item_markers(timeline: Any) -> list[ItemMarkers]:
    """The markers of every item of every video track, with the item's record start."""
    start = timeline_start(timeline)
    out = []
    for track in range(1, int(timeline.GetTrackCount("video")) + 1):
        for item in timeline.GetItemListInTrack("video", track) or []:
            raw = item.GetMarkers() or {}
            if raw:
                out.append(ItemMarkers(track=track, record_start=int(item.GetStart()) - start,
                                       markers=parse_resolve_markers(raw)))
    return out


def add_faceswap_track(timeline: Any, media_pool: Any, infos: list[AppendInfo]) -> int:
    """Import the rendered files, add a video track on top and place each clip at its record frame.
    Returns the new track's number."""
    if not timeline.AddTrack("video"):
        raise ResolveError("Timeline.AddTrack('video') failed")
    track = int(timeline.GetTrackCount("video"))
    timeline.SetTrackName("video", track, "FACESWAP")
    paths = sorted({i.path for i in infos})
    items = media_pool.ImportMedia(paths) or []
    by_path = {}
    for mpi in items:
        by_path[str(mpi.GetClipProperty("File Path"))] = mpi
    missing = [p for p in paths if p not in by_path]
    if missing:
        raise ResolveError(f"MediaPool.ImportMedia did not import {missing}")
    clip_infos = [{"mediaPoolItem": by_path[i.path], "startFrame": i.start_frame, "endFrame": i.end_frame,
                   "trackIndex": track, "recordFrame": i.record_frame, "mediaType": 1} for i in infos]
    placed = media_pool.AppendToTimeline(clip_infos) or []
    if len(placed) != len(infos):
        raise ResolveError(f"MediaPool.AppendToTimeline placed {len(placed)} of {len(infos)} clips")
    for item, info in zip(placed, infos):
        if info.note:  # settings travel in the marker note (Resolve keeps no clip metadata in OTIO)
            item.AddMarker(0, "Purple", "FACESWAP result", info.note, 1, "")
    return track
