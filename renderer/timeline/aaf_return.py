"""AAF return edits: what the AAF adapter's writer cannot say by itself, mended before and after it writes.

Measured on the adapter this project pins (otio-aaf-adapter 2.0.0) with its own sample edits:

- it refuses (AAFValidationError) a clip whose media reference is timed at another rate than the
  sequence (an Avid 29.97 sequence over 23.976 media, 2997fps-DFTC.aaf). The writer writes every
  mob slot at the sequence's edit rate anyway, so the copy it gets has such ranges rescaled to the
  sequence rate: the same stretch of media, counted in the sequence's frames;
- it writes a nested sequence (an OTIO stack, Avid's Submaster nest) as long as the SUM of its
  tracks (three 33-frame tracks: a 99-frame nest), which moves every later clip of the track;
  the nest's length is set to its own after writing (nested_stack.aaf);
- it writes a disabled (muted) clip as a plain, playing one; Avid mutes a clip by wrapping it in
  a Selector whose selected segment is Filler and whose alternate is the clip, which is what the
  adapter reads back as `enabled=False`: that is written after (test_muted_clip.aaf);
- it makes the media descriptor of a picture clip of the class the edit read (Avid's
  MultipleDescriptor, picture and sound in one file) and then sets picture fields on it
  (KeyError 'ImageAspectRatio'): such a clip's copy is left without the class, so the writer
  writes its default picture descriptor (2997fps-DFTC.aaf);
- it writes one top-level timeline only: an edit with several (multiple_top_level_mobs.aaf) is
  refused in one line, the .otio return holds them all.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import opentimelineio as otio
from opentimelineio.opentime import RationalTime, TimeRange

from renderer.errors import InputError


def check_writable(timeline: otio.core.SerializableObject, out_path: Path) -> None:
    """InputError in one line when the AAF writer cannot hold `timeline` (several timelines)."""
    if isinstance(timeline, otio.schema.SerializableCollection):
        count = len(list(timeline.find_children(descended_from_type=otio.schema.Timeline, shallow_search=True)))
        raise InputError(f"cannot write AAF (Avid) {out_path}: the edit holds {count} top-level compositions and "
                         f"the AAF writer writes one; the .otio return holds them all")


def _at_rate(t: RationalTime, rate: float) -> RationalTime:
    return RationalTime(round(t.value_rescaled_to(rate)), rate)


PICTURE_DESCRIPTORS = ("CDCIDescriptor", "RGBADescriptor")


def prepare(timeline: otio.schema.Timeline) -> otio.schema.Timeline:
    """A copy of `timeline` the AAF writer validates: every clip's media `available_range` at the rate
    the clip is timed at, and every picture clip's media described as a picture (see the module
    docstring)."""
    out = copy.deepcopy(timeline)
    for track in out.video_tracks():
        for clip in track.find_clips():
            aaf = clip.media_reference.metadata.get("AAF") if clip.media_reference is not None else None
            described = aaf.get("EssenceDescription") if aaf is not None and hasattr(aaf, "get") else None
            if described is not None and hasattr(described, "get") and described.get("ClassName") not in (
                    None, *PICTURE_DESCRIPTORS):
                # Avid's MultipleDescriptor (picture and sound in one file): the writer would make one and
                # set picture fields on it (KeyError 'ImageAspectRatio'); without a class it writes the
                # picture descriptor it defaults to
                del described["ClassName"]
    for clip in out.find_clips():
        ref = clip.media_reference
        avail = getattr(ref, "available_range", None)
        if avail is None or clip.source_range is None:
            continue
        rate = clip.source_range.duration.rate
        if avail.duration.rate != rate or avail.start_time.rate != rate:
            ref.available_range = TimeRange(_at_rate(avail.start_time, rate), _at_rate(avail.duration, rate))
    return out


def _kind(obj: Any) -> str:
    return type(obj).__name__


def _mend(f: Any, components: list[Any], items: list[otio.core.Composable]) -> list[Any] | None:
    """The components of one written AAF sequence, mended against the OTIO items they were written
    from (one component per item, in order); None when nothing changed or they do not line up."""
    if len(components) != len(items):
        return None
    changed = False
    out: list[Any] = []
    for comp, item in zip(components, items):
        kind = _kind(comp)
        if kind == "OperationGroup" and isinstance(item, (otio.schema.Stack, otio.schema.Track)):
            inner = list(item) if isinstance(item, otio.schema.Stack) else [item]
            segments = list(comp.segments)
            for seg, child in zip(segments, inner):
                if _kind(seg) == "Sequence" and isinstance(child, otio.schema.Track):
                    mended = _mend(f, list(seg.components), list(child))
                    if mended is not None:
                        seg["Components"].value = mended
            length = round(item.trimmed_range().duration.value)
            if comp.length != length:
                comp.length = length
                changed = True
        elif kind == "SourceClip" and isinstance(item, otio.schema.Clip) and not item.enabled:
            length = comp.length
            clip = comp.copy()
            selector = f.create.Selector()
            selector.media_kind = comp.media_kind
            selector.length = length
            selector["Selected"].value = f.create.Filler(comp.media_kind, length)
            selector["Alternates"].value = [clip]
            comp = selector
            changed = True
        out.append(comp)
    return out if changed else None


def mend_written(path: Path, timeline: otio.schema.Timeline) -> None:
    """Fix, in the AAF file the adapter wrote from `timeline`, the nest lengths and muted clips it
    gets wrong (see the module docstring). Writes nothing when nothing needs it."""
    needs = any(isinstance(i, otio.schema.Stack) for i in timeline.find_children()) or any(
        not c.enabled for c in timeline.find_clips())
    if not needs:
        return
    import aaf2

    tracks = [t for t in timeline.tracks if len(t)]  # the writer makes one slot per non-empty track, in order
    with aaf2.open(str(path), "rw") as f:
        mobs = list(f.content.compositionmobs())
        if len(mobs) != 1:
            return
        slots = [s for s in mobs[0].slots if s.media_kind in ("Picture", "Sound")]
        if len(slots) != len(tracks):
            return
        for slot, track in zip(slots, tracks):
            seq = slot.segment
            if _kind(seq) != "Sequence":
                continue
            mended = _mend(f, list(seq.components), list(track))
            if mended is not None:
                seq["Components"].value = mended


__all__ = ["check_writable", "mend_written", "prepare"]
