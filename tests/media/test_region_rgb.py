"""renderer.media.RegionRGB: a frame converted region by region holds exactly what the whole-frame
conversion gives, on clips the ffmpeg CLI wrote, for every planar YUV layout and bit depth."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from renderer import media

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI")


def _ffmpeg_frame(tmp: Path, pix_fmt: str, size: str):
    """Frame 1 of ffmpeg's testsrc2 (bars, gradients, moving text), coded losslessly by the CLI."""
    out = tmp / f"src-{pix_fmt}.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
                    "-frames:v", "2", "-pix_fmt", pix_fmt, "-c:v", "ffv1", str(out)], check=True)
    info = media.probe(out)
    matrix, rng = media.effective_color(info, info.width, info.height, info.pix_fmt)
    return next(media.read_av_frames(out, 1, 1, info))[1], matrix, rng


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuvj420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le",
                                     "yuv444p10le", "yuv444p12le", "gbrp"])
def test_regions_hold_the_whole_frame_conversion(tmp_path: Path, pix_fmt: str) -> None:
    size = "333x203" if "444" in pix_fmt or pix_fmt == "gbrp" else "334x202"  # off the tile grid and SIMD steps
    frame, matrix, rng = _ffmpeg_frame(tmp_path, pix_fmt, size)
    want = media.frame_to_rgb(frame, matrix, rng)
    pic = media.RegionRGB(frame, matrix, rng)
    seen = np.zeros(want.shape[:2], bool)
    boxes = [(40, 30, 131, 97), (100, 60, 260, 180), (0, 0, 5, 5), (300, 150, 999, 999), (-20, 190, 40, 400)]
    for x0, y0, x1, y1 in boxes:
        got = pic.region(x0, y0, x1, y1)
        seen[max(0, y0):y1, max(0, x0):x1] = True
        assert np.array_equal(got[seen], want[seen]), (x0, y0, x1, y1)
    if pix_fmt != "gbrp":
        assert pic.converted_px < want.shape[0] * want.shape[1]  # only tiles were converted
    assert np.array_equal(pic.whole(), want)


def test_regions_never_overwrite_what_was_written(tmp_path: Path) -> None:
    """A pasted face stays when a later region (another face's) overlaps it."""
    frame, matrix, rng = _ffmpeg_frame(tmp_path, "yuv420p", "334x202")
    pic = media.RegionRGB(frame, matrix, rng)
    arr = pic.region(10, 10, 100, 100)
    arr[20:60, 20:60] = (255, 0, 255)
    arr = pic.region(0, 0, 200, 150)
    assert (arr[20:60, 20:60] == (255, 0, 255)).all()
    assert (pic.whole()[20:60, 20:60] == (255, 0, 255)).all()
    want = media.frame_to_rgb(frame, matrix, rng)
    assert np.array_equal(pic.whole()[100:], want[100:])
