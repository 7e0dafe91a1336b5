"""FACESWAP marks in each format's own syntax, for the conformance walk (`tests.sample_edits`).

`mark_edit` copies a sample edit with a FACESWAP mark on each video clip of the given media, the
way an editor marks it in that NLE: an OTIO marker, an FCP7 clip `<marker>` at the clipitem's
own in point, a one-frame FCPXML `<marker>`, an EDL `* LOC:` line, an Avid DescriptiveMarker on
the picture track's event slot (written with pyaaf2, which the AAF adapter reads with).
"""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import opentimelineio as otio
from opentimelineio.opentime import RationalTime as RT, TimeRange as TR

from tests.edit_picture import media_key, url_name

MARK = "FACESWAP"


_EDL_LINE = re.compile(r"^\s*(\d+)\s+(\S+)\s+(\S+)\s+(\S+)(?:\s+(\d+))?\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$")


def _mark_otio(path: Path, dst: Path, keys: set[str]) -> int:
    tl = otio.adapters.read_from_file(str(path), adapter_name="otio_json")
    timelines = [tl] if isinstance(tl, otio.schema.Timeline) else list(
        tl.find_children(descended_from_type=otio.schema.Timeline))
    marked = 0
    for t in timelines:
        for track in t.video_tracks():
            for clip in track.find_clips():
                if media_key(clip) in keys:
                    start = clip.trimmed_range().start_time
                    clip.markers.append(otio.schema.Marker(name=MARK, marked_range=TR(start, RT(0, start.rate)),
                                                           color=otio.schema.MarkerColor.RED))
                    marked += 1
    otio.adapters.write_to_file(tl, str(dst), adapter_name="otio_json")
    return marked


def _mark_fcp7(path: Path, dst: Path, keys: set[str]) -> int:
    """A point `<marker>` at the clipitem's own `<in>` (FCP7 clip markers count media frames, like in/out)."""
    tree = ET.parse(path)
    files = {f.get("id"): f for f in tree.iter("file") if f.find("pathurl") is not None or f.find("name") is not None}
    marked = 0
    items = [item for video in tree.iter("video") for track in video.findall("track")
             for item in track.findall("clipitem")]
    for item in items:
        file_el = item.find("file")
        if file_el is None:
            continue
        full = files.get(file_el.get("id"), file_el)
        url = full.findtext("pathurl") or ""
        name = url_name(url) if url else f"{item.findtext('name') or ''}.mov"
        if name not in keys or item.findtext("in") is None:
            continue
        marker = ET.SubElement(item, "marker")
        ET.SubElement(marker, "comment").text = ""
        ET.SubElement(marker, "name").text = MARK
        ET.SubElement(marker, "in").text = item.findtext("in")
        ET.SubElement(marker, "out").text = "-1"
        marked += 1
    tree.write(dst, encoding="UTF-8", xml_declaration=True)
    return marked


def _mark_fcpx(path: Path, dst: Path, keys: set[str]) -> int:
    """A one-frame `<marker>` at each video clip's own start (FCP X markers always last one frame)."""
    tree = ET.parse(path)
    root = tree.getroot()
    assets = {a.get("id"): a for a in root.iter("asset")}
    formats = {f.get("id"): f.get("frameDuration") for f in root.iter("format")}
    marked = 0
    for seq in root.iter("sequence"):
        frame = formats.get(seq.get("format")) or "1/24s"
        # the <video> inside a <clip> is the clip's media: the clip carries the marker
        inner_videos = {v for c in seq.iter("clip") for v in c if v.tag == "video"}
        for el in seq.iter():
            if el.tag not in ("asset-clip", "clip", "video"):
                continue
            ref = el.get("ref") or next((v.get("ref") for v in el.iter("video")), None)
            asset = assets.get(ref)
            if asset is None:
                continue
            src = asset.get("src") or next((m.get("src") for m in asset.iter("media-rep")), "") or ""
            if url_name(src) not in keys or el in inner_videos:
                continue
            marker = ET.SubElement(el, "marker", start=el.get("start", "0s"), duration=frame, value=MARK)
            marker.tail = "\n"
            marked += 1
    tree.write(dst, encoding="UTF-8", xml_declaration=True)
    return marked


_EDL_SOURCE = re.compile(r"^\*\s*(FROM CLIP NAME|FROM CLIP|FROM FILE)\s*:\s*(.*?)\s*$", re.IGNORECASE)


def _edl_event_key(block: list[str]) -> str | None:
    """The media key (see `media_key`) of one EDL event's comment lines: its source path's file name,
    else its clip name."""
    found = {m.group(1).upper(): m.group(2) for m in map(_EDL_SOURCE.match, block) if m}
    path = found.get("FROM CLIP") or found.get("FROM FILE")
    if path:
        return url_name(path)
    name = found.get("FROM CLIP NAME")
    if not name:
        return None
    clip = otio.schema.Clip(name=name)
    return media_key(clip)


