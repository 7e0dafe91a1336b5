"""Real face media for tests and benchmarks, fetched from package registries and cached.

Cache: <repo>/.cache/faces/ (git-ignored). The fetchers are `renderer.sample`'s
(the demo uses the same ones); each returns a Path and is safe to call from
parallel test processes (unpack into a temp folder, rename into place). When a
registry cannot be reached the fetcher skips the calling test with the reason
(outside pytest it raises `FaceDataUnavailable`).

Sources
- Debian package `kphotoalbum` (GPL-2+ demo data): usr/share/kphotoalbum/demo/
  movie.avi      160x120 MJPEG, 68 frames, ~15 fps: one person (the demo's presenter) talking to camera
  jesper.jpg, jesper_2.jpg               the same man (Jesper), one face each
  anne_helene.jpg                        a woman (Anne Helene, sunglasses), one face
  bar55_2.jpg                            both of them: Anne Helene left, Jesper right
  snow.jpg, skagen.jpg, sunset.jpg       no faces at all
- PyPI scikit-image wheel: skimage/data/astronaut.png (Eileen Collins, public domain)
- PyPI face_recognition 1.3.0 sdist: tests/test_images/ (obama.jpg, obama2.jpg,
  obama3.jpg, biden.jpg, ...)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from renderer import sample
from renderer.sample import SampleUnavailable

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "faces"

JESPER = ("jesper.jpg", "jesper_2.jpg")
ANNE_HELENE = ("anne_helene.jpg",)
COUPLE = "bar55_2.jpg"  # Anne Helene (left), Jesper (right)
NO_FACE = ("snow.jpg", "skagen.jpg", "sunset.jpg")
MOVIE = "movie.avi"


class FaceDataUnavailable(RuntimeError):
    """A registry could not be reached, so the real media cannot be fetched."""


def _unavailable(reason: str) -> None:
    if "pytest" in sys.modules:
        import pytest

        pytest.skip(f"real face media unavailable: {reason}")
    raise FaceDataUnavailable(reason)


def _fetch(fetch: Callable[[Path], Path]) -> Path:
    """Run a `renderer.sample` fetcher on CACHE; an unreachable registry skips the test."""
    try:
        return fetch(CACHE)
    except SampleUnavailable as err:
        _unavailable(str(err))
        raise  # outside pytest _unavailable raised already; keeps type checkers content


def kphotoalbum_demo() -> Path:
    """Folder holding kphotoalbum's demo photos and movie.avi (apt-get download + dpkg-deb -x)."""
    return _fetch(sample.kphotoalbum_demo)


def kphotoalbum_file(name: str) -> Path:
    """One file of the kphotoalbum demo (e.g. 'jesper.jpg', 'movie.avi')."""
    path = kphotoalbum_demo() / name
    if not path.is_file():
        raise FileNotFoundError(f"{name} is not in the kphotoalbum demo; have: {sorted(p.name for p in path.parent.iterdir())}")
    return path


def astronaut() -> Path:
    """skimage/data/astronaut.png (512x512 RGB portrait) from the scikit-image wheel."""
    older = CACHE / "astronaut.png"  # where earlier versions of this module cached it
    if older.is_file():
        return older
    return _fetch(sample.astronaut)


def face_recognition_images() -> Path:
    """Folder with the face_recognition 1.3.0 test images (obama*.jpg, biden.jpg, ...)."""
    return _fetch(sample.face_recognition_images)


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file (EXIF orientation applied by cv2)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# ------------------------------------------------------------------ known-path clips

def default_path(t: float) -> tuple[float, float, float, float, float]:
    """(dx, dy, angle_deg, scale, brightness) at time t in [0, 1]: a slow drift, turn, zoom and fade."""
    return (
        40.0 * np.sin(2 * np.pi * t),
        25.0 * np.sin(np.pi * t),
        6.0 * np.sin(2 * np.pi * t),
        1.0 + 0.12 * np.sin(np.pi * t),
        1.0 - 0.2 * np.sin(np.pi * t),
    )


def _paint_number(img: np.ndarray, n: int) -> None:
    cv2.putText(img, str(n), (4, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 0), 2, cv2.LINE_AA)


