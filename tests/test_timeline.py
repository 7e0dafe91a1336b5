"""Timeline layer: real edits through real OTIO adapters over real numbered media."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from renderer.errors import InputError
from renderer.media import probe, timecode_to_frame
from renderer.presets import load_preset
from renderer.timeline import (
    RenderedClip, build_return_timeline, clip_presets, find_jobs, find_marked_clips, parse_marker_words, read_edit,
    return_edit_paths, write_return_edit,
)
from tests.media_factory import make_numbered_clip, read_frame_number
from tests.timeline_factory import make_media, standard_edit, write_avid_edl, write_formats

NTSC = Fraction(24000, 1001)
DF = Fraction(30000, 1001)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("timeline")


def found(clips):
    return [(c.track_index, c.clip_name, c.source_first_frame, c.source_last_frame,
             round(c.record_range.start_time.value)) for c in clips]


def want(expected, names=None):
    return [(e.track_index, e.clip_name, e.first, e.last, e.record_start) for e in expected
            if names is None or e.clip_name in names]


CASES = [
    (NTSC, False, (".otio", ".otioz", ".xml")),
    (Fraction(25), False, (".fcpxml", ".xml")),
    (DF, True, (".otio", ".xml")),
]


@pytest.mark.parametrize("fps,drop,exts", CASES, ids=["23.976", "25", "29.97DF"])
def test_marked_clips_in_every_format(work, fps, drop, exts):
    base = work / f"fmt{float(fps):.3f}"
    media = make_media(base / "media", fps, drop)
    tl, expected = standard_edit(media, fps)
    files = write_formats(tl, base / "edits", "cut", exts)
    for ext, path in files.items():
        clips = find_marked_clips(read_edit(path), path)
        # Metadata-marked clips survive only in OTIO; FCP XML/FCPXML lose marker comments.
        names = None if ext in (".otio", ".otioz") else {"shot_a", "shot_c"}
        assert found(clips) == want(expected, names), ext
        assert clips[0].overrides["colour"] == "rct"
        assert clips[1].overrides["mask"] == "ellipse"
        if ext in (".otio", ".otioz"):
            assert clips[1].overrides["erode"] == "0.05"
            assert clips[2].overrides == {"blend": "poisson"}
        assert clips[0].rate == fps and clips[0].media_timecode == media["A"][1]
        if ext == ".otioz":  # the bundle carries its own copy of the media
            assert clips[0].media_path.read_bytes() == media["A"][0].read_bytes()
        else:
            assert clips[0].media_path.resolve() == media["A"][0].resolve()


def test_frames_are_the_media_frames(work):
    """The painted frame numbers at the found indices are the frames the edit shows."""
    import av

    media = make_media(work / "fmt23.976" / "media", NTSC)
    tl, _ = standard_edit(media, NTSC)
    path = write_formats(tl, work / "ff", "cut", (".xml",))[".xml"]
    clip = find_marked_clips(read_edit(path), path)[0]
    with av.open(str(clip.media_path)) as c:
        frames = [read_frame_number(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    assert frames[clip.source_first_frame] == 5 and frames[clip.source_last_frame] == 24
    assert clip.with_handles(12) == (0, 36) and clip.frames == 20


def test_avid_edl_with_record_timecode_and_loc_markers(work):
    fps = Fraction(25)
    media = make_media(work / "edl" / "media", fps)
    a, b = media["A"][0], media["B"][0]
    edl = write_avid_edl(work / "edl" / "cut.edl", [
        ("A", "01:00:00:05", "01:00:01:00", "01:00:00:00", "01:00:00:20", str(a), ["01:00:00:10 GREEN   FACESWAP colour=rct"]),
        ("B", "02:00:10:03", "02:00:10:18", "01:00:00:20", "01:00:01:10", str(b), []),
        ("B", "02:00:10:20", "02:00:11:07", "01:00:01:10", "01:00:01:22", str(b), ["01:00:01:12 RED     faceswap"]),
    ], fps)
    tl = read_edit(edl, edl_rate=fps)
    clips = find_marked_clips(tl, edl)
    assert [(c.clip_name, c.source_first_frame, c.source_last_frame) for c in clips] == [
        ("A.mov", 5, 24), ("B.mov", 20, 31)]
    assert clips[0].overrides == {"colour": "rct"}  # EDL upper-cases; keys come back lower-case
    assert clips[0].record_timecode == "01:00:00:00" and clips[1].record_timecode == "01:00:01:10"
    # Read at the wrong rate: a clear error that says what to pass.
    with pytest.raises(InputError, match=r"read at 24 fps.*--edl-rate"):
        find_marked_clips(read_edit(edl), edl)


def test_missing_media_lists_every_file_and_media_root_finds_them(work):
    base = work / "missing"
    media = make_media(base / "media", NTSC)
    tl, expected = standard_edit(media, NTSC, url_style="path")
    path = write_formats(tl, base / "edits", "cut", (".otio",))[".otio"]
    moved = base / "elsewhere"
    shutil.move(str(base / "media"), str(moved))
    with pytest.raises(InputError) as err:
        find_marked_clips(read_edit(path), path)
    msg = str(err.value)
    assert "3 media file(s)" in msg
    for name in ("A.mov", "B.mov", "C.mov"):
        assert name in msg
    clips = find_marked_clips(read_edit(path), path, media_roots=[moved])
    assert found(clips) == want(expected)


def test_bad_markers_and_presets(work):
    media = make_media(work / "bad" / "media", NTSC)
    tl, _ = standard_edit(media, NTSC)
    tl.video_tracks()[0][0].markers[0].name = "FACESWAP colour_mode=rct"
    tl.video_tracks()[1][1].metadata["doppel"]["blnd"] = "alpha"
    path = write_formats(tl, work / "bad", "cut", (".otio",))[".otio"]
    clips = find_marked_clips(read_edit(path), path)
    with pytest.raises(InputError) as err:
        clip_presets(clips, load_preset("prores_hq"), path)
    msg = str(err.value)
    assert "2 marked clip(s)" in msg
    assert "unknown key 'colour_mode'" in msg and "did you mean 'colour'" in msg and "shot_a" in msg
    assert "unknown key 'blnd'" in msg and "shot_b2" in msg
    tl.video_tracks()[0][0].markers[0].name = "FACESWAP jane colour=rct"  # an editor's note in the marker
    path2 = write_formats(tl, work / "bad", "cut2", (".otio",))[".otio"]
    clips = find_marked_clips(read_edit(path2), path2)  # warns and goes on: the words that are overrides count
    assert clips[0].overrides == {"colour": "rct"}
    assert len(clips[0].warnings) == 1 and "word 'jane'" in clips[0].warnings[0] and "not key=value" in clips[0].warnings[0]
    with pytest.raises(InputError, match=r"word 'jane' .* not key=value"):  # asked to be strict, it refuses
        parse_marker_words("FACESWAP jane", "a marker")


def test_good_overrides_give_per_clip_presets(work):
    media = make_media(work / "fmt23.976" / "media", NTSC)
    tl, _ = standard_edit(media, NTSC)
    path = write_formats(tl, work / "good", "cut", (".otio",))[".otio"]
    clips = find_marked_clips(read_edit(path), path)
    presets = clip_presets(clips, load_preset("prores_hq"), path)
    assert [p.colour for p in presets] == ["rct", "rct", "rct"]
    assert (presets[1].mask.kind, presets[1].mask.erode) == ("ellipse", 0.05)
    assert presets[2].blend == "poisson"


def test_unreadable_and_unsupported_edits(work):
    bad = work / "garbage.xml"
    bad.write_text("this is not xml <<<")
    with pytest.raises(InputError, match=r"cannot read edit .*garbage.xml as FCP7 XML"):
        read_edit(bad)
    txt = work / "cut.txt"
    txt.write_text("x")
    with pytest.raises(InputError, match=r"unsupported extension '.txt'; supported: .otio"):
        read_edit(txt)
    with pytest.raises(InputError, match="does not exist"):
        read_edit(work / "nope.otio")
    newer = work / "newer.otio"  # a schema version this OTIO does not know, as a newer OTIO writes it
    newer.write_text('{"OTIO_SCHEMA": "Timeline.99", "name": "x", "tracks": null}')
    with pytest.raises(InputError, match=rf"written by a newer OpenTimelineIO than the {otio.__version__}"):
        read_edit(newer)


def test_aaf_no_marked_clips_and_return_edit(work):
    """AAF writing drops markers: the read-back edit has nothing marked, and the return
    edit is the input plus an empty FACESWAP track."""
    media = make_media(work / "aaf" / "media", NTSC)
    tl, _ = standard_edit(media, NTSC, transition=False)
    path = write_formats(tl, work / "aaf", "cut", (".aaf",))[".aaf"]
    t = read_edit(path)
    assert find_marked_clips(t, path) == []
    out = work / "aaf" / "cut.doppel.aaf"
    write_return_edit(t, [], out)
    back = read_edit(out)  # the AAF writer drops a track holding only a gap
    assert [c.name for c in back.find_clips()] == [c.name for c in t.find_clips()]
    out_otio = work / "aaf" / "cut.doppel.otio"
    write_return_edit(t, [], out_otio)
    tracks = read_edit(out_otio).video_tracks()
    assert [tr.name for tr in tracks][-1] == "FACESWAP" and len(tracks) == len(t.video_tracks()) + 1
    assert not list(tracks[-1].find_clips())


def _render_stand_ins(clips, folder: Path, handles: int) -> list[RenderedClip]:
    """Real media files standing where render.py's outputs go (numbered, right length and timecode)."""
    out = []
    for i, c in enumerate(clips):
        first, last = c.with_handles(handles)
        tc_frames = (timecode_to_frame(c.media_timecode, c.rate) if c.media_timecode else 0) + first
        from renderer.media import frame_to_timecode
        tc = frame_to_timecode(tc_frames, c.rate, bool(c.media_timecode and ";" in c.media_timecode))
        path = make_numbered_clip(folder / f"out{i}.mov", last - first + 1, 64, 48, fps=c.rate, timecode=tc)
        out.append(RenderedClip(c, path, first, last - first + 1, tc))
    return out


