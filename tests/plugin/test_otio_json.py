"""The hand-written OTIO JSON of the Blender/Resolve plugins, checked against real opentimelineio."""

from __future__ import annotations

from fractions import Fraction

import opentimelineio as otio
import pytest

from plugin.blender import otio_json
from plugin.blender.otio_json import FaceswapMark, StripSpec

FPS = Fraction(25)


def _strips(tmp_path):
    a, b, c = (tmp_path / n for n in ("a.mp4", "b one.mp4", "c.wav"))
    return [
        StripSpec("A", str(a), channel=1, record_start=10, duration=30, media_start=5, media_duration=60,
                  faceswap=FaceswapMark()),
        StripSpec("B", str(b), channel=1, record_start=40, duration=20, media_start=0, media_duration=20),
        StripSpec("B2", str(b), channel=2, record_start=50, duration=15, media_start=3, media_duration=20,
                  faceswap=FaceswapMark((("blend", "0.8"),), sub_range=(55, 60))),
        StripSpec("snd", str(c), channel=3, record_start=0, duration=50, media_start=0, media_duration=80,
                  kind="Audio"),
    ]


def test_written_json_reads_in_real_otio(tmp_path):
    path = otio_json.write_otio(tmp_path / "edit.otio", otio_json.timeline_from_strips("seq", _strips(tmp_path), FPS))
    tl = otio.adapters.read_from_file(str(path))
    assert [t.name for t in tl.tracks] == ["V1", "V2", "A3"]
    assert [t.kind for t in tl.tracks] == ["Video", "Video", "Audio"]
    v1 = tl.tracks[0]
    clip_a = v1[1]
    assert isinstance(v1[0], otio.schema.Gap) and v1[0].duration().value == 10
    assert clip_a.name == "A"
    assert v1.range_of_child(clip_a).start_time.to_frames() == 10
    assert clip_a.source_range == otio.opentime.TimeRange(otio.opentime.RationalTime(5, 25),
                                                          otio.opentime.RationalTime(30, 25))
    assert clip_a.media_reference.available_range.duration.value == 60
    assert clip_a.media_reference.target_url == (tmp_path / "a.mp4").as_uri()
    (m,) = clip_a.markers
    assert m.name == "FACESWAP" and m.marked_range.duration.value == 0 and m.marked_range.start_time.value == 5
    assert not v1[2].markers  # B unmarked, directly after A: no gap
    assert v1.range_of_child(v1[2]).start_time.value == 40
    b2 = tl.tracks[1][1]
    (m2,) = b2.markers
    # sub-range 55..60 of a strip starting at 50 with media_start 3 -> media frames 8..13
    assert (m2.marked_range.start_time.value, m2.marked_range.duration.value) == (8, 5)
    assert m2.comment == "blend=0.8"
    # the real library round-trips our file unchanged in meaning
    again = otio.adapters.read_from_string(otio.adapters.write_to_string(tl), "otio_json")
    assert again.tracks[1][1].markers[0].marked_range == m2.marked_range


def test_ntsc_rate_and_bad_strips(tmp_path):
    fps = Fraction(24000, 1001)
    strip = StripSpec("A", str(tmp_path / "a.mov"), 1, 100, 48, 0, 48, faceswap=FaceswapMark())
    path = otio_json.write_otio(tmp_path / "e.otio", otio_json.timeline_from_strips("n", [strip], fps))
    clip = otio.adapters.read_from_file(str(path)).tracks[0][1]
    assert clip.source_range.duration.rate == pytest.approx(23.976, abs=1e-3)
    with pytest.raises(ValueError, match="overlaps"):
        otio_json.timeline_from_strips("x", [strip, StripSpec("B", "/b.mov", 1, 120, 10, 0, 10)], fps)
    with pytest.raises(ValueError, match="outside the strip"):
        otio_json.timeline_from_strips("x", [StripSpec("B", "/b.mov", 1, 0, 10, 0, 10,
                                                       faceswap=FaceswapMark(sub_range=(20, 30)))], fps)
    with pytest.raises(ValueError, match="duration 0"):
        otio_json.timeline_from_strips("x", [StripSpec("B", "/b.mov", 1, 0, 0, 0, 10)], fps)


def _return_timeline(tmp_path, rate=25.0, tc=90000):
    """A return edit as `doppel render` describes it, built with the real library: original track,
    plus FACESWAP with rendered clips whose available_range starts at the source timecode."""
    rt = lambda v: otio.opentime.RationalTime(v, rate)  # noqa: E731
    tl = otio.schema.Timeline("edit")
    orig = otio.schema.Track("V1")
    orig.append(otio.schema.Clip("orig", otio.schema.ExternalReference("file:///src.mov"),
                                 otio.opentime.TimeRange(rt(tc), rt(100))))
    swap = otio.schema.Track("FACESWAP")
    swap.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(rt(0), rt(12))))
    swap.append(otio.schema.Clip(
        "r1", otio.schema.ExternalReference("media/r 1.mov", otio.opentime.TimeRange(rt(tc + 20), rt(30))),
        otio.opentime.TimeRange(rt(tc + 22), rt(25)), metadata={"doppel": {"source": "src.mov"}}))
    swap.append(otio.schema.Transition(in_offset=rt(2), out_offset=rt(2)))
    swap.append(otio.schema.Clip(
        "r2", otio.schema.ExternalReference((tmp_path / "r2.mov").as_uri(),
                                            otio.opentime.TimeRange(rt(0), rt(10))),
        otio.opentime.TimeRange(rt(0), rt(10))))
    tl.tracks.extend([orig, swap])
    path = tmp_path / "edit.doppel.otio"
    otio.adapters.write_to_file(tl, str(path))
    return path


