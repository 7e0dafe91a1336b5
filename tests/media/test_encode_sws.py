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


@pytest.mark.parametrize("size", ["1920x1080", "720x486"])
def test_420_frames_widen_to_prores_input_as_the_ffmpeg_cli_does(tmp_path: Path, size: str) -> None:
    """The trim's 4:2:0 8-bit -> 4:2:2 10-bit shortcut (`widen_420_to_422p10`) writes the samples the
    ffmpeg CLI converts the same file to with swscale's bilinear filter (PyAV's reformat default),
    exactly, on an H.264 file the CLI encoded."""
    import subprocess

    from renderer.media.encode import widen_420_to_422p10

    src, reference = tmp_path / "src.mp4", tmp_path / "ffmpeg.yuv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25", "-frames:v", "6",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(src)], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-sws_flags", "bilinear", "-pix_fmt", "yuv422p10le",
                    "-f", "rawvideo", str(reference)], check=True)
    w, h = (int(v) for v in size.split("x"))
    out, widened = tmp_path / "out.mkv", 0
    with media.VideoWriter(out, width=w, height=h, fps=Fraction(25), codec="ffv1", pix_fmt="yuv422p10le") as writer:
        for _, frame in media.read_av_frames(src, 0, 5):
            widened += widen_420_to_422p10(frame) is not None
            writer.write_av(frame)  # ffv1 keeps the samples exactly
    assert widened == 6, "every frame takes the shortcut"
    written = b"".join(b"".join(_planes(f)) for _, f in media.read_av_frames(out, 0, 5))
    assert written == reference.read_bytes()


def test_frames_the_shortcut_does_not_cover_are_left_to_swscale() -> None:
    from renderer.media.encode import widen_420_to_422p10

    rgb = np.random.default_rng(9).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    assert widen_420_to_422p10(frame.reformat(format="yuv420p10le")) is None  # 10-bit source
    assert widen_420_to_422p10(frame.reformat(format="yuv422p")) is None
    assert widen_420_to_422p10(frame.reformat(format="yuv420p")) is not None


def test_the_shortcut_matches_swscale_on_every_8_bit_value() -> None:
    """Samples outside the limited range too (0-15, 236-255: sub-blacks, super-whites)."""
    from renderer.media.decode import _plane_arrays
    from renderer.media.encode import widen_420_to_422p10

    frame = av.VideoFrame(256, 64, "yuv420p")
    rng = np.random.default_rng(10)
    for plane in _plane_arrays(frame):
        plane[:] = rng.integers(0, 256, plane.shape, dtype=np.uint8)
    _plane_arrays(frame)[0][0] = np.arange(256, dtype=np.uint8)  # every value once
    swscale = frame.reformat(format="yuv422p10le", src_colorspace="ITU601", dst_colorspace="ITU601",
                             src_color_range="MPEG", dst_color_range="MPEG", threads=1)
    widened = widen_420_to_422p10(frame)
    assert widened is not None and _planes(widened) == _planes(swscale)