@pytest.mark.parametrize("fps,drop,ext", [(NTSC, False, ".xml"), (DF, True, ".otio"), (Fraction(25), False, ".fcpxml"),
                                          (Fraction(25), False, ".edl")])
def test_return_edit_places_rendered_clips_at_record_times(work, fps, drop, ext):
    base = work / f"ret{float(fps):.3f}{ext}"
    media = make_media(work / f"retmedia{float(fps):.3f}", fps, drop)
    tl, _ = standard_edit(media, fps, transition=ext != ".fcpxml")
    src = write_formats(tl, base, "cut", (".otio",))[".otio"]
    timeline = read_edit(src)
    clips = find_marked_clips(timeline, src)
    rendered = _render_stand_ins(clips, base / "renders", handles=12)
    outs = return_edit_paths(base / f"cut{ext}", base / "return")
    assert outs[0].suffix == ".otio" and (ext == ".otio" or outs[1].suffix == ext)
    for out in outs:
        write_return_edit(timeline, rendered, out)
        back = read_edit(out, edl_rate=fps)
        tracks = back.video_tracks()
        # FCP7 XML drops track names: the return tracks are the ones holding rendered files.
        def is_render(c) -> bool:
            return "/renders/" in (getattr(c.media_reference, "target_url", None) or "")

        swap = [t for t in tracks if any(is_render(c) for c in t.find_clips())]
        if out.suffix == ".otio":  # each source track's swaps directly above it, so the layering stays the cut's
            assert [t.name for t in tracks] == ["V1", "FACESWAP V1", "V2", "FACESWAP V2"]
        placed = sorted((round(c.range_in_parent().start_time.value_rescaled_to(float(fps))), round(c.duration().value))
                        for t in swap for c in t if isinstance(c, otio.schema.Clip) and is_render(c))
        expect = sorted((round(c.record_range.start_time.value), c.frames) for c in clips)
        if out.suffix == ".edl":  # each EDL's track starts at its first event: compare record timecodes
            origin = round(timeline.global_start_time.value)  # the return EDL keeps the cut's record timecode
            placed = []
            for f in (out, out.with_name(f"{out.stem}.FACESWAP_2.edl")):
                edl = read_edit(f, edl_rate=fps)
                placed += [(round(edl.global_start_time.value + c.range_in_parent().start_time.value) - origin,
                            round(c.duration().value)) for c in edl.find_clips() if is_render(c)]
            placed.sort()
            # CMX 3600 puts a whole dissolve after the cut: shot_a's event ends where its 4-frame dissolve
            # into shot_b starts (2 frames early), and the EDL shows the same pictures as the .otio return
            assert [start for start, _ in placed] == [start for start, _ in expect], out
            assert placed[0][1] == expect[0][1] - 2 and placed[1:] == expect[1:], out
            from tests.edit_picture import compose

            shown = compose(back, out)
            lane = read_edit(outs[0])  # the .otio return's first FACESWAP track, which this EDL holds
            lane.tracks[:] = [t.clone() for t in lane.tracks if t.name == "FACESWAP V1"]
            on_top = compose(lane, outs[0])
            assert all([(l.url, l.time) for l in layers] == [(l.url, l.time) for l in on_top[f]]
                       for f, layers in shown.items() if layers), out
            continue
        assert placed == expect, out
        if out.suffix != ".edl":
            assert len(tracks) == len(timeline.video_tracks()) + len(swap)
            # The rendered file's frame at the return clip's source start is the marked clip's first frame.
            for t in swap:
                for c in t:
                    if isinstance(c, otio.schema.Clip) and is_render(c):
                        path = Path(otio.url_utils.filepath_from_url(c.media_reference.target_url))
                        info = probe(path)
                        start = timecode_to_frame(info.timecode, info.fps)
                        assert round(c.source_range.start_time.value) - start in (12, 5)  # handles, clamped for shot_a
    assert not list((base / "return").glob(".*partial*"))


