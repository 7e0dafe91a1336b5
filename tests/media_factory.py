"""Test-media generator: short clips whose frame number is painted into the pixels.

Written with raw PyAV on purpose, independent of `renderer.media`, so the clips are
ground truth for the code under test. Every frame carries:

- a 16-bit binary code of the frame number as big black/white blocks in a row at the
  top-left corner (`read_frame_number` reads it back, robust to lossy coding);
- a constant "untouched" patch of `PATCH_RGB` at the bottom-right (colour checks);
- a moving gradient elsewhere so encoders have real work and motion.

Convention: RGB uint8 (H, W, 3), 0..255. Frame numbers count from 0.
Clips are cached under the git-ignored `/work/main/.cache/media/` by `cached_clip`.
"""

from __future__ import annotations

import hashlib
import json
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BITS = 16
PATCH_RGB = (200, 60, 30)
CACHE = Path(__file__).resolve().parent.parent / ".cache" / "media"

# codec name -> (encoder, pix_fmt, options)
_CODECS: dict[str, tuple[str, str, dict[str, str]]] = {
    "h264": ("libx264", "yuv420p", {"preset": "ultrafast", "crf": "16"}),
    "h264_444": ("libx264", "yuv444p", {"preset": "ultrafast", "crf": "16"}),
    "prores": ("prores_ks", "yuv422p10le", {"profile": "3"}),
    "ffv1": ("ffv1", "yuv444p", {}),
    "mpeg4": ("mpeg4", "yuv420p", {"qscale": "2"}),
}


