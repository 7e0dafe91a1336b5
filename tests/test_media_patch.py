"""renderer.media.patch_regions / patch_frame on frames decoded from clips the ffmpeg CLI wrote."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from renderer import media

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI")


def _ffmpeg_clip(tmp: Path, pix_fmt: str, size: str = "98x66") -> Path:
    """Two frames of ffmpeg's testsrc2 (colour bars, gradients, moving text), coded by the CLI."""
    out = tmp / f"src-{pix_fmt}.mkv"
    codec = ["-c:v", "ffv1"] if pix_fmt.endswith("le") else ["-c:v", "libx264", "-crf", "10"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
                    "-frames:v", "2", "-pix_fmt", pix_fmt, *codec, str(out)], check=True)
    return out


def _planes(frame) -> list[np.ndarray]:
    from renderer.media.decode import _plane_arrays

    return [p.copy() for p in _plane_arrays(frame)]


def _full_conversion(rgb: np.ndarray, pix_fmt: str, matrix: str, rng: str):
    import av

    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format=pix_fmt, src_colorspace=matrix, dst_colorspace=matrix, src_color_range="JPEG", dst_color_range=rng,
        threads=1)  # sliced swscale is not repeatable for 10-bit output (see media.patch_regions)


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p", "yuv444p", "yuv422p10le", "yuv444p12le", "gbrp10le", "yuva444p10le"])
def test_patch_regions_touches_only_the_changed_samples(tmp_path: Path, pix_fmt: str) -> None:
    src = _ffmpeg_clip(tmp_path, pix_fmt)
    info = media.probe(src)
    matrix, rng = media.effective_color(info, info.width, info.height, info.pix_fmt)

    def decoded():
        return next(media.read_av_frames(src, 1, 1, info))[1]

    frame = decoded()
    before = _planes(frame)
    rgb = media.frame_to_rgb(frame, matrix, rng)
    # Two overlapping "faces", the second cut by the right and bottom frame edges (odd size).
    a = np.zeros((30, 40), bool)
    a[3:27, 5:33] = True
    b = np.zeros((40, 50), bool)
    b[10:, 10:] = True
    b_view = b[: info.height - 33, : info.width - 61]
    regions = [(7, 9, a), (61, 33, b_view)]
    changed = np.zeros((info.height, info.width), bool)
    changed[9:39, 7:47] |= a
    changed[33:, 61:] |= b_view
    rgb[changed] = (250, 20, 200)
    out = media.patch_regions(frame, rgb, regions, matrix, rng)
    assert out is frame  # patched in place: it keeps its flags (field order, side data) for the encoder
    after = _planes(out)
    assert np.array_equal(after[0][~changed], before[0][~changed])
    assert not np.array_equal(after[0][changed], before[0][changed])
    for k in (1, 2):
        sy, sx = round(info.height / after[k].shape[0]), round(info.width / after[k].shape[1])
        pad = np.pad(changed, ((0, -info.height % sy), (0, -info.width % sx)))
        chroma_changed = pad.reshape(pad.shape[0] // sy, sy, pad.shape[1] // sx, sx).any(axis=(1, 3))
        assert np.array_equal(after[k][~chroma_changed], before[k][~chroma_changed])
    # The changed pixels read back as the colour painted (within the codec-free conversion's rounding).
    back = media.frame_to_rgb(out, matrix, rng)
    inner = np.zeros_like(changed)
    inner[14:34, 14:38] = True  # well inside region a, away from chroma filtered across its edge
    assert np.abs(back[inner].astype(int) - (250, 20, 200)).max() <= 3
    # Every replaced sample is what converting the whole frame would give (only boxes are converted).
    full = _planes(_full_conversion(rgb, info.pix_fmt, matrix, rng))
    for k, (x, y) in enumerate(zip(after, full)):
        moved = x != before[k]
        assert np.array_equal(x[moved], y[moved]), (k, np.abs(x[moved].astype(int) - y[moved]).max())
    whole = _planes(media.patch_frame(decoded(), rgb, changed, matrix, rng))
    assert all(np.array_equal(x, y) for x, y in zip(whole, after))
    untouched = decoded()
    assert media.patch_regions(untouched, rgb, [(0, 0, np.zeros((4, 4), bool))], matrix, rng) is untouched
    assert all(np.array_equal(x, y) for x, y in zip(_planes(untouched), before))

