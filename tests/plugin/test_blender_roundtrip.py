"""The whole Blender round trip, for real: real faces, the real add-on, the real `doppel render`.

Debian's headless `blender` installs the add-on zip, builds a 25 fps 480x360 sequence on
channel 1 and renders it to PNG ("before"), marks two strips through the add-on's operator,
and runs the add-on's render operator, which exports the edit, starts the installed
`.venv/bin/doppel render` (found through DOPPEL_BIN) in the background and polls it with the
add-on's own poll function until it ends and the results are imported. Then it renders the
sequence again ("after").

    A  frames  1..16  face clip FA (timecode 01:00:00:00) media 2..17     marked, whole strip
    N  frames 17..24  numbered clip without a face,      media 10..17    not marked
    B  frames 25..40  face clip FB (no timecode),         media 4..19     marked, frames 29..36 only

The preset renders 2 handles each side, so the returned strips must be trimmed into their files.
Checked: the returned strips sit on channel 2 at exactly the marked frames and point at the
files `doppel render` recorded in render.json; those files carry the synthetic-media label;
in the "after" render every frame shows the right source frame (painted numbers), the face
region differs from the "before" frame on marked frames and nothing differs anywhere else.
"""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from plugin.blender.package import build_zip
from tests.media_factory import cached_clip, read_frame_number
from tests.plugin.test_blender import run_blender

BLENDER = shutil.which("blender")
ROOT = Path(__file__).resolve().parents[2]
DOPPEL = ROOT / ".venv" / "bin" / "doppel"
pytestmark = [
    pytest.mark.skipif(BLENDER is None, reason="Debian's blender is not installed (apt install blender)"),
    pytest.mark.skipif(not DOPPEL.exists(), reason=f"no doppel executable at {DOPPEL} (pip install -e . in .venv)"),
]
W, H, FPS = 480, 360, 25
FRAMES = (1, 40)
MARKED = set(range(1, 17)) | set(range(29, 37))

PRESET = """\
description: Blender round-trip test preset (small, fast, 2 handles)
handles: 2
detect_every: 1
output:
  codec: h264
  container: mp4
  audio: none
  name: "{clip}_{start}-{end}.doppel"
"""


def expected_number(f: int) -> int:
    """The source frame number Blender shows at timeline frame `f` (both renders)."""
    if 1 <= f <= 16:
        return 2 + f - 1
    if 17 <= f <= 24:
        return 10 + f - 17
    return 4 + f - 25


def read_png(prefix: str, f: int) -> np.ndarray:
    png = Path(prefix.replace("####", f"{f:04d}") + ".png")
    bgr = cv2.imread(str(png))
    assert bgr is not None and bgr.shape == (H, W, 3), png
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def face_box(rgb: np.ndarray) -> tuple[slice, slice]:
    """The detected face box (HOG, as the preset), grown 10 %: the region a swap may touch."""
    from renderer.faces.detect import detect

    (det,) = detect(rgb, "hog")
    x0, y0, x1, y1 = det.box
    gx, gy = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
    return (slice(max(0, int(y0 - gy)), min(H, int(y1 + gy) + 1)),
            slice(max(0, int(x0 - gx)), min(W, int(x1 + gx) + 1)))


@pytest.fixture(scope="module")
def roundtrip(tmp_path_factory) -> tuple[Path, dict, dict]:
    from tests.model_fixtures import face_clip, trained_model

    work = tmp_path_factory.mktemp("blender_roundtrip")
    fa = face_clip(work / "FA.mov", frames=20, fps=Fraction(FPS), timecode="01:00:00:00")
    fb = face_clip(work / "FB.mp4", frames=24, fps=Fraction(FPS))
    plain = cached_clip("blender-noface", frames=30, width=W, height=H, fps=Fraction(FPS))
    sources = {p: p.read_bytes() for p in (fa, fb)}
    preset = work / "roundtrip.yaml"
    preset.write_text(PRESET)
    spec = {
        "addon_zip": str(build_zip(work / "doppel_vse.zip")),
        "fps": FPS, "width": W, "height": H,
        "strips": [
            {"name": "A", "path": str(fa), "channel": 1, "frame_start": -1, "final_start": 1, "final_end": 17},
            {"name": "N", "path": str(plain), "channel": 1, "frame_start": 7, "final_start": 17, "final_end": 25},
            {"name": "B", "path": str(fb), "channel": 1, "frame_start": 21, "final_start": 25, "final_end": 41},
        ],
        "mark": {"A": None, "B": [29, 37]},
        "overrides": "",
        "export": str(work / "exported.otio"),
        "preset": str(preset),
        "model": str(trained_model()),
        "out_dir": str(work / "out"),
        "render_frames": list(FRAMES),
        "png_before": str(work / "before" / "f_####"),
        "png_prefix": str(work / "after" / "f_####"),
        "report": str(work / "report.json"),
    }
    report = run_blender(work, spec, {"DOPPEL_BIN": str(DOPPEL), "DOPPEL_KEYS_DIR": str(work / "no-keys")})
    for path, data in sources.items():
        assert path.read_bytes() == data, f"{path} was modified"
    record = json.loads((work / "out" / "render.json").read_text())
    return work, spec, {"report": report, "record": record}