# --------------------------------------------------------------------------- real NLE exports (adapters' sample edits)


def _shown_frame(layer, origins: dict[str, int], stand_ins: dict[str, tuple[int, int]]) -> tuple[str, int]:
    """(media name, media frame) a composed layer shows; a stand-in render maps back to its source frame."""
    import math

    url = layer.url or ""
    for path, (tc_origin, first) in stand_ins.items():
        if url.endswith("/" + path):
            return "render", first + math.floor(layer.time.value + 1e-6) - tc_origin
    return layer.key, math.floor(layer.time.value + 1e-6) - origins[layer.key]


def test_speed_effects_render_the_frames_shown_and_keep_the_effect(work):
    """Avid's misc_speed_effects.aaf (freeze, 2x, 3x, 0.375x, 14.375x, reverse): each marked clip renders
    the span of media frames its effect shows, and its return clip, carrying the same effect over the
    rendered file, shows the same source frame at every record frame (composed by the conformance
    walker's own compositor, not by this module)."""
    from tests.sample_edits import compose, sample_edits

    edit = sample_edits() / "otio-aaf-adapter" / "misc_speed_effects.aaf"
    timeline = read_edit(edit)
    media = work / "speed_media"
    media.mkdir(exist_ok=True)
    for name, tc in (("Frame Debugger 0h.mov", None), ("Frame Debugger 1h.mov", "01:00:00:00")):
        if not (media / name).exists():
            make_numbered_clip(media / name, 120, 64, 48, fps=Fraction(24), timecode=tc)
    for clip in timeline.find_clips():
        clip.metadata["doppel"] = {"faceswap": True}
    clips, refused = find_jobs(timeline, edit, media_roots=[media])
    assert not refused and len(clips) == len(list(timeline.find_clips()))
    speeds = {c.speed.describe() for c in clips}
    assert {"freeze frame", "200 % speed", "37.5 % speed", "reverse 100 % speed"} <= speeds, speeds
    reverse = next(c for c in clips if c.speed.scalar < 0)
    assert (reverse.source_first_frame, reverse.source_last_frame, reverse.shown_start) == (17, 24, 24.0)
    freeze = next(c for c in clips if c.speed.scalar == 0)
    assert (freeze.source_first_frame, freeze.source_last_frame, freeze.record_frames) == (32, 32, 8)
    rendered = _render_stand_ins(clips, work / "speed_renders", handles=2)
    back = build_return_timeline(timeline, rendered)
    original, returned = compose(timeline, edit), compose(back, edit)
    origins = {"Frame Debugger 0h.mov": 0, "Frame Debugger 1h.mov": 86400}
    stand_ins = {r.path.name: (timecode_to_frame(r.timecode, r.clip.rate) if r.timecode else 0, r.first_frame)
                 for r in rendered}
    checked = 0
    for frame, layers in original.items():
        if not layers:
            continue
        want = _shown_frame(layers[-1], origins, {})
        kind, got = _shown_frame(returned[frame][-1], origins, stand_ins)
        assert kind == "render" and got == want[1], (frame, want, got)
        checked += 1
    assert checked == sum(c.record_frames for c in clips)
    # The effect travels on the return clip, and the AAF return (its writer drops time effects) is refused.
    back_clips = [c for t in back.video_tracks() if t.name.startswith("FACESWAP") for c in t.find_clips()]
    assert [type(e).__name__ for c in back_clips for e in c.effects] == [
        type(e).__name__ for c in timeline.find_clips() for e in c.effects]
    with pytest.raises(InputError, match=r"cannot write AAF .*drops time effects .*the .otio return has them"):
        write_return_edit(timeline, rendered, work / "speed.doppel.aaf")
    assert not (work / "speed.doppel.aaf").exists()


