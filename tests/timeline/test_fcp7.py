"""FCP7 XML nested sequences (`renderer.timeline.fcp7`), on Premiere's own exports."""

from __future__ import annotations

import opentimelineio as otio

from renderer.timeline import read_edit, write_edit
from tests.sample_edits import CACHE, sample_edits


def _nests(timeline: otio.schema.Timeline) -> list[tuple[str, list[str]]]:
    return [(s.name, [c.name for t in s if t.kind == otio.schema.TrackKind.Video for c in t.find_clips()])
            for t in timeline.video_tracks() for s in t if isinstance(s, otio.schema.Stack)]


def test_a_nested_sequence_reads_with_its_clips_and_comes_back_whole(tmp_path):
    """premiere_example.xml nests sc01_sh010_anim (two clips); the adapter alone reads it empty."""
    sample_edits()
    path = CACHE / "otio-fcp-adapter" / "premiere_example.xml"
    alone = otio.adapters.read_from_file(str(path), adapter_name="fcp_xml")
    assert _nests(alone) == [("sc01_sh010_anim", [])]
    timeline = read_edit(path)
    assert _nests(timeline) == [("sc01_sh010_anim", ["sc01_sh010_anim.mov", "sc01_sh030_anim.mov"])]
    write_edit(timeline, tmp_path / "back.xml")
    assert _nests(read_edit(tmp_path / "back.xml")) == _nests(timeline)


def test_nests_named_alike_are_told_apart_and_read_back(tmp_path):
    """empty_name_tags.xml: its nests carry no names of their own (both read as 'myshow'): each is
    filled from its own clipitem, and the return XML reads back with the same nests."""
    path = sample_edits() / "otio-fcp-adapter" / "empty_name_tags.xml"
    timeline = read_edit(path)
    nests = _nests(timeline)
    assert len(nests) == 2 and all(clips for _, clips in nests) and nests[0][1] != nests[1][1]
    write_edit(timeline, tmp_path / "back.xml")
    assert _nests(read_edit(tmp_path / "back.xml")) == nests