def test_read_return_from_real_otio(tmp_path):
    placements = otio_json.read_return(_return_timeline(tmp_path), FPS)
    assert [(p.name, p.record_start, p.duration, p.media_start) for p in placements] == [
        ("r1", 12, 25, 2), ("r2", 37, 10, 0)]
    assert placements[0].filepath == str(tmp_path / "media" / "r 1.mov")
    assert placements[1].filepath == str(tmp_path / "r2.mov")
    assert placements[0].metadata["doppel"]["source"] == "src.mov"


def test_read_return_converts_rate(tmp_path):
    # an edit at 50 fps read into a 25 fps scene: positions halve
    placements = otio_json.read_return(_return_timeline(tmp_path, rate=50.0, tc=0), FPS)
    assert [(p.record_start, p.duration, p.media_start) for p in placements] == [(6, 12, 1), (18, 5, 0)]


def test_read_return_errors(tmp_path):
    tl = otio.schema.Timeline("t")
    tl.tracks.append(otio.schema.Track("V1"))
    path = tmp_path / "no_swap.otio"
    otio.adapters.write_to_file(tl, str(path))
    with pytest.raises(otio_json.OtioJsonError, match=r"no video track named 'FACESWAP'.*\['V1'\]"):
        otio_json.read_return(path, FPS)
    with pytest.raises(otio_json.OtioJsonError, match="does not exist"):
        otio_json.read_return(tmp_path / "missing.otio", FPS)
    (tmp_path / "junk.otio").write_text("{not json")
    with pytest.raises(otio_json.OtioJsonError, match="not OTIO JSON"):
        otio_json.read_return(tmp_path / "junk.otio", FPS)


def test_overrides():
    assert otio_json.parse_overrides("preset=hq, blend=0.8") == (("preset", "hq"), ("blend", "0.8"))
    assert otio_json.format_overrides((("a", "1"), ("b", "x"))) == "a=1 b=x"
    with pytest.raises(ValueError, match="'blend' in 'blend'"):
        otio_json.parse_overrides("blend")


def test_timecode_origin(tmp_path):
    assert otio_json.timecode_frames("01:00:00:00", Fraction(25)) == 90000
    assert otio_json.timecode_frames("00:01:00;02", Fraction(30000, 1001)) == 1800
    assert otio_json.timecode_frames("00:10:00;00", Fraction(30000, 1001)) == 17982
    with pytest.raises(ValueError, match="not HH:MM:SS:FF"):
        otio_json.timecode_frames("1h", FPS)
    strip = StripSpec("A", str(tmp_path / "a.mov"), 1, 10, 20, 5, 60, faceswap=FaceswapMark(sub_range=(12, 15)),
                      media_origin=90000)
    path = otio_json.write_otio(tmp_path / "tc.otio", otio_json.timeline_from_strips("tc", [strip], FPS))
    clip = otio.adapters.read_from_file(str(path)).tracks[0][1]
    assert clip.source_range.start_time.value == 90005
    assert clip.media_reference.available_range.start_time.value == 90000
    assert clip.markers[0].marked_range.start_time.value == 90007


def test_exported_edit_is_what_doppel_render_reads(tmp_path):
    """The renderer's own reader takes the exported edit as written: marked clips, frames and
    per-strip overrides; host bookkeeping in clip metadata is not mistaken for render settings."""
    from renderer.timeline import find_marked_clips, read_edit
    from tests.media_factory import cached_clip

    a = cached_clip("otio-json-a", frames=60, width=64, height=48, fps=FPS)
    b = cached_clip("otio-json-b", frames=20, width=64, height=48, fps=FPS)
    strips = [
        StripSpec("A", str(a), channel=1, record_start=10, duration=30, media_start=5, media_duration=60,
                  faceswap=FaceswapMark()),
        StripSpec("B", str(b), channel=1, record_start=40, duration=20, media_start=0, media_duration=20),
        StripSpec("B2", str(b), channel=2, record_start=50, duration=15, media_start=3, media_duration=20,
                  faceswap=FaceswapMark((("blend", "0.8"),), sub_range=(55, 60))),
    ]
    path = otio_json.write_otio(tmp_path / "edit.otio", otio_json.timeline_from_strips("seq", strips, FPS))
    marked = find_marked_clips(read_edit(path), path)
    assert [(m.clip_name, m.source_first_frame, m.source_last_frame, dict(m.overrides)) for m in marked] == [
        ("A", 5, 34, {}), ("B2", 8, 12, {"blend": "0.8"})]