@pytest.mark.parametrize("ext", [".otio", ".xml"])
def test_dissolve_from_a_swapped_clip_is_recreated_on_the_return_track(work, ext):
    """shot_a (marked) dissolves into shot_b (not marked): shot_a renders the frames the dissolve shows
    past the cut, and the return track blends its swap into a copy of shot_b, so every record frame,
    the dissolve included, composes (by the walker's compositor) to the cut's two pictures with only
    shot_a's replaced by its render."""
    from tests.sample_edits import compose

    media = make_media(work / "fmt23.976" / "media", NTSC)
    tl, _ = standard_edit(media, NTSC)
    src = write_formats(tl, work / f"dissolve{ext}", "cut", (ext,))[ext]
    timeline = read_edit(src)
    clips = find_marked_clips(timeline, src)
    shot_a = next(c for c in clips if c.clip_name == "shot_a")
    assert shot_a.lead_out == 2 and shot_a.with_handles(0) == (5, 26)  # 2 frames past the cut
    rendered = _render_stand_ins(clips, work / f"dissolve{ext}" / "renders", handles=0)
    out = work / f"dissolve{ext}" / f"cut.doppel{ext}"
    write_return_edit(timeline, rendered, out)
    back = read_edit(out)
    original, returned = compose(timeline, src), compose(back, out)
    origins = {p.name: (timecode_to_frame(tc, NTSC) if tc else 0) for p, tc in media.values()}
    stand_ins = {r.path.name: (timecode_to_frame(r.timecode, NTSC), r.first_frame) for r in rendered}
    dissolve = 0
    for frame, layers in original.items():
        want = [_shown_frame(layer, origins, {}) for layer in layers]
        got = [_shown_frame(layer, origins, stand_ins) for layer in returned[frame]]
        for n, layer in enumerate(layers):
            swapped = any(c.clip_name == layer.clip and c.source_first_frame - c.lead_in <= want[n][1]
                          <= c.source_last_frame + c.lead_out for c in clips)
            if swapped and n < len(got):  # a marked clip's picture comes from its render
                assert got[n][0] == "render", (frame, want, got)
                got[n] = (want[n][0], got[n][1])
        dissolve += len(layers) == 2 and layers[0].clip == "shot_a"
        assert got == want, frame
    assert dissolve == 4  # 2 frames before the cut, 2 after: both pictures, shot_a's from the render


