"""The plain-Python half of the Resolve script: paths, markers, arguments, placements.

No Resolve API here (that is `resolve_api`) and no opentimelineio (Resolve's Python has none):
the exported edit is patched as OTIO JSON with `plugin.blender.otio_json`, standard library only.

Why the markers are patched: Resolve's OTIO export drops clip metadata, so per-clip settings
live in the marker note as `key=value` words. The script reads the markers of each timeline item
through the API and writes them onto the matching clip of the exported edit as FACESWAP markers
whose comment is the note, which is where `doppel render` reads overrides.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from plugin.blender import otio_json

FACESWAP = otio_json.FACESWAP


@dataclass(frozen=True)
class ResolveMarker:
    """A marker on a timeline item as `TimelineItem.GetMarkers()` gives it.

    offset: frames from the item's first visible frame ("clip offset" in Resolve's API docs);
    duration: frames (Resolve markers last at least 1 frame; 1 means "the whole clip" here).
    """

    offset: int
    duration: int
    name: str
    note: str
    color: str = "Green"


@dataclass(frozen=True)
class ItemMarkers:
    """The markers of the item on video track `track` (1 = bottom) starting at `record_start`
    (frames from the timeline's start)."""

    track: int
    record_start: int
    markers: tuple[ResolveMarker, ...]


@dataclass(frozen=True)
class JobPaths:
    edit: Path  # the exported (and patched) edit
    out_dir: Path  # `doppel render --out`


def safe_name(text: str) -> str:
    """A file-name-safe version of a project/timeline name ('Cut 3: final' -> 'Cut_3_final')."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return name or "timeline"


def job_paths(out_root: str | os.PathLike[str], project: str, timeline: str) -> JobPaths:
    """OUT_ROOT/<project>/<timeline>/ holding <timeline>.otio and the render output."""
    out_dir = Path(out_root).expanduser() / safe_name(project) / safe_name(timeline)
    return JobPaths(edit=out_dir / f"{safe_name(timeline)}.otio", out_dir=out_dir)


def is_faceswap(marker: ResolveMarker) -> bool:
    """A marker asks for a swap when its name or note starts with FACESWAP (case-insensitive)."""
    return any(text.strip().upper().startswith(FACESWAP) for text in (marker.name, marker.note))


def note_overrides(note: str) -> tuple[tuple[str, str], ...]:
    """'FACESWAP preset=hq blend=0.8' or 'preset=hq' -> (('preset','hq'), ('blend','0.8'))."""
    words = note.strip()
    if words.upper().startswith(FACESWAP):
        words = words[len(FACESWAP):]
    return otio_json.parse_overrides(words)


def parse_resolve_markers(raw: Mapping[Any, Mapping[str, Any]]) -> tuple[ResolveMarker, ...]:
    """`GetMarkers()`'s {frameId: {'name','note','duration','color',...}} as ResolveMarkers, in order."""
    out = []
    for frame_id, info in sorted(raw.items(), key=lambda kv: float(kv[0])):
        out.append(ResolveMarker(offset=int(round(float(frame_id))), duration=max(1, int(info.get("duration", 1))),
                                 name=str(info.get("name", "")), note=str(info.get("note", "")),
                                 color=str(info.get("color", ""))))
    return tuple(out)


def _clips_by_position(track: dict[str, Any], fps: Fraction) -> dict[int, dict[str, Any]]:
    found, cursor = {}, 0
    for item in track.get("children") or []:
        kind = str(item.get("OTIO_SCHEMA", "")).split(".")[0]
        if kind == "Transition":
            continue
        if kind == "Clip":
            found[cursor] = item
        cursor += otio_json.item_duration(item, fps)
    return found


def apply_markers(timeline: dict[str, Any], items: list[ItemMarkers], fps: Fraction) -> int:
    """Write each item's FACESWAP markers onto the matching clip of the exported edit, in place.

    Clips are matched by video track number and record start. Existing FACESWAP markers on a
    matched clip are replaced (so the note wins over whatever the export kept). Returns the number
    of clips marked; raises ValueError naming an item that matches no clip or a bad note.
    """
    tracks = otio_json.video_tracks(timeline)
    marked = 0
    for it in items:
        swaps = [m for m in it.markers if is_faceswap(m)]
        if not swaps:
            continue
        if not 1 <= it.track <= len(tracks):
            raise ValueError(f"marked item on video track {it.track} at frame {it.record_start}: the exported edit "
                             f"has {len(tracks)} video track(s)")
        clip = _clips_by_position(tracks[it.track - 1], fps).get(it.record_start)
        if clip is None:
            raise ValueError(f"marked item on video track {it.track} at frame {it.record_start} matches no clip of "
                             "the exported edit (was the timeline changed during export?)")
        src = clip.get("source_range") or {}
        start = otio_json.frames_of(src.get("start_time"), fps)
        length = otio_json.frames_of(src.get("duration"), fps)
        kept = [m for m in clip.get("markers") or [] if not str(m.get("name", "")).upper().startswith(FACESWAP)]
        for m in swaps:
            try:
                comment = otio_json.format_overrides(note_overrides(m.note))
            except ValueError as err:
                raise ValueError(f"marker note on video track {it.track} at frame {it.record_start + m.offset}: "
                                 f"{err}") from err
            if m.duration <= 1:
                kept.append(otio_json.marker(FACESWAP, start, 0, fps, comment))
            else:
                first = max(0, m.offset)
                kept.append(otio_json.marker(FACESWAP, start + first, min(m.duration, length - first), fps, comment))
        clip["markers"] = kept
        marked += 1
    return marked


@dataclass(frozen=True)
class AppendInfo:
    """One rendered clip for `MediaPool.AppendToTimeline`: media frames start..end (inclusive,
    0-based) placed at timeline frame `record_frame` (absolute, i.e. including the start timecode)."""

    path: str
    start_frame: int
    end_frame: int
    record_frame: int
    name: str
    note: str


def append_infos(return_edit: str | os.PathLike[str], fps: Fraction, timeline_start: int) -> list[AppendInfo]:
    """The FACESWAP clips of the return edit, ready to append on a new video track."""
    out = []
    for p in otio_json.read_return(return_edit, fps):
        overrides = (p.metadata.get("doppel") or {}).get("overrides") or {}
        note = " ".join(f"{k}={v}" for k, v in overrides.items())
        out.append(AppendInfo(path=p.filepath, start_frame=p.media_start, end_frame=p.media_start + p.duration - 1,
                              record_frame=timeline_start + p.record_start, name=p.name, note=note))
    return out


def default_scripts_dir(platform: str = sys.platform, env: Mapping[str, str] | None = None,
                        home: Path | None = None) -> Path:
    """Resolve's per-user Workspace > Scripts > Utility folder on this platform."""
    env = os.environ if env is None else env
    home = home or Path.home()
    if platform.startswith("win"):
        return Path(env.get("APPDATA", home / "AppData" / "Roaming")) / (
            "Blackmagic Design/DaVinci Resolve/Support/Fusion/Scripts/Utility")
    if platform == "darwin":
        return home / "Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts/Utility"
    return home / ".local/share/DaVinciResolve/Fusion/Scripts/Utility"


LAUNCHER = '''"""Doppel face swap (Workspace > Scripts > Utility). Written by `python -m plugin.resolve install`."""
import sys
sys.path.insert(0, {root!r})
from plugin.resolve.flow import main
main(resolve)  # noqa: F821 -- Resolve defines `resolve` for scripts it runs
'''


def launcher_text(repo_root: str | os.PathLike[str]) -> str:
    """The script Resolve runs: puts the Doppel checkout on sys.path and runs `flow.main`."""
    return LAUNCHER.format(root=str(Path(repo_root).resolve()))
