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


def fill_nests(timelines: Iterable[otio.schema.Timeline], path: str | Path) -> None:
    """Fill every empty nested sequence of `timelines` (read from the FCP7 XML at `path`) with its tracks."""
    empty = [s for tl in timelines for s in tl.find_children(descended_from_type=otio.schema.Stack) if not len(s)]
    if not empty:
        return
    try:
        root = ET.parse(str(path)).getroot()
    except (ET.ParseError, OSError):
        return
    defined = _definitions(root)
    by_name: dict[str, ET.Element] = {}
    for sequence in root.iter("sequence"):
        full = defined.get(sequence.get("id") or "", sequence)
        if full.find("media") is not None:
            by_name.setdefault(full.findtext("name") or "", full)
    read: dict[str, otio.schema.Timeline | None] = {}
    for stack in empty:
        sequence = by_name.get(stack.name or "")
        if sequence is None:
            continue
        if stack.name not in read:
            read[stack.name] = _read_nest(sequence, defined)
        nest = read[stack.name]
        for track in nest.tracks if nest is not None else ():
            stack.append(copy.deepcopy(track))


__all__ = ["fill_nests"]