def test_disabled_clips_and_tracks_are_skipped_with_the_reason(work):
    """A disabled clip (OTIO enabled=False), a clip on a disabled track, and a clip that FCP7 XML
    marks <enabled>FALSE</enabled> (kept by the adapter only as metadata) are not rendered: each is
    reported as skipped with why, and the return edit keeps them disabled."""
    media = make_media(work / "fmt23.976" / "media", NTSC)
    tl, _ = standard_edit(media, NTSC)
    v1, v2 = tl.video_tracks()
    v1[0].enabled = False  # shot_a
    v2.enabled = False  # shot_b2
    v1[-1].metadata["fcp_xml"] = {"enabled": "FALSE"}  # shot_c, as the FCP7 adapter reads Premiere's flag
    path = write_formats(tl, work / "disabled", "cut", (".otio",))[".otio"]
    timeline = read_edit(path)
    clips, skipped = find_jobs(timeline, path)
    assert clips == []
    assert [(s.clip_name, s.status) for s in skipped] == [("shot_a", "skipped"), ("shot_c", "skipped"),
                                                          ("shot_b2", "skipped")]
    assert "clip is disabled" in skipped[0].reason and "track is disabled" in skipped[2].reason
    back = build_return_timeline(timeline, [])
    assert not back.video_tracks()[0][0].enabled and not back.video_tracks()[1].enabled


