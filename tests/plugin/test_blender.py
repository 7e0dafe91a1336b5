"""The Blender VSE add-on, run for real in Debian's headless `blender`.

The sequence (25 fps, 160x96) holds three strips on channel 1, cut from numbered clips:

    A  frames  6..35  media   5..34 of clip A   marked (whole strip)
    B  frames 36..55  media 100..119 of clip B  marked, sub-range 40..49 only
    C  frames 56..65  media  40..49 of clip A   not marked

The return edit puts "swapped" media (clip S, numbered 0..399) at exactly the marked frames:
S 300.. on 6..35 and S 200.. on 40..49. A render of the Blender sequence must show S's numbers
exactly there and the originals everywhere else.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import cv2
import opentimelineio as otio
import pytest

from plugin.blender.package import build_zip
from tests.media_factory import cached_clip, read_frame_number

BLENDER = shutil.which("blender")
pytestmark = pytest.mark.skipif(BLENDER is None, reason="Debian's blender is not installed (apt install blender)")
W, H = 160, 96


def expected_original(f: int) -> int:
    if 6 <= f <= 35:
        return 5 + f - 6
    if 36 <= f <= 55:
        return 100 + f - 36
    return 40 + f - 56


def _spec(tmp_path: Path) -> dict:
    a = cached_clip("blender-a", frames=60, width=W, height=H, fps=Fraction(25))
    b = cached_clip("blender-b", frames=200, width=W, height=H, fps=Fraction(25))
    return {
        "addon_zip": str(build_zip(tmp_path / "doppel_vse.zip")),
        "fps": 25, "width": W, "height": H,
        "strips": [
            {"name": "A", "path": str(a), "channel": 1, "frame_start": 1, "final_start": 6, "final_end": 36},
            {"name": "B", "path": str(b), "channel": 1, "frame_start": -64, "final_start": 36, "final_end": 56},
            {"name": "C", "path": str(a), "channel": 1, "frame_start": 16, "final_start": 56, "final_end": 66},
        ],
        "mark": {"A": None, "B": [40, 50]},
        "overrides": "blend=0.7",
        "export": str(tmp_path / "seq.otio"),
        "render_frames": [6, 65],
        "png_prefix": str(tmp_path / "png" / "f_####"),
        "report": str(tmp_path / "report.json"),
    }


def run_blender(tmp_path: Path, spec: dict, env_extra: dict | None = None) -> dict:
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"),
           "BLENDER_USER_CONFIG": str(tmp_path / "bconfig"), "BLENDER_USER_SCRIPTS": str(tmp_path / "bscripts"),
           **(env_extra or {})}
    proc = subprocess.run(
        [BLENDER, "-b", "--factory-startup", "--python-exit-code", "1",
         "--python", str(Path(__file__).with_name("blender_script.py")), "--", str(spec_path)],
        capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(Path(spec["report"]).read_text())


def rendered_numbers(spec: dict) -> dict[int, int]:
    first, last = spec["render_frames"]
    out = {}
    for f in range(first, last + 1):
        png = Path(spec["png_prefix"].replace("####", f"{f:04d}") + ".png")
        bgr = cv2.imread(str(png))
        assert bgr is not None and bgr.shape == (H, W, 3), png
        out[f] = read_frame_number(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return out


def test_blender_mark_export_import_render(tmp_path):
    spec = _spec(tmp_path)
    s = cached_clip("blender-swapped", frames=400, width=W, height=H, fps=Fraction(25))
    # the return edit, as `doppel render` describes one, written by the real opentimelineio
    rate = 25.0
    rt = lambda v: otio.opentime.RationalTime(v, rate)  # noqa: E731
    ret = otio.schema.Timeline("seq")
    track = otio.schema.Track("FACESWAP")
    track.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(rt(0), rt(6))))
    track.append(otio.schema.Clip("A FACESWAP", otio.schema.ExternalReference(
        s.as_uri(), otio.opentime.TimeRange(rt(3600), rt(400))), otio.opentime.TimeRange(rt(3900), rt(30))))
    track.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(rt(0), rt(4))))
    track.append(otio.schema.Clip("B FACESWAP", otio.schema.ExternalReference(
        s.as_uri(), otio.opentime.TimeRange(rt(3600), rt(400))), otio.opentime.TimeRange(rt(3800), rt(10))))
    ret.tracks.extend([otio.schema.Track("V1"), track])
    spec["return_edit"] = str(tmp_path / "seq.doppel.otio")
    otio.adapters.write_to_file(ret, spec["return_edit"])

    report = run_blender(tmp_path, spec)

    # 1. the exported edit, read by the real opentimelineio
    exported = otio.adapters.read_from_file(spec["export"])
    (v1,) = exported.video_tracks()
    clips = {c.name: c for c in v1.find_clips()}
    assert v1.range_of_child(clips["A"]).start_time.value == 6
    assert clips["A"].source_range.start_time.value == 5 and clips["A"].source_range.duration.value == 30
    (ma,) = clips["A"].markers
    assert (ma.name, ma.marked_range.duration.value, ma.comment) == ("FACESWAP", 0, "blend=0.7")
    (mb,) = clips["B"].markers
    assert (mb.marked_range.start_time.value, mb.marked_range.duration.value) == (104, 10)
    assert not clips["C"].markers
    assert clips["C"].source_range.start_time.value == 40

    # 2. the imported strips: a new channel above the originals, at exactly the marked frames
    returned = sorted((st for st in report["strips"] if st["is_return"]), key=lambda st: st["final_start"])
    assert [(st["channel"], st["final_start"], st["final_end"], st["filepath"]) for st in returned] == [
        (2, 6, 36, str(s)), (2, 40, 50, str(s))]
    assert {st["name"]: st["faceswap"] for st in report["strips"] if not st["is_return"]} == {
        "A": True, "B": True, "C": False}

    # 3. the Blender render shows the return media exactly on the marked frames
    seen = rendered_numbers(spec)
    assert len(seen) == 60
    want = {f: (300 + f - 6 if 6 <= f <= 35 else 200 + f - 40 if 40 <= f <= 49 else expected_original(f))
            for f in seen}
    assert seen == want


def test_blender_import_reports_missing_track(tmp_path):
    spec = _spec(tmp_path)
    bad = otio.schema.Timeline("seq")
    bad.tracks.append(otio.schema.Track("V1"))
    spec["return_edit"] = str(tmp_path / "bad.otio")
    otio.adapters.write_to_file(bad, spec["return_edit"])
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.run(
        [BLENDER, "-b", "--factory-startup", "--python-exit-code", "1",
         "--python", str(Path(__file__).with_name("blender_script.py")), "--", str(spec_path)],
        capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"),
             "BLENDER_USER_CONFIG": str(tmp_path / "bc"), "BLENDER_USER_SCRIPTS": str(tmp_path / "bs")})
    assert proc.returncode != 0
    assert "no video track named 'FACESWAP'" in proc.stdout + proc.stderr


def test_blender_render_operator_reports_doppel_failure(tmp_path):
    """The render operator really starts the installed `doppel` in the background and surfaces
    its one-line error when the job fails (an unknown preset is bad input: exit 2)."""
    doppel = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "doppel"
    if not doppel.exists():
        pytest.skip(f"no doppel executable at {doppel}")
    spec = _spec(tmp_path)
    spec.update({"preset": "no-such-preset-xyz", "out_dir": str(tmp_path / "out"), "expect_failure": True,
                 "render_frames": [6, 6]})
    report = run_blender(tmp_path, spec, {"DOPPEL_BIN": str(doppel)})
    assert report["status"].startswith("failed: ") and "doppel" in report["status"]
    assert not any(st["is_return"] for st in report["strips"])
    assert (tmp_path / "out" / "Scene.otio").exists()  # the edit it handed to doppel
