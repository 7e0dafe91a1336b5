"""renderer.media.MatteWriter: exact alpha, the source's timing (VFR too), atomic on every fault."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from renderer import media
from renderer.errors import MediaError
from renderer.media.matte import ALPHA_MAX, decode_matte, matte_paths
from tests.media_factory import make_numbered_clip, vfr_pts

W, H = 64, 48


def frame_times(path: Path) -> list[float]:
    """Every video frame's presentation time in seconds, as ffprobe reads it."""
    if shutil.which("ffprobe") is None:
        pytest.skip("the ffprobe CLI is not installed")
    done = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                           "frame=best_effort_timestamp_time", "-of", "csv=p=0", str(path)],
                          capture_output=True, text=True, check=True)
    return [float(line.strip().rstrip(",")) for line in done.stdout.split() if line.strip()]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name or p.suffix == ".mov")


def test_overlapping_faces_combine_as_over_and_decode_exactly(tmp_path: Path) -> None:
    src = make_numbered_clip(tmp_path / "src.mkv", 3, W, H, codec="ffv1", timecode="10:00:00:00")
    info = media.probe(src)
    rng = np.random.default_rng(0)
    a1 = rng.random((20, 30), dtype=np.float32)
    a2 = rng.random((16, 16), dtype=np.float32)
    a2[0, 0] = 1.0
    face = np.full((20, 30, 3), 200.0, np.float32)
    matte, plate = matte_paths(tmp_path / "out.mkv")
    with media.MatteWriter(info, 0, 2, matte=matte, plate=plate) as mw:
        mw.write(0, [(4, 6, a1, face), (20, 10, a2, face[:16, :16] * 0.5)])
        mw.fill_to(3)
    want = np.zeros((H, W), np.float32)
    want[6:26, 4:34] = a1
    box = want[10:26, 20:36]
    want[10:26, 20:36] = a2 + box * (1 - a2)
    got = decode_matte(matte)
    assert len(got) == 3 and not got[1].any() and not got[2].any()
    assert np.array_equal(got[0], np.rint(want * ALPHA_MAX).astype(np.uint16))
    assert np.array_equal(decode_matte(plate)[0], got[0])
    assert media.probe(matte).timecode == "10:00:00:00"
    # The plate's picture where the second face is fully on is that face (100), where only the first is, 200.
    _, rgb = next(media.read_frames(plate, 0, 0))
    assert abs(int(rgb[10, 20, 0]) - 100) <= 2 and abs(int(rgb[7, 5, 1]) - 200) <= 2


def test_vfr_source_timing_is_kept(tmp_path: Path) -> None:
    pts = vfr_pts(12)
    src = make_numbered_clip(tmp_path / "vfr.mkv", 12, W, H, codec="ffv1", pts=pts, time_base=Fraction(1, 1000))
    info = media.probe(src)
    assert info.vfr
    matte, _ = matte_paths(tmp_path / "vfr.out.mkv")
    with media.MatteWriter(info, 3, 10, matte=matte) as mw:
        mw.fill_to(11)
    src_t, matte_t = frame_times(src)[3:11], frame_times(matte)
    assert len(matte_t) == 8
    assert np.allclose(np.array(matte_t) - matte_t[0], np.array(src_t) - src_t[0], atol=0.001)


def test_out_of_order_or_short_mattes_leave_nothing(tmp_path: Path) -> None:
    src = make_numbered_clip(tmp_path / "src.mkv", 4, W, H, codec="ffv1")
    info = media.probe(src)
    matte, plate = matte_paths(tmp_path / "out.mkv")
    with pytest.raises(MediaError, match="out of order: expected source frame 1"):
        with media.MatteWriter(info, 0, 3, matte=matte, plate=plate) as mw:
            mw.write(0, [])
            mw.write(2, [])
    assert leftovers(tmp_path) == []
    with pytest.raises(MediaError, match="stopped at source frame 2 of 0-3"):
        with media.MatteWriter(info, 0, 3, matte=matte) as mw:
            mw.fill_to(2)
    assert leftovers(tmp_path) == []
    with pytest.raises(RuntimeError):
        with media.MatteWriter(info, 0, 3, matte=matte) as mw:
            mw.fill_to(4)
            raise RuntimeError("the render failed after the last frame")
    assert leftovers(tmp_path) == []
