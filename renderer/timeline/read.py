"""Read an edit through its OTIO adapter, and find the media files its clips name.

Formats go through the official OpenTimelineIO adapters: `.otio`, `.otioz`
(OTIO), `.xml` (FCP7 XML: Premiere, Resolve), `.fcpxml` (Final Cut Pro), `.edl`
(CMX 3600: Avid, anything), `.aaf` (Avid).
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio
from opentimelineio.opentime import RationalTime, TimeRange

from renderer.errors import InputError

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


def read_edit(path: str | Path, *, edl_rate: Fraction | float | None = None) -> otio.schema.Timeline:
    """The first timeline of `read_timelines(path)` (the one Doppel renders)."""
    return read_timelines(path, edl_rate=edl_rate)[0]


def read_timelines(path: str | Path, *, edl_rate: Fraction | float | None = None) -> list[otio.schema.Timeline]:
    """Every timeline of an edit (an FCPXML library or event holds several projects), read
    through the OTIO adapter its extension names. Raises InputError.

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
    if suffix == ".aaf":
        kwargs["attach_markers"] = False  # the adapter attaches Avid's markers to the wrong clip: see _attach_aaf
    extracted: Path | None = None
    try:
        if suffix == ".otioz":
            from renderer.otioz import unpack  # a private folder per read, size-capped

            extracted = unpack(path)
            timeline = otio.adapters.read_from_file(str(extracted / "content.otio"), adapter_name="otio_json")
        else:
            # the AAF reader prints ("Unable find slot_id: 0 in mob None creating Gap"): keep it off stdout,
            # where --json puts the summary a farm parses
            with contextlib.redirect_stdout(io.StringIO()):
                timeline = otio.adapters.read_from_file(str(path), adapter_name=ADAPTERS[suffix], **kwargs)
    except InputError:
        raise
    except otio.exceptions.UnsupportedSchemaError as err:
        raise InputError(
            f"cannot read edit {path}: it was written by a newer OpenTimelineIO than the {otio.__version__} "
            f"this Doppel reads ({err}); export it again from an NLE or tool on OTIO {otio.__version__}, or "
            f"downgrade it with `otioconvert` there"
        ) from err
    except (zipfile.BadZipFile, otio.exceptions.OTIOError, ValueError, KeyError, AttributeError,
            IndexError, TypeError, UnicodeDecodeError, OSError) as err:
        given = edl_rate is not None
        hint = ((f" (EDLs carry no frame rate; it was read at {kwargs['rate']:g} fps, "
                 + ("as --edl-rate said: is that the edit's rate?)" if given else
                    "the default: pass the edit's rate, e.g. --edl-rate 25)")) if suffix == ".edl" else "")
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
    elif isinstance(timeline, otio.schema.Timeline):
        timelines = [timeline]
    else:
        raise InputError(f"edit {path} holds a {type(timeline).__name__}, not a timeline")
    for each in timelines:
        _fix_up(each, path, suffix, kwargs, extracted)
    if suffix == ".xml":  # the nested sequences the adapter reads empty (renderer.timeline.fcp7)
        from renderer.timeline.fcp7 import fill_nests

        fill_nests(timelines, path)
    if suffix == ".fcpxml":  # the transitions the adapter does not read (renderer.timeline.fcpx)
        from renderer.timeline.fcpx import note_transitions

        note_transitions(timelines, path)
    return timelines


def _attach_aaf(timeline: otio.schema.Timeline) -> None:
    """Put each Avid marker on the clip it marks.

    Avid writes markers on an event track, at record positions, naming the slot they describe
    (`AttachedSlotID`). The AAF adapter's own attachment put a marker at record 13 on the clip that
    starts at record 26 (seen on its 30fps.aaf sample), so it is read with attach_markers=False and
    each marker goes here to the clip of that slot under its record position, in the clip's source
    time; the event tracks are then dropped, as the adapter does when it attaches.
    """
    tracks = list(timeline.tracks)
    videos = [t for t in tracks if t.kind == otio.schema.TrackKind.Video]
    # Avid's multi-track sequence is one NestedScope slot: every track the adapter makes of it
    # carries that slot's SlotID, told apart only by its 1-based PhysicalTrackNumber in the scope
    # (the adapter leaves the scope's later tracks without metadata at times, composite.aaf's V2: such a
    # track is the next one of the scope before it, or its marker would land on V1's clip)
    by_slot: dict[Any, otio.schema.Track] = {}
    by_number: dict[tuple[Any, Any], otio.schema.Track] = {}
    last: tuple[Any, Any] = (None, None)
    for t in videos:
        md = (t.metadata.get("AAF") or {}) if t.metadata else {}
        if md.get("SlotID") is None and isinstance(last[1], int):
            key = (last[0], last[1] + 1)
        else:
            key = (md.get("SlotID"), md.get("PhysicalTrackNumber"))
        last = key
        by_slot.setdefault(key[0], t)
        by_number.setdefault(key, t)
    events = [t for t in tracks if t.kind not in (otio.schema.TrackKind.Video, otio.schema.TrackKind.Audio)]
    for event in events:
        for marker in list(event.markers):
            aaf = marker.metadata.get("AAF") if marker.metadata else None
            got = aaf.get if aaf is not None and hasattr(aaf, "get") else (lambda key: None)
            slot = got("AttachedSlotID")
            number = got("AttachedPhysicalTrackNumber")
            if number is None:
                number = ((event.metadata.get("AAF") or {}) if event.metadata else {}).get("PhysicalTrackNumber")
            track = (by_number.get((slot, number)) or by_slot.get(slot)
                     or (videos[0] if videos else None))
            if track is None:
                continue
            hit = _marked_at(track, marker.marked_range.start_time)
            if hit is not None:
                clip, local = hit
                moved = marker.clone()
                moved.marked_range = TimeRange(local, marker.marked_range.duration)
                clip.markers.append(moved)
    for event in events:
        timeline.tracks.remove(event)


