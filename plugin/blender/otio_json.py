"""OTIO exchange written by hand: host strips -> `.otio` JSON, return `.otio` JSON -> placements.

Blender's bundled Python (and Resolve's) has no `opentimelineio`, so this module writes and
reads the plain JSON that OTIO serialises to (objects tagged with `OTIO_SCHEMA` keys). It uses
the standard library only and never imports `bpy`, so it runs inside Blender, inside Resolve and
in the project's venv, where the tests check it against the real `opentimelineio` reading and
writing the same files.

Convention: every time here is an integer frame count at the host's rate `fps` (a Fraction,
e.g. 25 or 24000/1001). Timeline ("record") frames are the host's own frame numbers: track time
0 is host frame 0. Media frames count from 0 at the first frame of the file.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.parse
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

FACESWAP = "FACESWAP"  # marker-name prefix `doppel render` looks for, and its return track's name


class OtioJsonError(ValueError):
    """A `.otio` file this module cannot read: names the file, the object and what was expected."""


@dataclass(frozen=True)
class FaceswapMark:
    """A face-swap request on one strip.

    overrides: `key=value` pairs copied into the OTIO marker comment (e.g. preset settings).
    sub_range: (first, end) timeline frames, end exclusive, inside the strip; None = whole strip
    (written as a point marker, which `doppel render` reads as "the whole clip").
    """

    overrides: tuple[tuple[str, str], ...] = ()
    sub_range: tuple[int, int] | None = None


@dataclass(frozen=True)
class StripSpec:
    """One host strip as an OTIO clip.

    record_start: first visible timeline frame; duration: visible frames (> 0);
    media_start: 0-based media frame shown at `record_start`; media_duration: frames in the file.
    kind: "Video" or "Audio". channel: host channel (1 = bottom), one OTIO track per channel and kind.
    media_origin: start timecode of the file as frames. NLE edits (and `doppel render`) address
    timecoded media in timecode, so source_range and available_range start at origin + frame.
    """

    name: str
    filepath: str
    channel: int
    record_start: int
    duration: int
    media_start: int
    media_duration: int
    kind: str = "Video"
    faceswap: FaceswapMark | None = None
    media_origin: int = 0  # the media's start timecode in frames (0 = none): OTIO source times include it


@dataclass(frozen=True)
class Placement:
    """A clip of a return track, in host frames: show `filepath` media frame `media_start` at
    timeline frame `record_start`, for `duration` frames. `metadata` is the clip's OTIO metadata."""

    name: str
    filepath: str
    record_start: int
    duration: int
    media_start: int
    metadata: dict[str, Any]


# --- overrides ---------------------------------------------------------------------------------


def parse_overrides(text: str) -> tuple[tuple[str, str], ...]:
    """'preset=hq blend=0.8' -> (('preset', 'hq'), ('blend', '0.8')). Words without '=' are an error."""
    pairs: list[tuple[str, str]] = []
    for word in text.replace(",", " ").replace(";", " ").split():
        key, sep, value = word.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"override {word!r} in {text!r} is not key=value (e.g. 'preset=hq blend=0.8')")
        pairs.append((key, value))
    return tuple(pairs)


def format_overrides(pairs: tuple[tuple[str, str], ...]) -> str:
    return " ".join(f"{k}={v}" for k, v in pairs)


