"""FCPXML: what the FCPXML adapter does not read or write, found in the file itself.

Measured on the adapter this project pins (otio-fcpx-xml-adapter 1.0.0) and its sample edits
(fcpx_project.fcpxml and the library, event and example files: FCP X cross dissolves in the
primary storyline and in connected storylines):

- its reader skips `<transition>` elements (the cut reads as hard cuts) and its writer writes
  none, so a return FCPXML would play every dissolve of the edit as a cut, marked clips or not.
  Doppel finds the transitions in the file (`transition_spans`): a marked clip that a transition
  touches is refused by name, and the FCPXML return is refused in one line (the .otio return is
  written; it has no transitions either, as the adapter read none);
- its writer sets an asset's `hasAudio` only from the track kind of the clips using it, so a
  rendered file with an audio stream, placed on a video track, gets `hasAudio="0"`
  (`mark_audio` sets it from the files themselves).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio

from renderer.atomic import write_text_atomic

METADATA = "doppel_fcpxml_transitions"  # timeline metadata: [[start s, end s, name], ...] of its project


def _seconds(value: str | None) -> Fraction:
    """FCPXML time ('28500/3000s', '10s', '0s') in seconds."""
    if not value:
        return Fraction(0)
    text = value.strip().rstrip("s")
    if "/" in text:
        num, den = text.split("/", 1)
        return Fraction(int(num), int(den))
    return Fraction(text)


def _walk(element: ET.Element, record: Fraction, start: Fraction, out: list[tuple[float, float, str]]) -> None:
    """Transitions under `element`, whose local time `start` sits at sequence time `record`."""
    for child in element:
        if child.tag in ("marker", "chapter-marker", "keyword", "rating", "metadata", "filter-video", "filter-audio",
                         "note", "conform-rate", "adjust-transform", "param"):
            continue
        at = record + _seconds(child.get("offset")) - start
        if child.tag == "transition":
            end = at + _seconds(child.get("duration"))
            out.append((float(at), float(end), child.get("name") or "transition"))
            continue
        _walk(child, at, _seconds(child.get("start")), out)


def transition_spans(path: str | Path) -> dict[str, list[tuple[float, float, str]]]:
    """{project name: [(start s, end s, name) of every transition, in its sequence's time]}."""
    try:
        root = ET.parse(str(path)).getroot()
    except (ET.ParseError, OSError):
        return {}
    out: dict[str, list[tuple[float, float, str]]] = {}
    for project in root.iter("project"):
        spans: list[tuple[float, float, str]] = []
        for sequence in project.findall("sequence"):  # spine offsets count from the sequence's tcStart
            for spine in sequence.findall("spine"):
                _walk(spine, Fraction(0), _seconds(sequence.get("tcStart")), spans)
        out.setdefault(project.get("name", ""), []).extend(spans)
    return out


def note_transitions(timelines: Iterable[otio.schema.Timeline], path: str | Path) -> None:
    """Keep each timeline's project transitions in its metadata (METADATA), for planning and returns."""
    spans = transition_spans(path)
    for timeline in timelines:
        found = spans.get(timeline.name or "")
        if found:
            timeline.metadata[METADATA] = [[s, e, n] for s, e, n in found]


def transitions_of(timeline: otio.schema.Timeline) -> list[tuple[float, float, str]]:
    given = timeline.metadata.get(METADATA) if timeline.metadata else None
    return [(float(s), float(e), str(n)) for s, e, n in given or ()]


def touching(timeline: otio.schema.Timeline, start_s: float, end_s: float) -> tuple[float, float, str] | None:
    """The first transition of `timeline` that overlaps record seconds [start_s, end_s), or None."""
    return next(((s, e, n) for s, e, n in transitions_of(timeline) if s < end_s - 1e-6 and e > start_s + 1e-6), None)


def mark_audio(path: Path, with_audio: Iterable[Path]) -> None:
    """Set `hasAudio="1"` on the assets of the written FCPXML at `path` whose file is one of `with_audio`."""
    names = {Path(p).resolve().as_uri() for p in with_audio}
    if not names:
        return
    tree = ET.parse(str(path))
    changed = False
    for asset in tree.getroot().iter("asset"):
        src = asset.get("src") or ""
        if src in names and asset.get("hasAudio") != "1":
            asset.set("hasAudio", "1")
            changed = True
    if changed:  # ElementTree drops the DOCTYPE line the writer wrote: keep it
        doctype = "<!DOCTYPE fcpxml>" if "<!DOCTYPE fcpxml>" in path.read_text(encoding="utf-8") else ""
        text = ET.tostring(tree.getroot(), encoding="unicode")
        write_text_atomic(path, f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}\n{text}\n')


__all__ = ["METADATA", "mark_audio", "note_transitions", "touching", "transition_spans", "transitions_of"]