def test_returned_strips_sit_on_the_marked_frames(roundtrip):
    work, spec, got = roundtrip
    report, record = got["report"], got["record"]
    assert report["status"] == "imported 2 clip(s) on channel 2", report["status"]
    assert record["status"] == "ok"
    # the exported edit addressed the right source frames (FA through its timecode, FB from 0)
    assert sorted((c["clip"], c["source"]["first_frame"], c["source"]["last_frame"]) for c in record["clips"]) == [
        ("A", 2, 17), ("B", 8, 15)]
    outputs = sorted(c["output"]["path"] for c in record["clips"])
    returned = sorted((st for st in report["strips"] if st["is_return"]), key=lambda st: st["final_start"])
    # channel, visible frames [start, end), file; and the file frame shown first = the handle offset (2)
    assert [(st["channel"], st["final_start"], st["final_end"]) for st in returned] == [(2, 1, 17), (2, 29, 37)]
    assert sorted(st["filepath"] for st in returned) == outputs
    assert [st["final_start"] - st["frame_start"] for st in returned] == [2, 2]
    a_src, b_src = spec["strips"][0]["path"], spec["strips"][2]["path"]
    assert [st["doppel_source"] for st in returned] == [a_src, b_src]
    originals = {st["name"]: (st["channel"], st["final_start"], st["final_end"], st["faceswap"])
                 for st in report["strips"] if not st["is_return"]}
    assert originals == {"A": (1, 1, 17, True), "N": (1, 17, 25, False), "B": (1, 25, 41, True)}


def test_rendered_files_are_labelled_synthetic(roundtrip):
    _, _, got = roundtrip
    for entry in got["record"]["clips"]:
        with av.open(entry["output"]["path"]) as container:
            comment = dict(container.metadata).get("comment", "")
        assert "SYNTHETIC MEDIA" in comment, (entry["output"]["path"], comment)
        assert entry["frames"]["swapped"] >= 0.8 * entry["render_range"]["frames"], entry["frames"]


def test_blender_render_shows_swapped_faces_exactly_on_marked_frames(roundtrip):
    _, spec, _ = roundtrip
    first, last = FRAMES
    face_diff, rest_diff = {}, {}
    for f in range(first, last + 1):
        before, after = read_png(spec["png_before"], f), read_png(spec["png_prefix"], f)
        assert (read_frame_number(before), read_frame_number(after)) == (expected_number(f),) * 2, f
        diff = np.abs(before.astype(np.int16) - after.astype(np.int16)).mean(axis=2)  # (H, W) float
        if f in MARKED:
            ys, xs = face_box(before)
            face_diff[f] = float(diff[ys, xs].mean())
            outside = np.ones_like(diff, dtype=bool)
            outside[ys, xs] = False
            rest_diff[f] = float(diff[outside].mean())  # the rendered file's own codec noise
        else:
            assert diff.max() == 0, f"frame {f} is not marked but differs from the original (max {diff.max()})"
    # every marked frame: the face changed (measured 6.7..8.5 levels) well above the H.264 generation
    # noise of the rendered file around it (measured 0.8..1.4)
    assert all(face_diff[f] > 4.0 and face_diff[f] > 3 * rest_diff[f] for f in MARKED), (face_diff, rest_diff)
    assert max(rest_diff.values()) < 2.5, rest_diff
