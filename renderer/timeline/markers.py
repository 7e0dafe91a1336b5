"""FACESWAP markers: which part of a clip a marker asks to swap, and its `key=value` overrides."""

from __future__ import annotations

import shlex

import opentimelineio as otio
from opentimelineio.opentime import TimeRange

from renderer.errors import InputError

MARK_WORD = "FACESWAP"
METADATA_KEY = "doppel"


def parse_marker_words(text: str, where: str) -> dict[str, str]:
    """`key=value` words of a marker name or comment -> dict (keys lower-cased).

    The leading FACESWAP word is skipped; any other word without `=` is an error.
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
            raise InputError(
                f"word '{word}' in {where} is not key=value; write overrides like "
                f"'FACESWAP colour=rct model=jane'"
            )
        key, value = word.split("=", 1)
        out[key.strip().lower()] = value.strip()
    return out


def marked_ranges(clip: otio.schema.Clip, where: str) -> list[tuple[TimeRange, dict[str, str], str]]:
    """[(source range to swap, overrides, marker text)] for one clip; [] when unmarked."""
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
        overrides.update(parse_marker_words(name, mwhere))
        if marker.comment:
            overrides.update(parse_marker_words(marker.comment, f"the comment of {mwhere}"))
        mr = marker.marked_range
        if mr.duration.value <= 0:
            span = visible
        else:
            start = max(mr.start_time, visible.start_time)
            end = min(mr.end_time_exclusive(), visible.end_time_exclusive())
            if end <= start:
                raise InputError(
                    f"{mwhere} covers {mr.start_time.to_timecode()}-{mr.end_time_exclusive().to_timecode()}, "
                    f"outside the used part of the clip "
                    f"({visible.start_time.to_timecode()}-{visible.end_time_exclusive().to_timecode()})"
                )
            span = TimeRange(start, end - start)
        found.append((span, overrides, name))
    if not found and meta_marked:
        found.append((visible, base, ""))
    return found


__all__ = ["MARK_WORD", "METADATA_KEY", "marked_ranges", "parse_marker_words"]