def _premiere_with_marker(work: Path, name: str, marker_in: int, marker_out: int) -> Path:
    """Premiere's premiere_example.xml with its first clip's media at 01:00:00:00 and that clip's own
    marker (Premiere's, media-relative <in>73</in>) renamed FACESWAP with the given in/out."""
    from tests.sample_edits import sample_edits

    text = (sample_edits() / "otio-fcp-adapter" / "premiere_example.xml").read_text("utf-8")
    at = text.index("<in>73</in>")
    head, tail = text[:at], text[at:]
    tc_at = head.rindex("<string>00:00:00:00</string>")
    head = head[:tc_at] + "<string>01:00:00:00</string>" + head[tc_at + len("<string>00:00:00:00</string>"):]
    frame_at = head.rindex("<frame>0</frame>")
    head = head[:frame_at] + "<frame>108000</frame>" + head[frame_at + len("<frame>0</frame>"):]
    name_at = head.rindex("<name></name>")
    head = head[:name_at] + f"<name>{name}</name>" + head[name_at + len("<name></name>"):]
    tail = tail.replace("<in>73</in>", f"<in>{marker_in}</in>", 1).replace("<out>-1</out>", f"<out>{marker_out}</out>", 1)
    out = work / "premiere" / f"marked_{marker_in}_{marker_out}.xml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(head + tail, "utf-8")
    return out


def test_fcp7_clip_markers_count_from_the_media_start_and_one_frame_means_the_clip(work):
    """Premiere's FCP7 XML: clip-marker in/out are media frames (like clipitem in/out), so a range
    marker on a clip whose media starts at 01:00:00:00 swaps exactly those media frames; a point or
    one-frame marker swaps the whole clip unless it says range=marker."""
    media = work / "premiere" / "media"
    media.mkdir(parents=True, exist_ok=True)
    if not (media / "sc01_sh030_anim.mov").exists():
        make_numbered_clip(media / "sc01_sh030_anim.mov", 400, 64, 48, fps=Fraction(30), timecode="01:00:00:00")

    def jobs(name: str, m_in: int, m_out: int):
        path = _premiere_with_marker(work, name, m_in, m_out)
        found_clips, _ = find_jobs(read_edit(path), path, media_roots=[media])
        return [(c.clip_name, c.source_first_frame, c.source_last_frame) for c in found_clips]

    assert jobs("FACESWAP", 100, 110) == [("sc01_sh030_anim.mov", 100, 109)]
    whole = [("sc01_sh030_anim.mov", 0, 234)]  # the clip uses media frames 0..234
    assert jobs("FACESWAP", 100, -1) == whole
    assert jobs("FACESWAP", 100, 101) == whole
    assert jobs("FACESWAP range=marker", 100, 101) == [("sc01_sh030_anim.mov", 100, 100)]
    assert jobs("FACESWAP range=clip", 100, 110) == whole
    with pytest.raises(InputError, match=r"range=all is not one of clip, marker"):
        jobs("FACESWAP range=all", 100, 110)


def _marked_edit(path: Path, *clips: otio.schema.Clip) -> Path:
    """An .otio edit at `path`: one track of `clips`, each given a FACESWAP point marker."""
    for clip in clips:
        clip.markers.append(otio.schema.Marker(name="FACESWAP"))
    tl = otio.schema.Timeline(name=path.stem)
    tl.tracks.append(otio.schema.Track(children=list(clips)))
    otio.adapters.write_to_file(tl, str(path))
    return path


