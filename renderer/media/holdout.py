"""Hold-out mattes, an occlusion input (`matte.py` is the matte *output* pass): a roto clip per shot.

A matte says what stands in front of the face (a hand, a microphone: a roto from Nuke or
Fusion). Any video PyAV reads will do, one matte frame per source frame, same size:
  - with an alpha channel (ProRes 4444, PNG/QuickTime RGBA, FFV1 yuva...): the alpha is the matte;
  - without one (FFV1 or H.264 grey, a luma matte): its grey level, converted from the file's
    own range (limited-range white, Y=235, reads as 1.0).
Values are (H, W) float32 in [0, 1]; 1 = fully in front of the face (the swap never paints there).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from renderer.errors import InputError
from renderer.media.decode import read_av_frames
from renderer.media.info import MediaInfo, probe


def _has_alpha(pix_fmt: str) -> bool:
    try:
        return any(c.is_alpha for c in av.VideoFormat(pix_fmt).components)
    except (ValueError, av.error.FFmpegError):  # an unknown name: treat as a grey matte
        return False


def check_matte(path: Path | str, *, frames: int, width: int, height: int, shot: Path | str) -> MediaInfo:
    """Probe a hold-out matte and refuse one that does not fit the shot it belongs to.

    InputError names the matte, what it has and what the shot needs (frame count, size);
    MediaError when it is missing or unreadable as video.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"hold-out matte {path} does not exist (for shot {Path(shot).name}; "
                         f"set occlusion_matte in the preset or holdout= on the FACESWAP marker to a video file)")
    info = probe(path)
    problems = []
    if info.frames != frames:
        problems.append(f"{info.frames} frames, the shot has {frames}")
    if (info.width, info.height) != (width, height):
        problems.append(f"{info.width}x{info.height} pixels, the shot is {width}x{height}")
    if problems:
        raise InputError(f"hold-out matte {path} does not fit shot {Path(shot).name}: it has "
                         f"{' and '.join(problems)}; a matte needs one frame per frame of the shot, at the shot's size")
    return info


def matte_to_array(frame: av.VideoFrame) -> np.ndarray:
    """(H, W) float32 [0, 1] of one decoded matte frame: its alpha if it has one, else its grey level."""
    if _has_alpha(frame.format.name):
        values = frame.to_ndarray(format="rgba")[..., 3]
    else:
        values = frame.to_ndarray(format="gray")  # swscale maps the file's range to 0..255
    return values.astype(np.float32) * np.float32(1.0 / 255.0)


def read_matte(path: Path | str, start: int, end: int, info: MediaInfo | None = None) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield (frame index, decoded matte frame) for frames start..end inclusive, frame-exactly
    (`read_av_frames`); convert the ones needed with `matte_to_array`."""
    yield from read_av_frames(path, start, end, info)


__all__ = ["check_matte", "matte_to_array", "read_matte"]
