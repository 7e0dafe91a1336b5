"""Planning (`renderer.timeline.plan`): which clips render, which are refused and why."""

from __future__ import annotations

from fractions import Fraction

import opentimelineio as otio
from opentimelineio.opentime import RationalTime as RT, TimeRange as TR

from renderer.timeline import find_jobs
from tests.media_factory import make_numbered_clip


def test_a_clip_outside_its_media_is_refused_alone(tmp_path):
    """An edit that names one 30-frame file for a clip at frames 10..19 and one at 100..109 (an edit
    naming one file for clips of several, as the FCP7 sample empty_name_tags.xml does): the first
    renders, the second is refused by name saying which frames it asked for, not the whole edit."""
    media = make_numbered_clip(tmp_path / "shot.mov", 30, 64, 48, fps=Fraction(24))
    clips = []
    for name, start in (("inside", 10), ("outside", 100)):
        clip = otio.schema.Clip(name=name, source_range=TR(RT(start, 24), RT(10, 24)),
                                media_reference=otio.schema.ExternalReference(target_url=str(media)))
        clip.markers.append(otio.schema.Marker(name="FACESWAP", marked_range=TR(RT(start, 24), RT(0, 24))))
        clips.append(clip)
    timeline = otio.schema.Timeline(tracks=[otio.schema.Track(children=clips)])
    jobs, refused = find_jobs(timeline, tmp_path / "cut.otio")
    assert [(j.clip_name, j.source_first_frame, j.source_last_frame) for j in jobs] == [("inside", 10, 19)]
    assert [(r.clip_name, r.status) for r in refused] == [("outside", "refused")]
    assert "media frames 100..109 of shot.mov, which has frames 0..29" in refused[0].reason
    assert "\n" not in refused[0].reason