def test_near_rate_media_map_by_timecode(work):
    """A 23.976 edit over 24 fps media (and its timecode 01:00:00:00): NLEs conform by timecode, so
    the edit's frame 01:00:01:15 is media frame 39, not 126 (39 * 24/23.976 seconds later); the
    return clip is timed at the edit's rate and lasts exactly the record frames."""
    media = work / "nearrate"
    media.mkdir(exist_ok=True)
    src = make_numbered_clip(media / "n.mov", 120, 64, 48, fps=Fraction(24), timecode="01:00:00:00")
    rate = float(NTSC)
    origin = timecode_to_frame("01:00:00:00", Fraction(24))
    clip = otio.schema.Clip(name="n", media_reference=otio.schema.ExternalReference(
        target_url=src.resolve().as_uri(),
        available_range=otio.opentime.TimeRange(otio.opentime.RationalTime(origin, rate),
                                                otio.opentime.RationalTime(120, rate))),
        source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(origin + 39, rate),
                                             otio.opentime.RationalTime(51, rate)))
    path = _marked_edit(media / "near.otio", clip)
    (mc,) = find_marked_clips(read_edit(path), path)
    assert (mc.source_first_frame, mc.source_last_frame, mc.edit_rate) == (39, 89, rate)
    rendered = _render_stand_ins([mc], media / "renders", handles=3)
    back = build_return_timeline(read_edit(path), rendered)
    (ret,) = back.video_tracks()[1].find_clips()
    assert ret.range_in_parent().duration == otio.opentime.RationalTime(51, rate)
    assert ret.source_range.start_time.value - ret.media_reference.available_range.start_time.value == 3


def test_a_clip_at_another_rate_is_refused_alone_and_a_missing_sequence_is_listed(work):
    """Premiere writes clips whose timebase differs from their media (15 over 30 fps): each such
    marked clip is refused with one line naming it, the other clips are still jobs. An image
    sequence (OTIO ImageSequenceReference) is media like a movie: missing, it is listed before
    anything renders (sequences that are there: tests/test_render_sequences.py)."""
    folder = work / "rates"
    folder.mkdir(exist_ok=True)
    src = make_numbered_clip(folder / "m30.mov", 60, 64, 48, fps=Fraction(30))

    def clip(name: str, fps: int) -> otio.schema.Clip:
        c = otio.schema.Clip(name=name, media_reference=otio.schema.ExternalReference(target_url=src.resolve().as_uri()),
                             source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, fps),
                                                                  otio.opentime.RationalTime(10, fps)))
        return c

    seq = otio.schema.Clip(name="plate", media_reference=otio.schema.ImageSequenceReference(
        target_url_base="file:///plates/", name_prefix="plate.", name_suffix=".exr", start_frame=1001,
        frame_zero_padding=4, rate=24), source_range=otio.opentime.TimeRange(
        otio.opentime.RationalTime(0, 24), otio.opentime.RationalTime(10, 24)))
    path = _marked_edit(folder / "rates.otio", clip("at30", 30), clip("at15", 15))
    clips, refused = find_jobs(read_edit(path), path)
    assert [c.clip_name for c in clips] == ["at30"]
    reasons = {r.clip_name: r.reason for r in refused}
    assert reasons["at15"].startswith("the clip is timed at 15 fps but its media m30.mov runs at 30 fps")
    assert all("\n" not in r for r in reasons.values())
    path = _marked_edit(folder / "plate.otio", clip("at30", 30), seq)
    with pytest.raises(InputError, match=r"file:///plates/plate.####.exr \(image sequence for track V1 clip 'plate'"):
        find_jobs(read_edit(path), path)


def test_a_still_is_a_held_frame(work):
    """A still image on a 24 fps timeline (a PNG, which probes as one frame at 25 fps): its one frame
    is the job, and the return clip holds the rendered frame for the clip's record duration with a
    FreezeFrame; formats whose writer drops it refuse the return rather than play one frame."""
    import cv2
    import numpy as np

    folder = work / "still"
    folder.mkdir(exist_ok=True)
    cv2.imwrite(str(folder / "card.png"), np.full((48, 64, 3), 128, np.uint8))
    c = otio.schema.Clip(name="card", media_reference=otio.schema.ExternalReference(target_url="card.png"),
                         source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, 24),
                                                              otio.opentime.RationalTime(48, 24)))
    path = _marked_edit(folder / "still.otio", c)
    (mc,) = find_marked_clips(read_edit(path), path)
    assert (mc.source_first_frame, mc.source_last_frame, mc.record_frames, mc.speed.scalar) == (0, 0, 48, 0.0)
    out = make_numbered_clip(folder / "card.doppel.mov", 1, 64, 48, fps=Fraction(25))
    back = build_return_timeline(read_edit(path), [RenderedClip(mc, out, 0, 1, "")])
    (ret,) = back.video_tracks()[1].find_clips()
    assert isinstance(ret.effects[0], otio.schema.FreezeFrame)
    assert ret.range_in_parent().duration == otio.opentime.RationalTime(48, 24)
    with pytest.raises(InputError, match=r"'card' \(a still, held by a FreezeFrame\)"):
        write_return_edit(read_edit(path), [RenderedClip(mc, out, 0, 1, "")], folder / "still.doppel.xml")