def block_size(width: int) -> int:
    """Side of one code block in pixels: the 16 blocks span at most ~80% of the width."""
    return max(4, min(24, (width * 4 // 5) // BITS))


def paint_frame(n: int, width: int, height: int) -> np.ndarray:
    """The RGB uint8 (H, W, 3) picture of frame `n`."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (x * 255 // max(1, width - 1) + n * 3) % 256
    img[..., 1] = (y * 255 // max(1, height - 1)) % 256
    img[..., 2] = ((x + y + n * 5) % 128) + 64
    paint_number(img, n)
    ph, pw = max(4, height // 6), max(4, width // 6)
    img[height - ph :, width - pw :] = PATCH_RGB
    return img


def paint_number(img: np.ndarray, n: int) -> None:
    """Paint frame number `n` top-left in place: BITS black/white blocks on a grey strip."""
    b = block_size(img.shape[1])
    img[: b + 4, : BITS * b + 4] = 128
    for bit in range(BITS):
        on = (n >> (BITS - 1 - bit)) & 1
        img[2 : 2 + b, 2 + bit * b : 2 + (bit + 1) * b] = 255 if on else 0


def read_frame_number(rgb: np.ndarray) -> int:
    """Read back the number painted by `paint_frame` from an RGB (H, W, 3) frame."""
    width = rgb.shape[1]
    b = block_size(width)
    n = 0
    for bit in range(BITS):
        cy, cx = 2 + b // 2, 2 + bit * b + b // 2
        r = max(1, b // 4)
        value = float(rgb[cy - r : cy + r, cx - r : cx + r].mean())
        n = (n << 1) | (1 if value > 128 else 0)
    return n


def patch_box(width: int, height: int) -> tuple[slice, slice]:
    """(rows, cols) of the constant PATCH_RGB patch, one pixel inside its edges."""
    ph, pw = max(4, height // 6), max(4, width // 6)
    return slice(height - ph + 2, height - 2), slice(width - pw + 2, width - 2)


def sine(n_samples: int, rate: int, channels: int = 2, freq: float = 440.0) -> np.ndarray:
    """float32 (channels, n) sine at 0.5 amplitude; channel c is `freq * (c+1)`."""
    t = np.arange(n_samples) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)]).astype(np.float32)


def make_numbered_clip(
    path: Path,
    frames: int,
    width: int,
    height: int,
    fps: Fraction = Fraction(25),
    codec: str = "h264",
    timecode: str | None = None,
    audio: bool | str = False,
    *,
    gop: int | None = None,
    bframes: int = 0,
    open_gop: bool = False,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    start_pts: int = 0,
    color: str | None = "bt709",
    audio_rate: int = 48000,
    audio_layout: str = "stereo",
) -> Path:
    """Write a numbered clip to `path` (container from the suffix) and return `path`.

    codec: "h264" | "h264_444" | "prores" | "ffv1" | "mpeg4".
    audio: False, True (AAC in mp4/mkv, PCM s16 in mov) or an audio encoder name.
    pts: explicit per-frame pts in `time_base` (VFR clips); default is a CFR grid.
    start_pts: added to every video pts (a stream that starts at a non-zero time).
    color: "bt709" tags primaries/transfer/matrix as BT.709 limited range; None leaves them untagged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoder, pix_fmt, options = _CODECS[codec]
    options = dict(options)
    if encoder == "libx264":
        params = [f"bframes={bframes}", "scenecut=0"]
        if gop:
            params += [f"keyint={gop}", f"min-keyint={gop}"]
        if open_gop:
            params.append("open-gop=1")
        options["x264-params"] = ":".join(params)
    tb = time_base or (1 / Fraction(fps))
    with av.open(str(path), "w") as out:
        if timecode:
            out.metadata["timecode"] = timecode
        vs = out.add_stream(encoder, rate=fps, options=options)
        vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
        vs.codec_context.time_base = tb
        vs.time_base = tb
        if gop and encoder != "libx264":
            vs.codec_context.gop_size = gop
        if timecode:
            vs.metadata["timecode"] = timecode
        if color:
            vs.codec_context.color_primaries = 1
            vs.codec_context.color_trc = 1
            vs.codec_context.colorspace = 1
            vs.codec_context.color_range = 1
        a_stream = None
        if audio:
            a_codec = audio if isinstance(audio, str) else ("pcm_s16le" if path.suffix in (".mov", ".mxf") else "aac")
            a_stream = out.add_stream(a_codec, rate=audio_rate, layout=audio_layout)
            a_stream.codec_context.time_base = Fraction(1, audio_rate)
        grid = pts if pts is not None else [round(i / Fraction(fps) / tb) for i in range(frames)]
        end_time = (grid[-1] + (grid[-1] - grid[-2] if len(grid) > 1 else round(1 / Fraction(fps) / tb))) * tb
        a_total = int(round(end_time * audio_rate))
        a_done = 0
        for i in range(frames):
            rgb = paint_frame(i, width, height)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame = frame.reformat(format=pix_fmt, src_colorspace="ITU709", dst_colorspace="ITU709",
                                   src_color_range="JPEG", dst_color_range="MPEG")
            if color:
                frame.color_primaries, frame.color_trc, frame.colorspace, frame.color_range = 1, 1, 1, 1
            frame.pts = grid[i] + start_pts
            frame.time_base = tb
            for packet in vs.encode(frame):
                out.mux(packet)
            if a_stream is not None:
                target = min(a_total, int(round((grid[i] + (grid[1] - grid[0] if frames > 1 else 1)) * tb * audio_rate)))
                a_done = _write_audio(out, a_stream, a_done, target, audio_rate, start_pts * tb)
        for packet in vs.encode():
            out.mux(packet)
        if a_stream is not None:
            a_done = _write_audio(out, a_stream, a_done, a_total, audio_rate, start_pts * tb, final=True)
            for packet in a_stream.encode():
                out.mux(packet)
    return path


def _write_audio(out, stream, done: int, target: int, rate: int, offset_s: Fraction, final: bool = False) -> int:
    """Encode sine samples done..target; whole 1024-sample frames only, unless `final`."""
    chunk = 1024
    fmt = stream.codec_context.codec.audio_formats[0].name if stream.codec_context.codec.audio_formats else "fltp"
    while target - done >= chunk or (final and done < target):
        n = min(chunk, target - done)
        layout = stream.codec_context.layout.name
        samples = sine(done + n, rate, av.AudioLayout(layout).nb_channels)[:, done:]
        frame = _audio_frame(samples, fmt, layout)
        frame.sample_rate = rate
        frame.pts = done + int(round(offset_s * rate))
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            out.mux(packet)
        done += n
    return done


def _audio_frame(samples: np.ndarray, fmt: str, layout: str = "stereo") -> av.AudioFrame:
    if fmt == "fltp":
        return av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=layout)
    if fmt == "s16":
        data = np.clip(np.round(samples * 32768), -32768, 32767).astype(np.int16).T.reshape(1, -1)
        return av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="s16", layout=layout)
    if fmt == "s32":
        data = np.clip(np.round(samples * 2147483648.0), -2147483648, 2147483647).astype(np.int32).T.reshape(1, -1)
        return av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="s32", layout=layout)
    raise ValueError(f"test audio format {fmt} not handled")


def cached_clip(name: str, **kwargs) -> Path:
    """`make_numbered_clip` once per distinct argument set, cached under .cache/media/."""
    key = hashlib.sha1(json.dumps({k: str(v) for k, v in sorted(kwargs.items())}).encode()).hexdigest()[:10]
    path = CACHE / f"{name}-{key}{kwargs.pop('suffix', '.mp4')}"
    if not path.exists():
        tmp = path.with_name(f".{path.stem}.{os.getpid()}{path.suffix}")
        make_numbered_clip(tmp, **kwargs)
        os.replace(tmp, path)
    return path


def vfr_pts(frames: int, time_base: Fraction = Fraction(1, 1000)) -> list[int]:
    """A 20/30 fps mix: first third at 30 fps, middle third at 20 fps, last third at 30 fps."""
    out, t = [], Fraction(0)
    for i in range(frames):
        out.append(int(round(t / time_base)))
        t += Fraction(1, 20) if frames // 3 <= i < 2 * frames // 3 else Fraction(1, 30)
    return out
