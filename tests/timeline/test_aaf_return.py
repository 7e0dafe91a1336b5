"""AAF return edits: what `renderer.timeline.aaf_return` mends around the AAF adapter's writer.

Each test writes through the real adapter (otio-aaf-adapter, pyaaf2) and reads the file back with
the same adapter: the reference for what Avid is given.
"""

from __future__ import annotations

import opentimelineio as otio
import pytest
from opentimelineio.opentime import RationalTime as RT, TimeRange as TR

from renderer.errors import InputError
from renderer.timeline import write_edit


def _clip(name: str, start: int, frames: int, rate: float = 24, media_rate: float | None = None) -> otio.schema.Clip:
    mr = media_rate or rate
    return otio.schema.Clip(
        name=name, source_range=TR(RT(start, rate), RT(frames, rate)),
        media_reference=otio.schema.ExternalReference(target_url=f"/media/{name}.mov",
                                                      available_range=TR(RT(0, mr), RT(200, mr))))


def _timeline(*items: otio.core.Composable) -> otio.schema.Timeline:
    tl = otio.schema.Timeline(name="t", global_start_time=RT(86400, 24))
    tl.tracks.append(otio.schema.Track(name="V1", children=list(items)))
    return tl


def _read(path) -> otio.schema.Timeline:
    return otio.adapters.read_from_file(str(path), adapter_name="AAF")


def _layout(track: otio.schema.Track) -> list[tuple[str, int, int, bool]]:
    return [(type(c).__name__, round(track.range_of_child_at_index(i).start_time.value),
             round(c.duration().value), c.enabled) for i, c in enumerate(track)]


def test_a_nest_keeps_its_own_length(tmp_path):
    """The writer alone makes a 10-frame nest of two tracks 20 frames long, moving the clip after it."""
    nest = otio.schema.Stack(name="nest", children=[
        otio.schema.Track(children=[_clip("a", 10, 10)]),
        otio.schema.Track(children=[otio.schema.Gap(duration=RT(4, 24)), _clip("b", 20, 6)])])
    tl = _timeline(_clip("c", 0, 5), nest, _clip("d", 30, 5))
    write_edit(tl, tmp_path / "nest.aaf")
    back = _read(tmp_path / "nest.aaf").video_tracks()[0]
    assert [(k, s, d) for k, s, d, _ in _layout(back)] == [("Clip", 0, 5), ("Stack", 5, 10), ("Clip", 15, 5)]


def test_a_muted_clip_comes_back_muted(tmp_path):
    muted = _clip("m", 0, 12)
    muted.enabled = False
    write_edit(_timeline(_clip("a", 0, 5), muted, _clip("b", 0, 5)), tmp_path / "muted.aaf")
    back = _read(tmp_path / "muted.aaf").video_tracks()[0]
    assert _layout(back) == [("Clip", 0, 5, True), ("Clip", 5, 12, False), ("Clip", 17, 5, True)]
    assert back[1].name == "m"


def test_media_at_another_rate_than_the_sequence_is_written(tmp_path):
    """An Avid 29.97 sequence over 23.976 media: the writer alone refuses it (AAFValidationError)."""
    tl = _timeline(_clip("a", 30, 60, rate=30000 / 1001, media_rate=24000 / 1001))
    tl.global_start_time = RT(0, 30000 / 1001)
    write_edit(tl, tmp_path / "rates.aaf")
    clip = _read(tmp_path / "rates.aaf").video_tracks()[0][0]
    assert clip.source_range.start_time.value == 30 and clip.source_range.duration.value == 60


def test_several_compositions_are_refused_in_one_line(tmp_path):
    both = otio.schema.SerializableCollection(children=[_timeline(_clip("a", 0, 5)), _timeline(_clip("b", 0, 5))])
    with pytest.raises(InputError) as err:
        write_edit(both, tmp_path / "two.aaf")
    assert "2 top-level compositions" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "two.aaf").exists()
