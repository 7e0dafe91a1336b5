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


def test_released_arrays_come_back_zeroed(tmp_path: Path) -> None:
    """A pool's array is cleared where the picture converted or wrote, and gives the next picture
    the same pixels a new array would; a picture is released once, and not read after."""
    frame, matrix, rng = _ffmpeg_frame(tmp_path, "yuv420p", "334x202")
    want = media.frame_to_rgb(frame, matrix, rng)
    pool: list[np.ndarray] = []
    pic = media.RegionRGB(frame, matrix, rng, pool)
    arr = pic.region(40, 30, 131, 97)
    arr[40:60, 50:90] = 9  # pasted inside the region
    pic.release()
    pic.release()
    assert len(pool) == 1 and pool[0] is arr and not arr.any()
    with pytest.raises(AttributeError):
        pic.region(0, 0, 10, 10)
    again = media.RegionRGB(frame, matrix, rng, pool)
    assert again.array is arr and not pool
    assert np.array_equal(again.region(100, 60, 260, 180)[60:180, 100:260], want[60:180, 100:260])
    assert np.array_equal(again.whole(), want)
    again.release()  # converted whole: the whole array cleared
    assert not pool[0].any()
    other, _, _ = _ffmpeg_frame(tmp_path, "yuv420p", "64x48")
    small = media.RegionRGB(other, matrix, rng, pool)  # a pooled array of another size is not used
    assert small.array.shape == (48, 64, 3) and len(pool) == 1
    media.RegionRGB(frame, matrix, rng).release()  # no pool: nothing to give back


def test_a_pipelines_pictures_in_flight_all_come_back(tmp_path: Path) -> None:
    """A 1080p swap has up to ~16 pictures alive at once: every one of their arrays is reused by
    the next 16, none dropped for a new 6 MB array of zeros."""
    frame, matrix, rng = _ffmpeg_frame(tmp_path, "yuv420p", "64x48")
    pool: list[np.ndarray] = []
    first = [media.RegionRGB(frame, matrix, rng, pool) for _ in range(16)]
    arrays = {id(p.array) for p in first}
    for p in first:
        p.region(0, 0, 32, 32)
        p.release()
    assert len(pool) == 16
    again = [media.RegionRGB(frame, matrix, rng, pool) for _ in range(16)]
    assert {id(p.array) for p in again} == arrays and not pool
