"""FACESWAP markers: which part of a clip a marker asks to swap, and its `key=value` overrides."""

from __future__ import annotations

import shlex

import opentimelineio as otio
from opentimelineio.opentime import RationalTime, TimeRange

from renderer.errors import InputError

MARK_WORD = "FACESWAP"
METADATA_KEY = "doppel"


def parse_marker_words(text: str, where: str, warnings: list[str] | None = None) -> dict[str, str]:
    """`key=value` words of a marker name or comment -> dict (keys lower-cased).

    The leading FACESWAP word is skipped. Any other word without `=` is an InputError, or, when
    `warnings` is given, left out with a line appended there (an editor's note in a marker must
    not stop a whole render: the clip renders with the words that are overrides).
    """
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    out: dict[str, str] = {}
    for i, word in enumerate(words):
        if i == 0 and word.upper().startswith(MARK_WORD) and "=" not in word:
            continue
        if "=" not in word or word.startswith("="):
            text = (f"word '{word}' in {where} is not key=value; write overrides like "
                    f"'FACESWAP colour=rct model=jane'")
            if warnings is None:
                raise InputError(text)
            warnings.append(f"{text} (ignored)")
            continue
        key, value = word.split("=", 1)
        out[key.strip().lower()] = value.strip()
    return out


RANGE_KEY = "range"
RANGE_VALUES = ("clip", "marker")


def _media_relative(marker: otio.schema.Marker, clip: otio.schema.Clip) -> TimeRange:
    """An FCP7 XML clip marker's range in the clip's source time.

    FCP7 counts clip-marker in/out from the first frame of the media, as clipitem in/out (Premiere's
    own files show it), but the adapter adds the media's start timecode only to the clip's range:
    a marker before the media's start is media-relative, so shift it by that start. (A marker the
    adapter itself wrote is already in timecode and lies inside the media.)
    """
    mr = marker.marked_range
    avail = getattr(clip.media_reference, "available_range", None)
    if avail is not None and avail.start_time.value > 0 and mr.start_time < avail.start_time:
        return TimeRange(mr.start_time + avail.start_time, mr.duration)
    return mr


def marked_ranges(clip: otio.schema.Clip, where: str, *, fcp7: bool = False, warnings: list[str] | None = None
                  ) -> list[tuple[TimeRange, dict[str, str], str]]:
    """[(source range to swap, overrides, marker text)] for one clip; [] when unmarked.

    A marker of at most one frame marks the whole clip (FCP X markers are always one frame long,
    Avid's markers without a length read as one frame, EDL LOC markers have none), unless it says
    `range=marker`; a longer marker limits the swap to its frames (`range=clip` widens it to the
    clip). `fcp7`: clip markers count frames from the media's start (see `_media_relative`).
    `warnings`: where marker words that are not overrides are reported (else they raise).
    """
    meta = clip.metadata.get(METADATA_KEY) if clip.metadata else None
    base: dict[str, str] = {}
    meta_marked = False
    if meta:
        if not hasattr(meta, "items"):
            raise InputError(f"clip metadata '{METADATA_KEY}' of {where} must be a mapping, got {meta!r}")
        for key, value in meta.items():
            if str(key).lower() == "faceswap":
                meta_marked = bool(value) and str(value).lower() not in ("false", "0", "no")
            else:
                base[str(key).lower()] = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        meta_marked = meta_marked or bool(base)
    visible = clip.trimmed_range()
    found: list[tuple[TimeRange, dict[str, str], str]] = []
    for marker in clip.markers:
        name = (marker.name or "").strip()
        if not name.upper().startswith(MARK_WORD):
            continue
        mwhere = f"marker '{name}' on {where}"
        overrides = dict(base)
        overrides.update(parse_marker_words(name, mwhere, warnings))
        if marker.comment:
            overrides.update(parse_marker_words(marker.comment, f"the comment of {mwhere}", warnings))
        extent = overrides.pop(RANGE_KEY, None)
        if extent is not None and extent.lower() not in RANGE_VALUES:
            raise InputError(f"{mwhere}: range={extent} is not one of {', '.join(RANGE_VALUES)} (range=clip swaps "
                             f"the whole clip, range=marker only the marker's frames)")
        mr = _media_relative(marker, clip) if fcp7 else marker.marked_range
        one_frame = mr.duration.value_rescaled_to(visible.duration.rate) <= 1.0 + 1e-9
        whole = extent.lower() == "clip" if extent is not None else one_frame
        if whole:
            span = visible
        else:  # range=marker on a point marker: the one frame it sits on
            span = mr if mr.duration.value > 0 else TimeRange(mr.start_time, RationalTime(1, mr.start_time.rate))
            start = max(span.start_time, visible.start_time)
            end = min(span.end_time_exclusive(), visible.end_time_exclusive())
            if end <= start:
                raise InputError(
                    f"{mwhere} covers {mr.start_time.to_timecode()}-{mr.end_time_exclusive().to_timecode()}, "
                    f"outside the used part of the clip "
                    f"({visible.start_time.to_timecode()}-{visible.end_time_exclusive().to_timecode()})"
                )
            span = TimeRange(start, end - start)
        if any(span == s and overrides == o for s, o, _ in found):
            # the same frames with the same overrides (two whole-clip markers on one clip): one job, not
            # two identical renders stacked on two return tracks
            continue
        found.append((span, overrides, name))
    if not found and meta_marked:
        found.append((visible, base, ""))
    return found


__all__ = ["MARK_WORD", "METADATA_KEY", "RANGE_KEY", "RANGE_VALUES", "marked_ranges", "parse_marker_words"]