def _mark_edl(path: Path, dst: Path, keys: set[str] | None) -> int:
    """`* LOC: <record in> RED FACESWAP` after each video event that shows a clip (of media in `keys`,
    when given)."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    out: list[str] = []
    marked = 0
    block: list[str] = []
    loc: str | None = None

    def close() -> None:
        nonlocal marked
        out.extend(block)
        if loc and (keys is None or _edl_event_key(block) in keys):
            out.append(loc)
            marked += 1

    for line in lines:
        m = _EDL_LINE.match(line)
        if m and m.group(1).isdigit():
            close()
            block, loc = [], None
            track, rec_in, rec_out = m.group(3), m.group(8), m.group(9)
            if track.upper().startswith("V") and rec_in != rec_out:
                loc = f"* LOC: {rec_in} RED     {MARK}"
        block.append(line)
    close()
    dst.write_text("\n".join(out) + "\n", encoding="utf-8")
    return marked


def _mark_aaf(path: Path, dst: Path) -> int:
    """Avid's own marker: a DescriptiveMarker (Length 0) in an EventMobSlot of the composition,
    on the picture slot's physical track, in the middle of each clip (written with pyaaf2,
    the library the AAF adapter reads with). Only top-level picture sequences are marked."""
    import aaf2

    shutil.copyfile(path, dst)
    marked = 0
    with aaf2.open(str(dst), "rw") as f:
        try:
            f.dictionary.lookup_datadef("DescriptiveMetadata")
        except Exception:  # pyaaf2 raises bare Exception: files without markers lack the definition
            f.dictionary.register_def(f.create.DataDef("01030201-1000-0000-060e-2b3404010101",
                                                       "DescriptiveMetadata", "Descriptive Metadata"))
        for mob in f.content.toplevel():
            next_id = max((s.slot_id for s in mob.slots), default=0) + 1
            for slot in [s for s in mob.slots if s.media_kind == "Picture"]:
                # Avid's multi-track sequence is one NestedScope slot: its tracks are numbered from 1
                if type(slot.segment).__name__ == "NestedScope":
                    tracks = list(enumerate(slot.segment.slots, start=1))
                else:
                    number = slot["PhysicalTrackNumber"].value if "PhysicalTrackNumber" in slot.keys() else 1
                    tracks = [(number, slot.segment)]
                for number, segment in tracks:
                    clips = _aaf_clips(segment)
                    if not clips:
                        continue
                    events = f.create.EventMobSlot()
                    events.edit_rate = slot.edit_rate
                    events.slot_id = next_id
                    next_id += 1
                    events["PhysicalTrackNumber"].value = number
                    seq = f.create.Sequence(media_kind="DescriptiveMetadata")
                    for position, length in clips:
                        marker = f.create.DescriptiveMarker()
                        # mid-clip, as an editor drops it: a marker on a cut or a dissolve is the adapter's guess
                        marker["Position"].value = position + length // 2
                        marker["Length"].value = 0
                        marker["Comment"].value = MARK
                        marker["CommentMarkerColor"].value = {"red": 41471, "green": 12134, "blue": 6564}
                        marker["DescribedSlots"].value = {slot.slot_id}
                        seq.components.append(marker)
                        marked += 1
                    events.segment = seq
                    mob.slots.append(events)
    return marked


def _aaf_clips(segment: Any) -> list[tuple[int, int]]:
    """(record position, length) of the part of each clip the cut shows, along a top-level picture
    sequence. An AAF segment next to a transition spans the transition too (the transition overlaps
    both neighbours): the cut shows the outgoing one up to the transition's CutPoint and the incoming
    one from there, so a marker dropped mid-clip sits in the middle of that part, not on the cut."""
    comps = list(segment.components) if hasattr(segment, "components") else [segment]
    kinds = [type(c).__name__ for c in comps]
    out: list[tuple[int, int]] = []
    pos = 0
    for i, comp in enumerate(comps):
        length = int(comp.length or 0)
        if kinds[i] == "Transition":
            pos -= length
            continue
        if kinds[i] in ("SourceClip", "OperationGroup", "Selector", "EssenceGroup"):
            start, end = pos, pos + length
            if i > 0 and kinds[i - 1] == "Transition":
                start += int(comps[i - 1]["CutPoint"].value)
            if i + 1 < len(comps) and kinds[i + 1] == "Transition":
                end -= int(comps[i + 1].length or 0) - int(comps[i + 1]["CutPoint"].value)
            out.append((start, max(0, end - start)))
        pos += length
    return out


def mark_edit(path: Path, dst: Path, keys: set[str], *, edl_all: bool = True) -> int:
    """Copy `path` to `dst` with a FACESWAP mark on every video clip whose media key is in `keys`,
    in the format's own syntax; returns how many marks were written. EDL events are all marked
    unless `edl_all` is False (their keys are guessed from the comment lines); AAF: every clip."""
    suffix = path.suffix.lower()
    dst.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".otio":
        return _mark_otio(path, dst, keys)
    if suffix == ".xml":
        return _mark_fcp7(path, dst, keys)
    if suffix == ".fcpxml":
        return _mark_fcpx(path, dst, keys)
    if suffix == ".edl":
        return _mark_edl(path, dst, None if edl_all else keys)
    if suffix == ".aaf":
        return _mark_aaf(path, dst)
    raise ValueError(f"no marking for {suffix}")


__all__ = ["MARK", "mark_edit"]