def moving_photo_frames(
    photo: Path,
    n: int,
    size: tuple[int, int] = (320, 240),
    path_fn: Callable[[float], tuple[float, float, float, float, float]] = default_path,
    points: int = 68,
) -> tuple[np.ndarray, np.ndarray]:
    """A clip made by moving a real photo along a known path, with ground-truth landmarks.

    The photo is scaled so its (largest) face is about a third of the frame
    height and centred; frame t is that image warped by the similarity
    path_fn(t / (n - 1)) = (dx, dy, degrees, scale, brightness) about the frame
    centre, with the frame number painted top-left.
    Returns frames (n, H, W, 3) uint8 RGB and true landmarks (n, K, 2) float64:
    the landmarks found on the still photo, moved by each frame's warp.
    """
    from renderer.faces.detect import detect
    from renderer.faces.landmarks import landmarks

    rgb = read_rgb(photo)
    dets = detect(rgb)
    if not dets:
        raise ValueError(f"no face found in {photo}")
    box = dets[0].box
    w, h = size
    s0 = (h / 3.0) / (box[3] - box[1])
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    # base: photo -> frame, face centred at the frame centre. Landmarks are found on
    # the photo resized by the same factor so the predictor sees the face at frame scale.
    base = np.array([[s0, 0, w / 2 - s0 * cx], [0, s0, h / 2 - s0 * cy], [0, 0, 1]])
    still = cv2.warpAffine(rgb, base[:2], (w, h), flags=cv2.INTER_AREA if s0 < 1 else cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    still_dets = detect(still, min_size=int(h / 3.0 * 0.6))
    lm0 = landmarks(still, still_dets[0].box, points)
    frames = np.empty((n, h, w, 3), np.uint8)
    truth = np.empty((n, len(lm0), 2), np.float64)
    for i in range(n):
        dx, dy, ang, sc, bright = path_fn(i / max(1, n - 1))
        m = cv2.getRotationMatrix2D((w / 2, h / 2), ang, sc)
        m[:, 2] += (dx, dy)
        full = np.vstack([m, [0, 0, 1]]) @ base
        img = cv2.warpAffine(rgb, full[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        img = np.clip(img.astype(np.float32) * bright, 0, 255).astype(np.uint8)
        _paint_number(img, i)
        frames[i] = img
        truth[i] = lm0 @ m[:, :2].T + m[:, 2]
    return frames, truth


def small_face_clip(out: Path, frames: int, size: tuple[int, int] = (1280, 720), face_scale: float = 0.9,
                    blur: tuple[int, int] | None = None) -> Path:
    """A screen-recording-like clip made by the `ffmpeg` CLI: the kphotoalbum talking head
    (160x120, face ~60 px) scaled by `face_scale` into the top-right corner of a real
    landscape photo (skagen.jpg, no faces) at `size`, played forwards then backwards
    (15 fps, H.264 yuv420p, crf 18). At 0.9 the face is ~55 px wide at 720p.
    blur: (first, last) frames whose corner is box-blurred hard (a camera shake: the
    detector misses the face there). Cached by its arguments under CACHE.
    """
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        _unavailable("the ffmpeg CLI is not installed")
    movie, photo = kphotoalbum_file(MOVIE), kphotoalbum_file("skagen.jpg")
    w, h = size
    fw, fh = round(160 * face_scale / 2) * 2, round(120 * face_scale / 2) * 2
    shake = f",boxblur=8:2:enable='between(n,{blur[0]},{blur[1]})'" if blur else ""
    graph = (f"[0:v]scale={w}:{h},setsar=1[bg];[1:v]split[f][b];[b]reverse[r];[f][r]concat=n=2:v=1:a=0,"
             f"loop=loop=-1:size=136,scale={fw}:{fh}{shake}[fg];"
             f"[bg][fg]overlay=x={w - fw - 40}:y=40:shortest=1,format=yuv420p")
    out = Path(out)
    if not out.is_file():
        tmp = out.with_name(f".{out.name}.part{out.suffix}")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-loop", "1", "-framerate", "15", "-i", str(photo),
                        "-i", str(movie), "-filter_complex", graph, "-frames:v", str(frames),
                        "-c:v", "libx264", "-crf", "18", "-r", "15", str(tmp)], check=True)
        tmp.replace(out)
    return out


def closeup_clip(out: Path, frames: int) -> Path:
    """A 1080p interview close-up made by the `ffmpeg` CLI: the kphotoalbum talking head scaled up
    ~11x (bicubic) so its face is ~630 px wide, played forwards then backwards (15 fps, H.264 crf 18).
    Cached under its name."""
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        _unavailable("the ffmpeg CLI is not installed")
    out = Path(out)
    if not out.is_file():
        graph = ("[0:v]split[f][b];[b]reverse[r];[f][r]concat=n=2:v=1:a=0,loop=loop=-1:size=136,"
                 "scale=1734:1300:flags=bicubic,pad=1920:1300:93:0,crop=1920:1080:0:110,format=yuv420p")
        tmp = out.with_name(f".{out.name}.part{out.suffix}")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(kphotoalbum_file(MOVIE)), "-filter_complex", graph,
                        "-frames:v", str(frames), "-c:v", "libx264", "-crf", "18", "-r", "15", str(tmp)], check=True)
        tmp.replace(out)
    return out


def corrupt_copy(src: Path, dst: Path, keep: int = 2000) -> Path:
    """A truncated copy of `src` (first `keep` bytes): an unreadable image for bad-input tests."""
    dst.write_bytes(src.read_bytes()[:keep])
    return dst


__all__ = [name for name in dir() if not name.startswith("_") and name not in {"sys", "cv2", "np", "sample"}]