def timecode_frames(tc: str, fps: Fraction) -> int:
    """'HH:MM:SS:FF' (or drop-frame 'HH:MM:SS;FF' at 29.97/59.94) -> frame count at `fps`."""
    parts = tc.replace(";", ":").replace(".", ":").split(":")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise ValueError(f"timecode {tc!r} is not HH:MM:SS:FF")
    h, m, s, f = (int(p) for p in parts)
    nominal = round(float(fps))
    frames = ((h * 60 + m) * 60 + s) * nominal + f
    if (";" in tc or "." in tc) and nominal in (30, 60):
        drop = nominal // 15  # 2 frame numbers dropped per minute at 29.97, 4 at 59.94, except every 10th
        minutes = h * 60 + m
        frames -= drop * (minutes - minutes // 10)
    return frames


# --- writing ------------------------------------------------------------------------------------


def _rate(fps: Fraction) -> float:
    return float(Fraction(fps))


def rational_time(frames: int, fps: Fraction) -> dict[str, Any]:
    return {"OTIO_SCHEMA": "RationalTime.1", "rate": _rate(fps), "value": float(frames)}


def time_range(start: int, duration: int, fps: Fraction) -> dict[str, Any]:
    return {
        "OTIO_SCHEMA": "TimeRange.1",
        "duration": rational_time(duration, fps),
        "start_time": rational_time(start, fps),
    }


def _item_base(schema: str, name: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return {"OTIO_SCHEMA": schema, "metadata": metadata, "name": name, "source_range": None,
            "effects": [], "markers": [], "enabled": True, "color": None}


def gap(duration: int, fps: Fraction) -> dict[str, Any]:
    item = _item_base("Gap.1", "", {})
    item["source_range"] = time_range(0, duration, fps)
    return item


def marker(name: str, start: int, duration: int, fps: Fraction, comment: str = "") -> dict[str, Any]:
    return {"OTIO_SCHEMA": "Marker.2", "metadata": {}, "name": name, "color": "RED",
            "marked_range": time_range(start, duration, fps), "comment": comment}


def clip_from_strip(strip: StripSpec, fps: Fraction) -> dict[str, Any]:
    """The OTIO Clip.2 dict of a strip; the marker (if any) is in the clip's media time."""
    # not under "doppel": `doppel render` reads that clip metadata as per-clip settings (and rejects unknown keys)
    item = _item_base("Clip.2", strip.name, {"doppel_host": {"strip": strip.name, "channel": strip.channel}})
    origin = strip.media_origin
    item["source_range"] = time_range(origin + strip.media_start, strip.duration, fps)
    url = Path(strip.filepath).resolve().as_uri()
    item["media_references"] = {"DEFAULT_MEDIA": {
        "OTIO_SCHEMA": "ExternalReference.1", "metadata": {}, "name": Path(strip.filepath).name,
        "available_range": time_range(origin, strip.media_duration, fps),
        "available_image_bounds": None, "target_url": url,
    }}
    item["active_media_reference_key"] = "DEFAULT_MEDIA"
    mark = strip.faceswap
    if mark is not None:
        comment = format_overrides(mark.overrides)
        if mark.sub_range is None:
            item["markers"].append(marker(FACESWAP, origin + strip.media_start, 0, fps, comment))
        else:
            first, end = mark.sub_range
            first, end = max(first, strip.record_start), min(end, strip.record_start + strip.duration)
            if end <= first:
                raise ValueError(
                    f"face-swap range {mark.sub_range} of strip {strip.name!r} lies outside the strip "
                    f"(frames {strip.record_start}..{strip.record_start + strip.duration - 1})")
            item["markers"].append(
                marker(FACESWAP, origin + strip.media_start + first - strip.record_start, end - first, fps, comment))
    return item


def track(name: str, kind: str, children: list[dict[str, Any]]) -> dict[str, Any]:
    item = _item_base("Track.1", name, {})
    item["children"] = children
    item["kind"] = kind
    return item


def _track_children(strips: list[StripSpec], fps: Fraction) -> list[dict[str, Any]]:
    children: list[dict[str, Any]] = []
    cursor = 0
    for strip in sorted(strips, key=lambda s: s.record_start):
        if strip.record_start < cursor:
            raise ValueError(f"strip {strip.name!r} at frame {strip.record_start} overlaps the previous strip "
                             f"on channel {strip.channel} (which ends at frame {cursor})")
        if strip.record_start > cursor:
            children.append(gap(strip.record_start - cursor, fps))
        children.append(clip_from_strip(strip, fps))
        cursor = strip.record_start + strip.duration
    return children


def timeline_from_strips(name: str, strips: list[StripSpec], fps: Fraction) -> dict[str, Any]:
    """An OTIO Timeline.1 dict: one track per (kind, channel), bottom channel first, video before audio.

    Track time 0 is host frame 0 (gaps fill up to each first strip), so a clip placed at track
    time t in the return edit belongs at host frame t.
    """
    for s in strips:
        if s.duration <= 0 or s.media_start < 0 or s.kind not in ("Video", "Audio"):
            raise ValueError(f"strip {s.name!r}: duration {s.duration}, media_start {s.media_start}, kind {s.kind!r}; "
                             "need duration > 0, media_start >= 0, kind 'Video' or 'Audio'")
    tracks = []
    for kind, prefix in (("Video", "V"), ("Audio", "A")):
        channels = sorted({s.channel for s in strips if s.kind == kind})
        for channel in channels:
            on_channel = [s for s in strips if s.kind == kind and s.channel == channel]
            tracks.append(track(f"{prefix}{channel}", kind, _track_children(on_channel, fps)))
    stack = _item_base("Stack.1", "tracks", {})
    stack["children"] = tracks
    return {"OTIO_SCHEMA": "Timeline.1", "metadata": {"doppel": {"host_fps": str(Fraction(fps))}},
            "name": name, "global_start_time": None, "tracks": stack}


def write_otio(path: str | os.PathLike[str], timeline: dict[str, Any]) -> Path:
    """Write the timeline dict as `.otio` JSON atomically (temp file beside it, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.partial-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(timeline, fh, indent=4)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


# --- reading ------------------------------------------------------------------------------------


def load_otio(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a `.otio` file into its JSON dict; names the file on failure."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise OtioJsonError(f"return edit {str(path)!r} does not exist") from err
    except json.JSONDecodeError as err:
        raise OtioJsonError(f"return edit {str(path)!r} is not OTIO JSON: {err}") from err
    if not isinstance(data, dict) or not str(data.get("OTIO_SCHEMA", "")).startswith("Timeline."):
        got = data.get("OTIO_SCHEMA") if isinstance(data, dict) else type(data).__name__
        raise OtioJsonError(f"{str(path)!r} holds {got!r}, expected an OTIO Timeline")
    return data


def frames_of(rt: dict[str, Any] | None, fps: Fraction) -> int:
    """A RationalTime dict as host frames (rounded to the nearest frame)."""
    if not rt:
        return 0
    rate = float(rt.get("rate") or 1.0)
    return round(float(rt["value"]) * float(fps) / rate)


def _schema(item: dict[str, Any]) -> str:
    return str(item.get("OTIO_SCHEMA", "")).split(".")[0]


def active_reference(clip: dict[str, Any]) -> dict[str, Any] | None:
    """The clip's active media reference (Clip.2 `media_references`, or Clip.1 `media_reference`)."""
    if "media_references" in clip:
        refs = clip.get("media_references") or {}
        return refs.get(clip.get("active_media_reference_key") or "DEFAULT_MEDIA")
    return clip.get("media_reference")


def url_to_path(url: str, base_dir: Path) -> str:
    """file:// URL or plain path -> absolute filesystem path (relative ones resolve against base_dir)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return urllib.parse.unquote(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:
        raise OtioJsonError(f"media URL {url!r} is not a local file (scheme {parsed.scheme!r})")
    p = Path(url)
    return str(p if p.is_absolute() else (base_dir / p).resolve())


def item_duration(item: dict[str, Any], fps: Fraction) -> int:
    rng = item.get("source_range")
    if rng:
        return frames_of(rng.get("duration"), fps)
    ref = active_reference(item) if _schema(item) == "Clip" else None
    if ref and ref.get("available_range"):
        return frames_of(ref["available_range"].get("duration"), fps)
    raise OtioJsonError(f"item {item.get('name')!r} has neither a source_range nor an available_range")


def video_tracks(timeline: dict[str, Any]) -> list[dict[str, Any]]:
    tracks = (timeline.get("tracks") or {}).get("children") or []
    return [t for t in tracks if _schema(t) == "Track" and t.get("kind", "Video") == "Video"]


def placements(timeline: dict[str, Any], fps: Fraction, track_name: str = FACESWAP,
               base_dir: str | os.PathLike[str] = ".") -> list[Placement]:
    """The clips of the video tracks named `track_name` (or `track_name V2`...: Doppel puts each source
    track's swaps on its own track directly above it), bottom track first, as host-frame placements.

    media_start = source_range.start - available_range.start: NLE edits carry timecode (a clip at
    01:00:00:00 has source times near 86400 s) while media frames count from 0.
    Raises OtioJsonError naming the tracks found when there is no such track.
    """
    base = Path(base_dir)
    # Disabled tracks are left out: the return edit's FACESWAP MATTE / PLATE passes are not pictures to cut in.
    found = [t for t in video_tracks(timeline) if t.get("enabled", True)
             and (t.get("name") == track_name or str(t.get("name") or "").startswith(track_name + " "))]
    if not found:
        names = [t.get("name") for t in video_tracks(timeline)]
        raise OtioJsonError(f"return edit {timeline.get('name')!r} has no video track named {track_name!r}; "
                            f"video tracks: {names}")
    out: list[Placement] = []
    for track in found:
        out += _track_placements(track, fps, track_name, base)
    return out


def _track_placements(track: dict[str, Any], fps: Fraction, track_name: str, base: Path) -> list[Placement]:
    out: list[Placement] = []
    cursor = 0
    for item in track.get("children") or []:
        kind = _schema(item)
        if kind == "Transition":
            continue  # transitions overlap their neighbours and take no track time
        duration = item_duration(item, fps)
        if kind == "Clip":
            ref = active_reference(item) or {}
            url = ref.get("target_url")
            if not url:
                raise OtioJsonError(f"clip {item.get('name')!r} in track {track_name!r} has no file reference "
                                    f"(got {ref.get('OTIO_SCHEMA')!r})")
            src = item.get("source_range") or ref.get("available_range")
            avail = ref.get("available_range")
            media_start = frames_of(src.get("start_time"), fps) - (
                frames_of(avail.get("start_time"), fps) if avail else 0)
            out.append(Placement(name=str(item.get("name") or Path(url).name), filepath=url_to_path(url, base),
                                 record_start=cursor, duration=duration, media_start=media_start,
                                 metadata=dict(item.get("metadata") or {})))
        cursor += duration
    return out


def read_return(path: str | os.PathLike[str], fps: Fraction, track_name: str = FACESWAP) -> list[Placement]:
    """Placements of the FACESWAP track of the return edit at `path` (relative media resolve beside it)."""
    path = Path(path)
    return placements(load_otio(path), fps, track_name, base_dir=path.parent)
