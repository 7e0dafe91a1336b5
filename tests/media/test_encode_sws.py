"""Whole-frame conversions in renderer.media.encode are repeatable: the same RGB frame written
again gives the same coded samples, and they are what unsliced swscale gives.

FFmpeg 8's sliced swscale gave different rows (and different ones from run to run) for widths
that are no multiple of its SIMD step (98, 202, 720, 1000, 1998 px), 8- and 10-bit alike: a race,
so a test repeats the conversion and compares with the unsliced one."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from renderer import media


def _planes(frame: av.VideoFrame) -> list[bytes]:
    from renderer.media.decode import _plane_arrays

    return [p.tobytes() for p in _plane_arrays(frame)]


@pytest.mark.parametrize("pix_fmt", ["yuv422p10le", "yuv420p"])
def test_rgb_frames_convert_the_same_every_time(tmp_path: Path, pix_fmt: str) -> None:
    h, w = 486, 720  # NTSC: sliced swscale differed from unsliced on 16 of 16 tries, in two ways
    rgb = np.random.default_rng(7).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = tmp_path / "same.mkv"
    with media.VideoWriter(out, width=w, height=h, fps=Fraction(25), codec="ffv1", pix_fmt=pix_fmt) as writer:
        for _ in range(12):
            writer.write(rgb)  # each frame converted on its own; ffv1 keeps the samples exactly
    decoded = [_planes(f) for _, f in media.read_av_frames(out, 0, 11)]
    assert all(d == decoded[0] for d in decoded), "the same RGB frame was coded differently"
    unsliced = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format=pix_fmt, src_colorspace="ITU709", dst_colorspace="ITU709", src_color_range="JPEG",
        dst_color_range="MPEG", threads=1)
    assert decoded[0] == _planes(unsliced)


def test_decoded_frames_reformatted_the_same_every_time(tmp_path: Path) -> None:
    """write_av of a 10-bit 4:2:2 frame into an 8-bit 4:2:0 stream: one conversion, every time, the unsliced
    one (sliced, yuv422p10le -> yuv420p at 720x486 differed from it on 12 of 12 tries)."""
    h, w = 486, 720
    rgb = np.random.default_rng(8).integers(0, 256, (h, w, 3), dtype=np.uint8)
    src = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv422p10le", threads=1)
    out = tmp_path / "reformat.mkv"
    with media.VideoWriter(out, width=w, height=h, fps=Fraction(25), codec="ffv1", pix_fmt="yuv420p") as writer:
        for _ in range(12):
            writer.write_av(src)
    decoded = [_planes(f) for _, f in media.read_av_frames(out, 0, 11)]
    assert all(d == decoded[0] for d in decoded)
    unsliced = src.reformat(format="yuv420p", src_colorspace="ITU709", dst_colorspace="ITU709",
                            src_color_range="MPEG", dst_color_range="MPEG", threads=1)
    assert decoded[0] == _planes(unsliced)