def test_marked_clips_in_nested_stacks_are_named_not_lost(work):
    """OTIO's own nested_example.otio: a FACESWAP marker on a clip inside a nested stack is refused
    by name (one line), not silently ignored."""
    from tests.sample_edits import sample_edits

    timeline = read_edit(sample_edits() / "opentimelineio" / "nested_example.otio")
    nested = next(i for t in timeline.video_tracks() for i in t if isinstance(i, (otio.schema.Stack, otio.schema.Track)))
    inner = next(iter(nested.find_clips()))
    inner.markers.append(otio.schema.Marker(name="FACESWAP"))
    path = work / "nested.otio"
    otio.adapters.write_to_file(timeline, str(path))
    clips, refused = find_jobs(read_edit(path), path)
    assert [r.clip_name for r in refused] == [inner.name]
    assert "inside the nested sequence" in refused[0].reason and "\n" not in refused[0].reason


def test_avid_markers_land_on_the_clip_under_them(work):
    """Avid writes markers on an event track at record positions; the AAF adapter's own attachment
    put both markers of a marked 30fps.aaf on its second clip. Read here, each lands on the clip
    under its record position, at the matching source time."""
    from tests.sample_edits import mark_edit, media_key, sample_edits

    src = sample_edits() / "otio-aaf-adapter" / "30fps.aaf"
    marked = work / "aafmarks" / "30fps.aaf"
    marked.parent.mkdir(exist_ok=True)
    keys = {media_key(c) for c in read_edit(src).find_clips()}
    assert mark_edit(src, marked, keys) == 2
    raw = otio.adapters.read_from_file(str(marked), attach_markers=False)
    (event,) = [t for t in raw.tracks if t.kind not in (otio.schema.TrackKind.Video, otio.schema.TrackKind.Audio)]
    positions = sorted(m.marked_range.start_time.value for m in event.markers)
    timeline = read_edit(marked)
    v1 = timeline.video_tracks()[0]
    placed = sorted(c.range_in_parent().start_time.value + m.marked_range.start_time.value - c.trimmed_range().start_time.value
                    for c in v1.find_clips() for m in c.markers)
    assert placed == positions and all(len(c.markers) == 1 for c in v1.find_clips())
    assert len(timeline.tracks) == len(raw.tracks) - 1  # the event track is not a picture track


@pytest.mark.parametrize("which", ["global_start_time", "source_range", "marked_range", "available_range"])
def test_a_nan_rate_is_refused_as_the_edit_is_read(work, which, tmp_path):
    """OTIO reads `"rate": NaN`; frame arithmetic failed later with a traceback. Now: one InputError naming the time."""
    import json

    tl, _ = standard_edit(make_media(work / "nan-media", Fraction(25)), Fraction(25))
    path = tmp_path / "nan.otio"
    otio.adapters.write_to_file(tl, str(path))
    data = json.loads(path.read_text())

    def poison(node):  # the first RationalTime under a key named `which`
        if isinstance(node, dict):
            if which in node and isinstance(node[which], dict):
                target = node[which] if "rate" in node[which] else node[which]["start_time"]
                target["rate"] = float("nan")
                return True
            return any(poison(v) for v in node.values())
        return isinstance(node, list) and any(poison(v) for v in node)

    assert poison(data)
    path.write_text(json.dumps(data))  # Python's json writes NaN, as OTIO's own reader accepts it
    assert otio.adapters.read_from_file(str(path))  # OTIO itself takes it
    with pytest.raises(InputError, match=r"nan\.otio: .* is at rate nan .*finite number > 0") as err:
        read_edit(path)
    assert "\n" not in str(err.value)
