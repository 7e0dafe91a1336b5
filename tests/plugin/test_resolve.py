"""The plain-Python parts of the Resolve script, checked against the project's own timeline module:
a Resolve-style export patched with marker notes must be read by `renderer.timeline` as the right
swap jobs, and a return edit built by `renderer.timeline` must become the right AppendToTimeline
placements. (Resolve itself cannot run here; `resolve_api` is untested.)"""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from plugin.blender import otio_json
from plugin.resolve import core
from renderer import timeline as tl_mod
from tests.media_factory import cached_clip

RATE = 25.0
RT = lambda v: otio.opentime.RationalTime(v, RATE)  # noqa: E731
TR = lambda s, d: otio.opentime.TimeRange(RT(s), RT(d))  # noqa: E731
TC = 90000


def _resolve_export(tmp_path: Path) -> tuple[Path, Path]:
    """What Resolve's OTIO export looks like: timeline at 01:00:00:00, timecoded media, no clip metadata."""
    media = cached_clip("resolve-src", frames=80, width=96, height=64, fps=Fraction(25), timecode="01:00:00:00")
    tl = otio.schema.Timeline("Cut 1", global_start_time=RT(TC))
    v1 = otio.schema.Track("Video 1")
    ref = lambda: otio.schema.ExternalReference(media.as_uri(), TR(TC, 80))  # noqa: E731
    v1.append(otio.schema.Clip("shot1", ref(), TR(TC + 10, 30)))
    v1.append(otio.schema.Gap(source_range=TR(0, 5)))
    v1.append(otio.schema.Clip("shot2", ref(), TR(TC + 50, 20)))
    tl.tracks.append(v1)
    path = tmp_path / "Cut_1.otio"
    otio.adapters.write_to_file(tl, str(path))
    return path, media


def test_apply_markers_is_read_by_renderer_timeline(tmp_path):
    edit, media = _resolve_export(tmp_path)
    fps = Fraction(25)
    items = [
        core.ItemMarkers(1, 0, core.parse_resolve_markers({0.0: {"name": "FACESWAP", "note": "blend=0.6",
                                                                 "duration": 1, "color": "Green"}})),
        core.ItemMarkers(1, 35, core.parse_resolve_markers({
            4.0: {"name": "Marker 1", "note": "FACESWAP preset=hq", "duration": 8, "color": "Red"},
            0.0: {"name": "unrelated", "note": "", "duration": 1}})),
    ]
    data = otio_json.load_otio(edit)
    assert core.apply_markers(data, items, fps) == 2
    otio_json.write_otio(edit, data)
    jobs = tl_mod.find_marked_clips(tl_mod.read_edit(edit), edit)
    got = [(j.clip_name, j.source_first_frame, j.source_last_frame, j.overrides) for j in jobs]
    assert got == [("shot1", 10, 39, {"blend": "0.6"}), ("shot2", 54, 61, {"preset": "hq"})]


def test_apply_markers_errors(tmp_path):
    edit, _ = _resolve_export(tmp_path)
    data = otio_json.load_otio(edit)
    mark = core.parse_resolve_markers({0: {"name": "FACESWAP", "note": "", "duration": 1}})
    with pytest.raises(ValueError, match="video track 1 at frame 31 matches no clip"):
        core.apply_markers(data, [core.ItemMarkers(1, 31, mark)], Fraction(25))
    with pytest.raises(ValueError, match="video track 3.*has 1 video track"):
        core.apply_markers(data, [core.ItemMarkers(3, 0, mark)], Fraction(25))
    bad = core.parse_resolve_markers({0: {"name": "FACESWAP", "note": "blend", "duration": 1}})
    with pytest.raises(ValueError, match="marker note on video track 1 at frame 0: override 'blend'"):
        core.apply_markers(data, [core.ItemMarkers(1, 0, bad)], Fraction(25))
    unmarked = core.parse_resolve_markers({0: {"name": "note to self", "note": "", "duration": 1}})
    assert core.apply_markers(data, [core.ItemMarkers(1, 0, unmarked)], Fraction(25)) == 0


def test_append_infos_from_renderer_return_edit(tmp_path):
    edit, media = _resolve_export(tmp_path)
    data = otio_json.load_otio(edit)
    core.apply_markers(data, [core.ItemMarkers(1, 35, core.parse_resolve_markers(
        {4.0: {"name": "FACESWAP", "note": "preset=hq", "duration": 8}}))], Fraction(25))
    otio_json.write_otio(edit, data)
    timeline = tl_mod.read_edit(edit)
    (job,) = tl_mod.find_marked_clips(timeline, edit)
    rendered = tmp_path / "media" / "shot2.mov"
    rendered.parent.mkdir()
    rendered.write_bytes(b"")  # only its path matters to the return edit
    # the file holds 2 handle frames before the marked range, with the matching source timecode
    rc = tl_mod.RenderedClip(clip=job, path=rendered, first_frame=job.source_first_frame - 2,
                             frames=job.frames + 4, timecode="01:00:02:02")
    ret = tmp_path / "Cut_1.doppel.otio"
    tl_mod.write_return_edit(timeline, [rc], ret)
    (info,) = core.append_infos(ret, Fraction(25), timeline_start=TC)
    assert (info.path, info.start_frame, info.end_frame, info.record_frame) == (str(rendered), 2, 9, TC + 39)
    assert info.note == "preset=hq"


def test_paths_and_launcher(tmp_path):
    paths = core.job_paths(tmp_path, "My Project", "Cut 3: final")
    assert paths.edit == tmp_path / "My_Project" / "Cut_3_final" / "Cut_3_final.otio"
    assert core.default_scripts_dir("linux", {}, Path("/h")) == Path(
        "/h/.local/share/DaVinciResolve/Fusion/Scripts/Utility")
    assert core.default_scripts_dir("darwin", {}, Path("/h")).parts[-4:] == ("DaVinci Resolve", "Fusion", "Scripts",
                                                                            "Utility")
    assert "Support/Fusion" in core.default_scripts_dir("win32", {"APPDATA": "C:/A"}, Path("/h")).as_posix()
    root = Path(__file__).resolve().parents[2]
    text = core.launcher_text(root)
    compile(text, "launcher", "exec")
    assert repr(str(root)) in text


@pytest.mark.skipif(shutil.which("python3", path="/usr/bin") is None, reason="no system python3 to check with")
def test_resolve_side_needs_only_the_standard_library():
    """Resolve's Python has no opentimelineio/torch: the modules it runs must import without them."""
    root = Path(__file__).resolve().parents[2]
    code = ("import sys; sys.path.insert(0, %r); import plugin.resolve.flow, plugin.resolve.core, "
            "plugin.resolve.resolve_api; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('opentimelineio', 'torch', 'renderer', 'bpy')))") % str(root)
    proc = subprocess.run(["/usr/bin/python3", "-I", "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
