"""FCP7 XML: nested sequences, which the FCP7 XML adapter reads empty.

Measured on the adapter this project pins (otio-fcp-adapter 1.0.0) with Premiere's own
premiere_example.xml: a clipitem holding a nested `<sequence>` becomes an OTIO Stack with no
tracks (the adapter looks for the tracks directly under `<sequence>`, where FCP7 puts them under
`<sequence><media>`), so the cut shows black where Premiere shows the nest, and a return XML
written from it holds an empty nested sequence. The same adapter reads a top-level sequence
right: each nest is cut out of the file as a document of its own (its `<file>` references
replaced by the full definitions they point at) and read by the adapter, and its tracks fill
the empty Stack.
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

import opentimelineio as otio

MAX_DEPTH = 8  # references inside the definitions they bring in (a nest in a nest)
NEST_KEY = "doppel_nest"  # clip metadata: {sequence, use} of the nest a filled clip belongs to


def _definitions(root: ET.Element) -> dict[str, ET.Element]:
    """id -> the element that defines it (the first with that id that has children)."""
    out: dict[str, ET.Element] = {}
    for element in root.iter():
        ident = element.get("id")
        if ident and len(element) and ident not in out:
            out[ident] = element
    return out


def _standalone(sequence: ET.Element, defined: dict[str, ET.Element]) -> ET.Element:
    """A copy of `sequence` whose empty references (`<file id="file-1"/>`) are full copies."""
    alone = copy.deepcopy(sequence)
    for _ in range(MAX_DEPTH):
        replaced = False
        for parent in alone.iter():
            for i, child in enumerate(list(parent)):
                ident = child.get("id")
                if ident and not len(child) and ident in defined:
                    parent[i] = copy.deepcopy(defined[ident])
                    replaced = True
        if not replaced:
            break
    return alone


def _read_nest(sequence: ET.Element, defined: dict[str, ET.Element]) -> otio.schema.Timeline | None:
    doc = ET.Element("xmeml", version="4")
    doc.append(_standalone(sequence, defined))
    try:
        read = otio.adapters.read_from_string(ET.tostring(doc, encoding="unicode"), adapter_name="fcp_xml")
    except Exception:  # the adapter raises bare exceptions: the nest stays as the adapter read it
        return None
    if isinstance(read, otio.schema.Timeline):
        return read
    found = list(read.find_children(descended_from_type=otio.schema.Timeline))
    return found[0] if found else None


def _nest_of(item: ET.Element, defined: dict[str, ET.Element]) -> ET.Element | None:
    """The full `<sequence>` a clipitem nests, or None."""
    sequence = item.find("sequence")
    if sequence is None:
        return None
    full = defined.get(sequence.get("id") or "", sequence)
    return full if full.find("media") is not None else None


def _fill(stack: otio.schema.Stack, sequence: ET.Element, defined: dict[str, ET.Element],
          uses: dict[int, int], depth: int = 0) -> None:
    """Fill the empty nests of `stack` (the tracks read from `sequence`), pairing each video track with
    its `<track>` and each nested Stack with its clipitem, in order: nests are told apart by where they
    are, not by name (Premiere's nests may all be named alike, or not at all: empty_name_tags.xml)."""
    if depth > MAX_DEPTH:
        return
    media = defined.get(sequence.find("media").get("id") or "", sequence.find("media")) if sequence.find(
        "media") is not None else None
    video = media.find("video") if media is not None else None
    xml_tracks = video.findall("track") if video is not None else []
    otio_tracks = [t for t in stack if isinstance(t, otio.schema.Track) and t.kind == otio.schema.TrackKind.Video]
    if len(xml_tracks) != len(otio_tracks):
        return
    for track, xml_track in zip(otio_tracks, xml_tracks):
        nests = [n for n in track if isinstance(n, otio.schema.Stack)]
        items = [defined.get(e.get("id") or "", e) for e in xml_track if e.tag == "clipitem"]
        xml_nests = [n for n in (_nest_of(e, defined) for e in items) if n is not None]
        if len(nests) != len(xml_nests):
            continue
        for nest, xml_nest in zip(nests, xml_nests):
            if not len(nest):
                read = _read_nest(xml_nest, defined)
                use = uses[id(xml_nest)] = uses.get(id(xml_nest), 0) + 1
                for inner in read.tracks if read is not None else ():
                    inner = copy.deepcopy(inner)
                    for clip in inner.find_clips():
                        # The FCP7 writer writes a clip equal to one it wrote before as a bare
                        # `<clipitem id=.../>` reference, which its reader cannot read back (a nest used
                        # twice did it): each nest's clips say where they belong, so none is equal.
                        clip.metadata[NEST_KEY] = {"sequence": nest.name, "use": use}
                    nest.append(inner)
            _fill(nest, xml_nest, defined, uses, depth + 1)


def fill_nests(timelines: Iterable[otio.schema.Timeline], path: str | Path) -> None:
    """Fill every empty nested sequence of `timelines` (read from the FCP7 XML at `path`) with its tracks."""
    timelines = list(timelines)
    if not any(not len(s) for tl in timelines for s in tl.find_children(descended_from_type=otio.schema.Stack)):
        return
    try:
        root = ET.parse(str(path)).getroot()
    except (ET.ParseError, OSError):
        return
    defined = _definitions(root)
    # the adapter's own order of top-level sequences: the document's, then those in projects and bins
    tops = [defined.get(e.get("id") or "", e) for e in [*root.findall("sequence"), *root.findall(".//children/sequence")]]
    if len(tops) != len(timelines):
        return
    uses: dict[int, int] = {}
    for timeline, sequence in zip(timelines, tops):
        _fill(timeline.tracks, sequence, defined, uses)


__all__ = ["fill_nests"]
