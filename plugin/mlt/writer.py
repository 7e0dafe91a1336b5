"""An OTIO timeline (a Doppel return edit) as MLT XML for `melt`, Kdenlive and Shotcut.

Two things matter for a frame-exact result:

- Media times. NLE edits are in timecode: a clip at 01:00:00:00 has source times near 86400 s
  while MLT's `in`/`out` count media frames from 0. Each clip's media frame is
  `source_range.start - available_range.start`; without an `available_range` (EDL), the media's
  own start timecode (found by `renderer.media.probe`) is subtracted instead.
- A bounded length. The black background and the tractor carry `out = duration - 1`, so no black
  tail is rendered after the last clip.

Track order is OTIO's: the first track is the bottom. Every video track is composited over the
black background with a `qtblend` transition (as Kdenlive and Shotcut do), so an upper clip covers
the ones below and gaps show what is underneath.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import opentimelineio as otio

from renderer.atomic import write_text_atomic
from renderer.errors import InputError


@dataclass(frozen=True)
class MediaFacts:
    """What the writer needs to know about a media file it cannot learn from the edit."""

    width: int
    height: int
    fps: Fraction
    start_frame: int  # the file's start timecode as a frame count at `fps` (0 when it has none)


def probe_media(path: Path) -> MediaFacts:
    """MediaFacts from `renderer.media.probe` (the project's only PyAV user)."""
    from renderer import media

    info = media.probe(path)
    start = media.timecode_to_frame(info.timecode, info.fps) if info.timecode else 0
    return MediaFacts(width=info.width, height=info.height, fps=Fraction(info.fps), start_frame=start)


def _path_of(ref: Any, base_dir: Path) -> Path:
    url = getattr(ref, "target_url", None)
    if not url:
        raise InputError(f"media reference {type(ref).__name__} has no target_url; only file references "
                         "(ExternalReference) can be written to MLT")
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise InputError(f"media URL {url!r} is not a local file (scheme {parsed.scheme!r})")
    p = Path(url)
    return p if p.is_absolute() else (base_dir / p).resolve()


@dataclass(frozen=True)
class _Entry:
    path: Path
    media_in: int  # first media frame, 0-based, at the profile rate
    length: int  # frames


def _track_items(track: otio.schema.Track, fps: Fraction, base_dir: Path,
                 probe: Callable[[Path], MediaFacts]) -> list[_Entry | int]:
    """Track children as entries and blank lengths (ints), in profile frames."""
    items: list[_Entry | int] = []
    for child in track:
        if isinstance(child, otio.schema.Transition):
            continue  # overlaps its neighbours, takes no track time; rendered as a cut
        length = round(child.duration().to_seconds() * float(fps))
        if isinstance(child, otio.schema.Gap):
            items.append(length)
        elif isinstance(child, otio.schema.Clip):
            ref = child.media_reference
            path = _path_of(ref, base_dir)
            src = child.trimmed_range()
            avail = getattr(ref, "available_range", None)
            if avail is not None:
                offset = (src.start_time - avail.start_time).to_seconds()
            else:
                facts = probe(path)
                offset = src.start_time.to_seconds() - facts.start_frame / float(facts.fps)
            media_in = round(offset * float(fps))
            if media_in < 0:
                raise InputError(f"clip {child.name!r} in track {track.name!r} starts {-media_in} frames before its "
                                 f"media {str(path)!r} (source {src.start_time}, available {avail})")
            items.append(_Entry(path, media_in, length))
        else:
            raise InputError(f"track {track.name!r} holds a {type(child).__name__} ({child.name!r}); "
                             "supported: Clip, Gap, Transition")
    return items


def _prop(parent: ET.Element, name: str, value: object) -> None:
    ET.SubElement(parent, "property", name=name).text = str(value)


def timeline_to_mlt(timeline: otio.schema.Timeline, *, base_dir: str | os.PathLike[str] = ".",
                    fps: Fraction | None = None, size: tuple[int, int] | None = None,
                    probe: Callable[[Path], MediaFacts] = probe_media) -> str:
    """The MLT XML document (a string) of `timeline`.

    fps / size: the profile; default the first video clip's rate and its media's size (probed).
    """
    base = Path(base_dir)
    clips = list(timeline.find_clips())
    if not clips:
        raise InputError(f"timeline {timeline.name!r} holds no clips; nothing to write to MLT")
    # Disabled tracks (a return edit's FACESWAP MATTE / PLATE passes) take no part in the picture.
    video = [t for t in timeline.tracks if isinstance(t, otio.schema.Track) and t.kind == otio.schema.TrackKind.Video
             and t.enabled]
    audio = [t for t in timeline.tracks if isinstance(t, otio.schema.Track) and t.kind == otio.schema.TrackKind.Audio
             and t.enabled]
    first_video = next((c for t in video for c in t.find_clips()), clips[0])
    if fps is None:
        fps = Fraction(first_video.trimmed_range().duration.rate).limit_denominator(1001)
    if size is None:
        facts = probe(_path_of(first_video.media_reference, base))
        size = (facts.width, facts.height)
    total = max(round(t.duration().to_seconds() * float(fps)) for t in video + audio)
    if total <= 0:
        raise InputError(f"timeline {timeline.name!r} is empty (duration 0)")
    width, height = size

    root = ET.Element("mlt", LC_NUMERIC="C", version="7.12.0", title=timeline.name or "doppel",
                      producer="main_bin")
    ET.SubElement(root, "profile", description=f"doppel {width}x{height} {float(fps):.3f}", width=str(width),
                  height=str(height), progressive="1", sample_aspect_num="1", sample_aspect_den="1",
                  display_aspect_num=str(width), display_aspect_den=str(height),
                  frame_rate_num=str(fps.numerator), frame_rate_den=str(fps.denominator), colorspace="709")
    black = ET.SubElement(root, "producer", id="black", **{"in": "0", "out": str(total - 1)})
    for k, v in (("length", total), ("eof", "pause"), ("resource", "0"), ("mlt_service", "color"),
                 ("mlt_image_format", "rgb24a"), ("set.test_audio", 0)):
        _prop(black, k, v)
    background = ET.SubElement(root, "playlist", id="background")
    ET.SubElement(background, "entry", producer="black", **{"in": "0", "out": str(total - 1)})

    producers: dict[Path, str] = {}
    track_ids: list[tuple[str, str]] = []  # (playlist id, hide)
    for kind, tracks in (("video", video), ("audio", audio)):
        for n, track in enumerate(tracks):
            items = _track_items(track, fps, base, probe)
            for entry in items:
                if isinstance(entry, _Entry) and entry.path not in producers:
                    pid = f"producer{len(producers)}"
                    producers[entry.path] = pid
                    prod = ET.Element("producer", id=pid)
                    _prop(prod, "resource", entry.path)
                    _prop(prod, "mlt_service", "avformat")
                    _prop(prod, "seekable", 1)
                    root.insert(list(root).index(background), prod)
            pl_id = f"{kind}{n}"
            playlist = ET.SubElement(root, "playlist", id=pl_id)
            _prop(playlist, "doppel:track_name", track.name)
            for entry in items:
                if isinstance(entry, int):
                    if entry > 0:
                        ET.SubElement(playlist, "blank", length=str(entry))
                else:
                    ET.SubElement(playlist, "entry", producer=producers[entry.path],
                                  **{"in": str(entry.media_in), "out": str(entry.media_in + entry.length - 1)})
            # Audio: from the audio tracks when there are any, else from the bottom video track only.
            if kind == "video":
                hide = "audio" if (audio or n > 0) else ""
            else:
                hide = "video"
            track_ids.append((pl_id, hide))

    tractor = ET.SubElement(root, "tractor", id="tractor0", title=timeline.name or "doppel",
                            **{"in": "0", "out": str(total - 1)})
    multitrack = ET.SubElement(tractor, "multitrack")
    ET.SubElement(multitrack, "track", producer="background")
    for pl_id, hide in track_ids:
        attrs = {"producer": pl_id}
        if hide:
            attrs["hide"] = hide
        ET.SubElement(multitrack, "track", **attrs)
    for index, (pl_id, hide) in enumerate(track_ids, start=1):
        if hide != "video":
            t = ET.SubElement(tractor, "transition", id=f"composite{index}")
            for k, v in (("a_track", 0), ("b_track", index), ("mlt_service", "qtblend"),
                         ("always_active", 1), ("compositing", 0), ("rotate_center", 0)):
                _prop(t, k, v)
        if hide != "audio":
            t = ET.SubElement(tractor, "transition", id=f"mix{index}")
            for k, v in (("a_track", 0), ("b_track", index), ("mlt_service", "mix"), ("always_active", 1),
                         ("sum", 1)):
                _prop(t, k, v)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_mlt(timeline_or_otio_path: otio.schema.Timeline | str | os.PathLike[str],
              out_path: str | os.PathLike[str], *, fps: Fraction | None = None,
              size: tuple[int, int] | None = None,
              probe: Callable[[Path], MediaFacts] = probe_media) -> Path:
    """Write `timeline_or_otio_path` (a Timeline, or any edit `renderer.timeline.read_edit` reads)
    as MLT XML at `out_path`, atomically. Relative media paths resolve beside the edit file.
    Raises InputError naming the edit, clip or track that cannot be written."""
    if isinstance(timeline_or_otio_path, otio.schema.Timeline):
        timeline, base = timeline_or_otio_path, Path(out_path).resolve().parent
    else:
        from renderer.timeline import read_edit

        edit = Path(timeline_or_otio_path)
        timeline, base = read_edit(edit), edit.resolve().parent
    out = Path(out_path)
    if out.suffix.lower() not in (".mlt", ".kdenlive", ".xml"):
        raise InputError(f"MLT output {str(out)!r} should end in .mlt (or .kdenlive / .xml); got {out.suffix!r}")
    write_text_atomic(out, timeline_to_mlt(timeline, base_dir=base, fps=fps, size=size, probe=probe))
    return out
