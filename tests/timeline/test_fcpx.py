"""FCPXML: transitions the adapter does not read, and hasAudio it writes wrong (`renderer.timeline.fcpx`)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest
from opentimelineio.opentime import RationalTime as RT, TimeRange as TR

from renderer.errors import InputError
from renderer.timeline import MarkedClip, RenderedClip, read_timelines, write_return_edit
from renderer.timeline.fcpx import transition_spans
from tests.media_factory import make_numbered_clip
from tests.sample_edits import CACHE, sample_edits


def test_cross_dissolves_are_found_where_final_cut_put_them():
    """fcpx_project.fcpxml (written by FCP X): one dissolve in the primary storyline at the cut at 10 s,
    two in a connected storyline inside the gap at 50 s (gap start 3600 s, storyline offset 3600 s)."""
    sample_edits()
    path = CACHE / "otio-fcpx-xml-adapter" / "fcpx_project.fcpxml"
    assert transition_spans(path) == {"OpenTimeline_Project": [(9.5, 10.5, "Cross Dissolve"),
                                                               (50.0, 51.0, "Cross Dissolve"),
                                                               (59.0, 60.0, "Cross Dissolve")]}
    timeline = read_timelines(path)[0]
    with pytest.raises(InputError) as err:
        write_return_edit(timeline, [], Path("/nonexistent/x.doppel.fcpxml"))
    assert "3 transition(s)" in str(err.value) and "\n" not in str(err.value)


def test_a_rendered_file_with_audio_is_an_asset_with_audio(tmp_path):
    media = make_numbered_clip(tmp_path / "shot.mp4", 12, 64, 48, fps=Fraction(25), audio=True)
    silent = make_numbered_clip(tmp_path / "quiet.mp4", 12, 64, 48, fps=Fraction(25))
    clip = otio.schema.Clip(name="shot", source_range=TR(RT(0, 25), RT(12, 25)),
                            media_reference=otio.schema.ExternalReference(
                                target_url=media.resolve().as_uri(), available_range=TR(RT(0, 25), RT(12, 25))))
    timeline = otio.schema.Timeline(name="p", tracks=[otio.schema.Track(children=[clip])])
    rendered = []
    for n, path in enumerate((media, silent)):
        mc = MarkedClip(track_index=0, clip_index=0, clip_name="shot", media_path=media,
                        record_range=TR(RT(0, 25), RT(12, 25)), record_timecode="00:00:00:00", source_first_frame=0,
                        source_last_frame=11, overrides={}, media_timecode=None, rate=Fraction(25), media_frames=12,
                        marker="FACESWAP")
        rendered.append(RenderedClip(mc, path, 0, 12, ""))
    out = tmp_path / "p.doppel.fcpxml"
    write_return_edit(timeline, rendered, out)
    assets = {Path(a.get("src")).name: a.get("hasAudio") for a in ET.parse(out).getroot().iter("asset")}
    assert assets == {"shot.mp4": "1", "quiet.mp4": "0"}
    assert "<!DOCTYPE fcpxml>" in out.read_text()