_TO_CLIP = re.compile(r"^TO CLIP\s*:\s*(.+?)\s*$")


def _relink_incoming(timeline: otio.schema.Timeline) -> None:
    """Give a dissolve's incoming EDL event the media its `* TO CLIP:` line names.

    A CMX 3600 dissolve is one event naming both sides: `* FROM CLIP:` the outgoing media, `* TO CLIP:`
    the incoming. The cmx_3600 reader makes the incoming clip of that event with the FROM CLIP file and
    keeps the TO CLIP line only as a comment (measured on the adapter's own output): that clip would
    render, and come back, with the outgoing clip's frames.
    """
    for clip in timeline.find_clips():
        cmx = clip.metadata.get("cmx_3600") if clip.metadata else None
        comments = cmx.get("comments") if cmx is not None and hasattr(cmx, "get") else None
        for comment in comments or ():
            m = _TO_CLIP.match(str(comment))
            if m:
                ref = clip.media_reference
                avail = getattr(ref, "available_range", None)
                clip.media_reference = otio.schema.ExternalReference(target_url=m.group(1), available_range=avail)
                break


def _marked_at(track: otio.schema.Track, at: RationalTime
               ) -> tuple[otio.core.Composable, RationalTime] | None:
    """The clip or nested sequence `track` shows at record time `at`, and the time there.

    A marker over an Avid nest marks the nest, as the editor sees it (one segment of the
    sequence): it goes on the nested stack or track, whose marked clips planning refuses by
    name, instead of being lost."""
    for i, child in enumerate(track):
        span = track.range_of_child_at_index(i)
        if (isinstance(child, (otio.schema.Clip, otio.schema.Stack, otio.schema.Track))
                and span.start_time <= at < span.end_time_exclusive()):
            return child, child.trimmed_range().start_time + (at - span.start_time)
    return None


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


def _fix_up(timeline: otio.schema.Timeline, path: Path, suffix: str, kwargs: dict[str, Any],
            extracted: Path | None) -> otio.schema.Timeline:
    """What the adapters leave out: an EDL's record start, an unpacked bundle's media paths, and
    where Avid's markers belong; and a check that every time in it is a number."""
    check_rates(timeline, path)
    if suffix == ".aaf":
        _attach_aaf(timeline)
    if suffix == ".edl":
        _relink_incoming(timeline)
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


MOVIE_SUFFIXES = (".mov", ".mp4", ".mxf", ".m4v", ".avi", ".mkv")
STILL_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dpx", ".exr")


def _url_to_path(url: str) -> Path:
    if url.startswith("file:"):
        parsed = urllib.parse.urlparse(url)
        return Path(urllib.request.url2pathname(parsed.path))
    if "\\" in url and "/" not in url:  # a Windows path (EDL FROM FILE, Avid): only its file name helps here
        return Path(re.split(r"[\\]", url)[-1])
    return Path(urllib.parse.unquote(url)) if "%" in url else Path(url)


def resolve_media(url: str, edit_dir: Path, roots: Sequence[Path]) -> tuple[Path | None, list[Path]]:
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


def find_clip_media(clip: otio.schema.Clip, edit_dir: Path, roots: Sequence[Path]
                    ) -> tuple[Path | None, str, list[Path]]:
    """(media file, the rule that matched it, every place looked) for one clip.

    Rules, in order: the reference's path (as given, then its file name under the edit's folder
    and each root: Windows `FROM FILE` paths and moved media), then, for clips that name no file
    (EDL events, offline media), the clip name, then the EDL reel, each as a file name with or
    without a movie extension under the edit's folder and each root.
    """
    ref = clip.media_reference
    url = getattr(ref, "target_url", None) if ref is not None else None
    tried: list[Path] = []
    if url:
        found, tried = resolve_media(url, edit_dir, roots)
        if found is not None:
            return found, "path", tried
    names: list[tuple[str, str]] = []
    if clip.name:
        names.append(("clip name", clip.name.strip()))
    reel = (clip.metadata.get("cmx_3600") or {}).get("reel") if clip.metadata else None
    if reel:
        names.append(("reel", str(reel).strip()))
    for rule, name in names:
        if not name or "/" in name or "\\" in name:
            continue
        stems = [name] if Path(name).suffix.lower() in MOVIE_SUFFIXES else [name + ext for ext in MOVIE_SUFFIXES]
        for folder in [edit_dir, *roots]:
            for stem in stems:
                cand = Path(folder) / stem
                if cand in tried:
                    continue
                tried.append(cand)
                if cand.is_file():
                    return cand, rule, tried
    return None, "", tried


__all__ = ["ADAPTERS", "FORMAT_NAMES", "MOVIE_SUFFIXES", "STILL_SUFFIXES", "find_clip_media", "read_edit",
           "read_timelines", "resolve_media"]
