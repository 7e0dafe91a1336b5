"""Return edits (`renderer.timeline.returns`) and the EDL reading they rely on, through the real adapters."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
from opentimelineio.opentime import RationalTime as RT, TimeRange as TR

from renderer.timeline import MarkedClip, RenderedClip, build_return_timeline, read_edit, write_edit
from renderer.timeline.markers import marked_ranges
from tests.edit_picture import compose


def _clip(name: str, start: int, frames: int) -> otio.schema.Clip:
    return otio.schema.Clip(name=name, source_range=TR(RT(start, 24), RT(frames, 24)),
                            media_reference=otio.schema.ExternalReference(
                                target_url=f"/media/{name}.mov", available_range=TR(RT(0, 24), RT(100, 24))))


def _job(clip: otio.schema.Clip, index: int, lead_in: int = 0, lead_out: int = 0) -> RenderedClip:
    rec = clip.range_in_parent()
    first = round(clip.source_range.start_time.value)
    mc = MarkedClip(track_index=0, clip_index=index, clip_name=clip.name, media_path=Path(f"/media/{clip.name}.mov"),
                    record_range=rec, record_timecode="00:00:00:00", source_first_frame=first,
                    source_last_frame=first + round(rec.duration.value) - 1, overrides={}, media_timecode=None,
                    rate=Fraction(24), media_frames=100, marker="FACESWAP", lead_in=lead_in, lead_out=lead_out)
    return RenderedClip(mc, Path(f"/renders/{clip.name}.mov"), 0, 100, "00:00:00:00")


def test_fades_to_and_from_a_gap_are_recreated_on_the_return_track():
    """a fades out into a gap, b fades in from it: the return track fades the swapped clips the same way,
    so every frame of both fades composes to the swapped clip over nothing, as the cut did."""
    a, b = _clip("a", 10, 8), _clip("b", 30, 8)
    track = otio.schema.Track(children=[
        a, otio.schema.Transition(in_offset=RT(2, 24), out_offset=RT(1, 24)),
        otio.schema.Gap(duration=RT(6, 24)),
        otio.schema.Transition(in_offset=RT(1, 24), out_offset=RT(2, 24)), b])
    tl = otio.schema.Timeline(tracks=[track])
    back = build_return_timeline(tl, [_job(a, 0, lead_out=1), _job(b, 4, lead_in=1)])
    ret = back.tracks[-1]
    assert [type(c).__name__ for c in ret] == ["Clip", "Transition", "Gap", "Transition", "Clip"]
    picture = compose(back, Path("r.otio"))  # the top (return) track shows where it holds anything
    cut = compose(tl, Path("c.otio"))
    for frame in (6, 7, 8, 13, 14, 15):  # the fade-out's 3 frames, the fade-in's 3
        assert [l.time.value for l in picture[frame]] == [l.time.value for l in cut[frame]], frame
        assert all(l.url.endswith(f"/renders/{l.clip.split()[0]}.mov") for l in picture[frame]), frame


def test_an_edl_return_keeps_dissolves_and_wipes_and_reads_its_incoming_media(tmp_path):
    """The cmx_3600 writer writes every transition as a dissolve, and its reader gives a dissolve's
    incoming event the outgoing file: the return EDL says W001, and read_edit relinks by TO CLIP."""
    a, b = _clip("a", 10, 8), _clip("b", 30, 8)
    wipe = otio.schema.Transition(transition_type="SMPTE_Wipe", in_offset=RT(0, 24), out_offset=RT(4, 24),
                                  metadata={"cmx_3600": {"transition": "W001"}})
    tl = otio.schema.Timeline(tracks=[otio.schema.Track(name="FACESWAP V1", children=[a, wipe, b])])
    write_edit(tl, tmp_path / "r.edl")
    assert any(line.split()[3:5] == ["W001", "004"] for line in (tmp_path / "r.edl").read_text().splitlines()
               if line[:3].isdigit())
    back = read_edit(tmp_path / "r.edl", edl_rate=24).video_tracks()[0]
    kinds = [(type(c).__name__, getattr(c, "transition_type", None)) for c in back]
    assert kinds == [("Clip", None), ("Transition", "SMPTE_Wipe"), ("Clip", None)]
    assert [c.media_reference.target_url for c in back.find_clips()] == ["/media/a.mov", "/media/b.mov"]


def test_two_identical_faceswap_markers_make_one_job():
    clip = _clip("a", 10, 8)
    for _ in range(2):
        clip.markers.append(otio.schema.Marker(name="FACESWAP", marked_range=TR(RT(12, 24), RT(0, 24))))
    clip.markers.append(otio.schema.Marker(name="FACESWAP colour=rct", marked_range=TR(RT(12, 24), RT(0, 24))))
    assert [(o, t) for _, o, t in marked_ranges(clip, "a")] == [({}, "FACESWAP"), ({"colour": "rct"},
                                                                                   "FACESWAP colour=rct")]
